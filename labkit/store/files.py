"""Image files: finding, decoding, hashing and validating them (no database here).

:func:`inspect_images` checks files before import; :func:`inspect_files` re-reads the
files of an imported project for the quality audit (existence, decoding, sha256,
perceptual hash), whose findings :func:`labkit.quality.integrity.file_findings` makes.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from labkit._util.hashing import sha256_file
from labkit.quality.integrity import perceptual_hash
from labkit.store.errors import ImageError

__all__ = ["IMAGE_SUFFIXES", "ImageInfo", "expand_paths", "inspect_files", "inspect_images", "load_rgb",
           "sha256_file"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    sha256: str
    width: int
    height: int


def expand_paths(paths_or_folder: str | Path | Iterable[str | Path]) -> list[Path]:
    """A folder becomes its image files (recursive, sorted), also inside a list; files are kept as given."""
    if isinstance(paths_or_folder, (str, Path)):
        p = Path(paths_or_folder)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*")
                           if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file()
                           and not any(part.startswith(".") for part in q.relative_to(p).parts))
            if not found:
                raise ImageError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) found under {p}")
            return found
        return [p]
    return [f for q in paths_or_folder for f in (expand_paths(q) if Path(q).is_dir() else [Path(q)])]


def _inspect(path: Path) -> ImageInfo | str:
    """ImageInfo for a readable image, else the problem as text."""
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        return "file not found"
    if not path.is_file():
        return "not a regular file"
    try:
        with Image.open(path) as im:
            im.verify()  # structure and checksums
        with Image.open(path) as im:
            im.load()  # full decode: catches truncated pixel data that verify() misses
            width, height = im.size
    except UnidentifiedImageError:
        return "not an image PIL can identify (unknown or corrupt format)"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"unreadable: {exc}"
    if width <= 0 or height <= 0:
        return f"empty image ({width}x{height})"
    return ImageInfo(path=path, sha256=sha256_file(path), width=width, height=height)


def inspect_images(paths: Sequence[Path], *, progress: bool = False) -> list[ImageInfo]:
    """Validate and hash every file; raise one ImageError listing every bad file."""
    from labkit._util.progress import progress_bar

    with ThreadPoolExecutor(max_workers=4) as pool:  # PIL and hashlib release the GIL
        results = list(progress_bar(pool.map(_inspect, paths), total=len(paths), desc="reading images",
                            unit="img", disable=not progress or len(paths) < 50))
    bad = [(p, r) for p, r in zip(paths, results) if isinstance(r, str)]
    if bad:
        lines = "\n".join(f"  {p}: {why}" for p, why in bad[:50])
        more = f"\n  ... and {len(bad) - 50} more" if len(bad) > 50 else ""
        raise ImageError(f"{len(bad)} of {len(paths)} image file(s) cannot be added; nothing was "
                         f"added. Fix or remove them and call again:\n{lines}{more}")
    return cast("list[ImageInfo]", results)  # every str (a problem) raised above


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image as an ``(H, W, 3)`` uint8 RGB array."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _inspect_file(path: Path, sha256: str | None, method: str | None) -> dict[str, Any]:
    """One row of :func:`inspect_files`: ``status`` is ``ok`` or the integrity rule broken."""
    if not path.is_file():
        return {"status": "missing_file", "detail": f"{path} does not exist"}
    digest = sha256_file(path)
    try:
        arr = load_rgb(path)
    except Exception as exc:  # PIL raises many types for corrupt data
        return {"status": "unreadable_file", "sha256_now": digest, "detail": f"{path}: {exc}"}
    out = {"status": "ok", "sha256_now": digest, "width_now": arr.shape[1], "height_now": arr.shape[0],
           "detail": ""}
    if sha256 is not None and digest != sha256:
        out.update(status="hash_changed", detail=f"{path}: sha256 {digest[:12]}… differs from the "
                                                  f"import hash {sha256[:12]}…")
    if method is not None:
        out["phash"] = perceptual_hash(arr, method=method)
    return out


def inspect_files(files: pd.DataFrame, *, hash_method: str | None = "phash",
                  threads: int = 4) -> pd.DataFrame:
    """Read every image file once: existence, decodability, sha256, perceptual hash.

    Parameters
    ----------
    files : DataFrame indexed by image id
        Column ``path`` (absolute) and optionally ``sha256`` (the hash recorded at
        import): what ``project.image_files(purpose=...)`` returns.
    hash_method : {"phash", "dhash"} or None
        Perceptual hash (:func:`labkit.quality.integrity.perceptual_hash`) to compute
        for readable files (None: skip).
    threads : int
        Files read in parallel (hashing and decoding release the GIL).

    Returns
    -------
    DataFrame
        Indexed like ``files``: ``status`` (``ok`` or an integrity rule:
        ``missing_file``, ``unreadable_file``, ``hash_changed``), ``sha256_now``,
        ``width_now``, ``height_now``, ``phash`` (int or None), ``detail``. Turn it into
        findings with :func:`labkit.quality.integrity.file_findings`.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (8, 6)).save(folder / "a.png")
    >>> files = pd.DataFrame({"path": [folder / "a.png", folder / "gone.png"]}, index=[1, 2])
    >>> inspect_files(files)[["status", "width_now", "height_now"]]
              status  width_now  height_now
    1             ok        8.0         6.0
    2   missing_file        NaN         NaN
    """
    if not isinstance(files, pd.DataFrame):
        raise ValueError(f"files must be a pandas DataFrame, got {type(files).__name__}")
    if "path" not in files.columns:
        raise ValueError(f"files lacks columns ['path']; found {list(files.columns)}")
    if hash_method not in ("phash", "dhash", None):
        raise ValueError(f"hash_method={hash_method!r}; expected 'phash', 'dhash' or None")
    shas = files["sha256"] if "sha256" in files.columns else pd.Series(None, index=files.index)
    args = [(Path(p), s if isinstance(s, str) else None, hash_method) for p, s in zip(files["path"], shas)]
    with ThreadPoolExecutor(max_workers=max(1, int(threads))) as pool:
        rows = list(pool.map(lambda a: _inspect_file(*a), args))
    cols = ["status", "sha256_now", "width_now", "height_now", "phash", "detail"]
    out = pd.DataFrame(rows, index=files.index).reindex(columns=cols)
    out["phash"] = out["phash"].astype(object).where(out["phash"].notna(), None)
    return out
