"""Image files of an export: copied, stripped of metadata, or anonymised (faces blurred)."""
from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from labkit._util.hashing import sha256_file
from labkit.store.errors import ImageError
from labkit.store.files import load_rgb

FOLDER_FORMATS = ("yolo", "aihub")


class Pseudonyms:
    """Salted pseudonyms (HMAC-SHA256) for one export: ``names("s", subject)``."""

    def __init__(self, salt: str | None):
        from labkit.privacy import new_salt

        self.salt = salt or new_salt()

    def __call__(self, prefix: str, value: Any) -> Any:
        from labkit.privacy import pseudonym

        if value is None or value != value:  # None or NaN
            return None
        return pseudonym(str(value), self.salt, prefix=prefix + "_")

    def attributes(self, attributes: dict | None, subjects: set[str]) -> dict:
        """Attributes with any value that is a subject id (``metaid``, an owner...) pseudonymised too."""
        return {k: self("s", v) if isinstance(v, str) and v in subjects else v
                for k, v in dict(attributes or {}).items()}


def anonymized_keys(paths: pd.Series) -> dict[int, str]:
    """Neutral file names (``image_000001.png``): original names can identify people."""
    return {i: f"image_{n:06d}{PurePosixPath(p).suffix.lower() or '.png'}"
            for n, (i, p) in enumerate(paths.items(), start=1)}


def images_folder(out: Path, format: str, images: bool | str | Path) -> Path:
    if not isinstance(images, bool):
        return Path(images)
    return out / "images" if format in FOLDER_FORMATS or out.suffix == "" else out.parent / "images"


def write_images(files: pd.DataFrame, keys: dict[int, str], folder: Path, *, faces: bool,
                 strip: bool = True, summary: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Write each image as ``folder/keys[id]``; verify hashes first; return counts (also to ``summary``).

    ``files`` is what ``project.image_files`` returns (``path``, ``sha256`` by image id).

    With ``faces``, faces are detected and blurred; with ``strip`` (or ``faces``) the file
    is re-encoded from its pixels, so no metadata survives. A file that changed since
    import stops the export before anything is written.
    """
    from labkit._util.progress import progress_bar
    from labkit.privacy import anonymize_image, read_metadata, save_clean

    paths = dict(files["path"].items())
    bad = [f"  image {i}: {p} is missing" if not p.exists() else f"  image {i}: {p} changed since import"
           for i, p in paths.items() if not p.exists() or sha256_file(p) != files.at[i, "sha256"]]
    if bad:
        raise ImageError("cannot export images that are missing or changed (run `labkit verify`); nothing was "
                         "written:\n" + "\n".join(bad[:30]))
    folder.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> tuple[int, int]:
        src, dst = paths[i], folder / keys[i]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not faces and not strip:
            shutil.copyfile(src, dst)
            return 0, 0
        removed = int(any(read_metadata(src).values()))
        image = load_rgb(src)
        boxes = []
        if faces:
            image, boxes = anonymize_image(image)
        save_clean(image, dst)
        return len(boxes), removed

    with ThreadPoolExecutor(max_workers=2) as pool:  # OpenCV and Pillow release the GIL
        results = list(progress_bar(pool.map(one, list(paths)), total=len(paths), desc="exporting images", unit="img",
                            disable=not progress or len(paths) < 20))
    stats = {"images": len(paths), "faces_blurred": int(sum(r[0] for r in results)),
             "images_with_faces": int(sum(r[0] > 0 for r in results)),
             "images_with_metadata_removed": int(sum(r[1] for r in results)),
             "faces": bool(faces), "metadata_stripped": bool(faces or strip),
             "detector": "OpenCV Haar cascades (frontal + profile)" if faces else None}
    if summary is not None:
        summary.write_text(json.dumps(stats, indent=2))
    return stats
