"""Reading, hashing and validating image files before they enter a project."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class ImageError(ValueError):
    """One or more image files cannot be used; the message lists each with its problem."""


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    sha256: str
    width: int
    height: int


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def expand_paths(paths_or_folder: str | Path | Iterable[str | Path]) -> list[Path]:
    """A folder becomes its image files (recursive, sorted); files are kept as given."""
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
    return [Path(q) for q in paths_or_folder]


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
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=4) as pool:  # PIL and hashlib release the GIL
        results = list(tqdm(pool.map(_inspect, paths), total=len(paths), desc="reading images",
                            unit="img", disable=not progress or len(paths) < 50))
    bad = [(p, r) for p, r in zip(paths, results) if isinstance(r, str)]
    if bad:
        lines = "\n".join(f"  {p}: {why}" for p, why in bad[:50])
        more = f"\n  ... and {len(bad) - 50} more" if len(bad) > 50 else ""
        raise ImageError(f"{len(bad)} of {len(paths)} image file(s) cannot be added; nothing was "
                         f"added. Fix or remove them and call again:\n{lines}{more}")
    return results  # type: ignore[return-value]


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image as an ``(H, W, 3)`` uint8 RGB array."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
