"""Image files: finding, decoding, hashing and validating them (no database here).

:func:`inspect_images` checks files before import; :func:`inspect_files` re-reads the
files of an imported project for the quality audit (existence, decoding, sha256,
perceptual hash), whose findings :func:`labkit.quality.integrity.file_findings` makes.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from labkit._util.checks import limit_message, limits
from labkit._util.hashing import sha256_file
from labkit.quality.integrity import perceptual_hash
from labkit.store.errors import PROJECT, Fix, ImageError, command

__all__ = ["IMAGE_SUFFIXES", "ImageInfo", "expand_paths", "find_in_folder", "inspect_files", "inspect_images",
           "load_rgb", "sha256_file"]

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


def find_in_folder(folder: str | Path, key: str) -> Path | None:
    """The file an annotation file's image ``key`` names under ``folder``; ``None`` if there is none.

    ``key`` comes from a file someone else wrote, so it is not trusted: it is taken relative
    to ``folder`` (``\\`` read as ``/``), then by its file name alone (``folder/<name>``).
    A key that is absolute or has a ``..`` part, or a file that is a symbolic link to
    somewhere outside ``folder``, is refused with an :class:`~labkit.ImageError` naming
    it: an import reads no file outside the folder it was given.

    Examples
    --------
    >>> find_in_folder("/data/images", "../../etc/passwd")
    Traceback (most recent call last):
    ...
    labkit.store.errors.ImageError: '../../etc/passwd' points outside the images folder /data/images; refused ...
    """
    base = Path(folder)
    text = key.replace("\\", "/")
    if "\x00" in text:
        return None  # no file has that name
    rel = PurePosixPath(text)
    if rel.is_absolute() or re.match(r"[A-Za-z]:/", text) or ".." in rel.parts:
        raise _outside(key, f"points outside the images folder {base}")
    cand = base / rel
    if not cand.is_file():
        cand = base / rel.name
        if not rel.name or not cand.is_file():
            return None
    real = cand.resolve()
    if base.resolve() not in real.parents:
        raise _outside(key, f"is a link to {real}, outside the images folder {base}")
    return cand


def _outside(key: str, problem: str) -> ImageError:
    return ImageError(f"{key!r} {problem}; refused (an import reads only files inside it)", fix=Fix(
        "if the images are genuine, add them first with project.add_images(folder): the import then matches "
        "them by file name; or correct the names in the file",
        "if the images are genuine, add them first with " + command("images", "add", "-P", PROJECT, "FOLDER")
        + ": the import then matches them by file name; or correct the names in the file"))


def _inspect(path: Path, max_pixels: int | None) -> ImageInfo | str:
    """ImageInfo for a readable image, else the problem as text."""
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        return "file not found"
    if not path.is_file():
        return "not a regular file"
    try:
        with Image.open(path) as im:
            width, height = im.size
            if (problem := _too_large(width, height, max_pixels)) is not None:
                return problem  # before decoding a single pixel
            im.verify()  # structure and checksums
        with Image.open(path) as im:
            im.load()  # full decode: catches truncated pixel data that verify() misses
            width, height = im.size
    except UnidentifiedImageError:
        return "not an image PIL can identify (unknown or corrupt format)"
    except Image.DecompressionBombError as exc:  # over twice PIL's Image.MAX_IMAGE_PIXELS: PIL will not open it
        m = re.search(r"\((\d+) pixels\)", str(exc))
        if m and max_pixels is not None and int(m.group(1)) > max_pixels:
            return limit_message(f"the image has {int(m.group(1)):,} pixels", max_pixels, "max_image_pixels")
        return (f"PIL refuses to open it as a possible decompression bomb ({exc}); if the image is genuine, "
                "raise PIL.Image.MAX_IMAGE_PIXELS (and labkit's limits.max_image_pixels)")
    except (OSError, SyntaxError, ValueError) as exc:
        return f"unreadable: {exc}"
    except Exception as exc:  # PIL's decoders raise many types on hostile data
        return f"unreadable: {type(exc).__name__}: {exc}"
    if width <= 0 or height <= 0:
        return f"empty image ({width}x{height})"
    return ImageInfo(path=path, sha256=sha256_file(path), width=width, height=height)


def _too_large(width: int, height: int, max_pixels: int | None) -> str | None:
    if max_pixels is None or width * height <= max_pixels:
        return None
    return limit_message(f"the image is {width}x{height} = {width * height:,} pixels", max_pixels, "max_image_pixels")


def inspect_batch(items: list[tuple[Path, int | None]]) -> list[ImageInfo | str]:
    """:func:`_inspect` of ``(path, max_pixels)`` items: a task for Dask workers (see :func:`inspect_images`)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return [_inspect(Path(p), limit) for p, limit in items]


def inspect_images(paths: Sequence[Path], *, progress: bool = False,
                   max_pixels: int | None | Literal["limits"] = "limits", client: Any = None) -> list[ImageInfo]:
    """Validate and hash every file; raise one ImageError listing every bad file.

    Parameters
    ----------
    max_pixels : int, None or "limits"
        Most pixels (width x height) an image may have; ``None`` for no limit. Default
        ``"limits"``: ``labkit.formats.limits.max_image_pixels`` (89,478,485, PIL's own
        ``Image.MAX_IMAGE_PIXELS``). A larger image is refused from its header, before
        it is decoded.
    """
    from PIL import Image

    from labkit._util.progress import progress_bar

    limit = limits.max_image_pixels if max_pixels == "limits" else max_pixels
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"max_pixels is {limit!r}; expected a positive integer or None (no limit)")
    if client is not None:  # the cluster's workers read the files (they see the same paths)
        from labkit._util.dask import map_batches

        results: list[ImageInfo | str] = map_batches(
            client, inspect_batch, [(Path(p), limit) for p in paths], batch_size=64, desc="reading images (Dask)",
            unit="img", progress=progress and len(paths) >= 50,
            name=lambda batch: f"images {batch[0][0]} .. {batch[-1][0]}")
    else:
        # PIL warns of images over its Image.MAX_IMAGE_PIXELS: labkit's limit decides (set here, in
        # the calling thread, for the workers: warning filters are process-wide)
        with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=4) as pool:  # PIL, hashlib release the GIL
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            results = list(progress_bar(pool.map(lambda p: _inspect(p, limit), paths), total=len(paths),
                                        desc="reading images", unit="img", disable=not progress or len(paths) < 50))
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
