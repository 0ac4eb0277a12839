"""Image metadata: what a file carries (EXIF, GPS, XMP, ICC, text) and writing pixels without it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_GPS_IFD = 0x8825
_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
            ".webp": "WEBP", ".gif": "GIF"}


def read_metadata(path: str | Path) -> dict[str, Any]:
    """What metadata an image file carries; every value is falsy for a clean file.

    Returns
    -------
    dict
        ``exif_tags`` (count of EXIF tags), ``gps`` (bool: a GPS IFD with entries),
        ``xmp`` (bool), ``icc`` (bool), ``text`` (keys of PNG text chunks / comments).
    """
    from PIL import Image

    with Image.open(path) as im:
        exif = im.getexif()
        gps = bool(exif.get_ifd(_GPS_IFD)) if exif else False
        info = dict(im.info)
    text = sorted(k for k in info if k not in ("exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "dpi", "gamma",
                                               "transparency", "jfif", "jfif_version", "jfif_unit",
                                               "jfif_density", "progressive", "progression", "adobe",
                                               "adobe_transform", "interlace", "aspect", "srgb"))
    gps_tags = len(exif.get_ifd(_GPS_IFD)) if exif else 0
    xmp = bool(info.get("xmp") or info.get("XML:com.adobe.xmp"))
    return {"exif_tags": len(exif) + gps_tags, "gps": gps, "xmp": xmp,
            "icc": bool(info.get("icc_profile")), "text": text}


def save_clean(image: np.ndarray, path: str | Path, *, format: str | None = None) -> Path:
    """Write ``image`` ((H, W, 3) or (H, W) uint8) from its pixels alone: no metadata at all.

    Re-encoding the decoded pixels is what strips metadata: nothing of the source file
    (EXIF with GPS, camera and time; XMP; ICC profiles; PNG text chunks; comments) is
    passed to the writer. JPEGs are written at quality 95; the format follows the suffix.

    Examples
    --------
    >>> import tempfile
    >>> out = save_clean(np.zeros((4, 6, 3), np.uint8), f"{tempfile.mkdtemp()}/x.png")
    >>> read_metadata(out)
    {'exif_tags': 0, 'gps': False, 'xmp': False, 'icc': False, 'text': []}
    """
    from PIL import Image

    path = Path(path)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W[, 3]) uint8 image, got {image.dtype} of shape {image.shape}")
    fmt = (format or _FORMATS.get(path.suffix.lower(), "")).upper()
    fmt = "JPEG" if fmt == "JPG" else fmt
    if not fmt:
        raise ValueError(f"cannot tell the image format of {path.name!r}; use one of {sorted(_FORMATS)} "
                         "or pass format=")
    if fmt == "JPEG" and image.ndim == 3 and image.shape[2] != 3:
        raise ValueError(f"JPEG holds RGB or gray, not {image.shape[2]} channels; write {path.stem}.png instead")
    kwargs = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(image).save(path, format=fmt, **kwargs)
    return path
