"""COCO run-length encoding of binary masks (pycocotools does the work).

Masks are ``(H, W)`` bool arrays in memory and COCO compressed RLE dicts
``{"size": [H, W], "counts": str}`` in storage.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._coco import mask_api


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode a binary mask as COCO compressed RLE.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        Any dtype; non-zero pixels are foreground.

    Returns
    -------
    dict
        ``{"size": [H, W], "counts": str}`` (JSON-serialisable).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 5), bool); m[1:3, 2:4] = True
    >>> rle = encode_rle(m)
    >>> rle["size"]
    [4, 5]
    >>> bool((decode_rle(rle) == m).all())
    True
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask has shape {mask.shape}; expected a 2-D (H, W) array")
    rle = mask_api().encode(np.asfortranarray(mask != 0, dtype=np.uint8))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def to_coco_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """Return ``rle`` as pycocotools' compressed form (bytes counts).

    Accepts compressed counts (``str`` or ``bytes``) or uncompressed counts
    (a list of run lengths, column-major, starting with background).
    """
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError(f"expected an RLE dict with 'size' and 'counts'; got {type(rle).__name__} "
                         f"{list(rle) if isinstance(rle, dict) else ''}")
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        return mask_api().frPyObjects({"size": [h, w], "counts": counts}, h, w)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": [h, w], "counts": counts}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """Decode COCO RLE (compressed or uncompressed) to an ``(H, W)`` bool mask.

    pycocotools trusts the counts; RLE from outside labkit should go through
    ``normalize_geometry("mask", rle)`` first, which checks them.
    """
    return mask_api().decode(to_coco_rle(rle)).astype(bool)


def rle_area(rle: dict[str, Any]) -> int:
    """Number of foreground pixels of an RLE mask.

    Parameters
    ----------
    rle : dict
        COCO RLE, compressed (``str``/``bytes`` counts) or uncompressed (list counts).

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 5), bool); m[1:3, 2:5] = True
    >>> rle_area(encode_rle(m))
    6
    """
    return int(mask_api().area(to_coco_rle(rle)))


def rle_to_box(rle: dict[str, Any]) -> dict[str, float]:
    """Tight bounding box of an RLE mask as a canonical box, in pixel edges.

    Parameters
    ----------
    rle : dict
        COCO RLE, compressed or uncompressed.

    Returns
    -------
    dict
        ``{"x0", "y0", "x1", "y1"}``: ``x1`` is one past the last foreground column
        (pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``), as pycocotools' ``toBbox``.

    Raises
    ------
    ValueError
        If the mask is empty: it has no box.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 5), bool); m[1:3, 2:5] = True
    >>> rle_to_box(encode_rle(m))
    {'x0': 2.0, 'y0': 1.0, 'x1': 5.0, 'y1': 3.0}
    """
    coco = to_coco_rle(rle)
    mask_utils = mask_api()
    if mask_utils.area(coco) == 0:
        raise ValueError(f"mask of size {coco['size']} is empty; an empty mask has no bounding box")
    x, y, w, h = (float(v) for v in mask_utils.toBbox(coco))
    return {"x0": x, "y0": y, "x1": x + w, "y1": y + h}
