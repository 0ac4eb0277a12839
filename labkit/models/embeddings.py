"""On-disk cache of image embeddings, keyed by (image content hash, model id).

One ``.npy`` file per (model id, image key) under ``<cache_dir>/<model_id>/<key[:2]>/``:
float16, uncompressed (``np.savez_compressed`` saves ~7% and makes loads ~60x slower),
written to a temporary file and renamed into place, so a reader never sees a partial
entry and an interrupted write leaves nothing behind but a stray temporary file
(:mod:`labkit._util.atomic`).

The *image key* is any stable content id. labkit uses the project's ``sha256`` of the
image file (``project.images()["sha256"]``, see :func:`project_image`); for an array
with no key, :func:`image_key` hashes its pixels. The two differ for the same picture,
so give ``set_image`` the project's hash when the image comes from a project, or the
entries written by :class:`~labkit.models.Prefetcher` and ``labkit embed`` are missed.

Precision: embeddings are stored as float16 (2 MB for SAM instead of 4 MB). A segmenter
keeps the float32 embedding of images it encoded itself in memory, so predictions right
after encoding equal ``segment_anything.SamPredictor``'s exactly; an embedding read back
from disk is the float16 round trip (relative error <= 5e-4), which moves only pixels whose
mask logit is within a hair of the threshold. Measured on the tiny random SAM of the
tests (5 images x 40 box+point prompts x 3 masks): mean mask IoU fp16 vs fp32 0.9998,
minimum 0.996, 86% of masks identical; ``tests/models/test_embeddings.py`` asserts >= 0.99.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit._util.atomic import atomic_path, temp_glob

if TYPE_CHECKING:
    from labkit.store.protocol import ProjectLike

log = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.+\-]{0,127}$")
_STALE_TMP_S = 600.0


def default_cache_dir() -> Path:
    """Where segmenters cache embeddings when given no ``cache_dir``.

    ``$LABKIT_CACHE_DIR/embeddings`` when that variable is set, else the user cache folder
    (``platformdirs.user_cache_dir("labkit")/embeddings``). Projects keep theirs in
    :func:`project_cache_dir` instead; ``labkit embed`` writes there by default.
    """
    base = os.environ.get("LABKIT_CACHE_DIR")
    if base:
        return Path(base) / "embeddings"
    import platformdirs

    return Path(platformdirs.user_cache_dir("labkit")) / "embeddings"


def project_cache_dir(project: ProjectLike | str | os.PathLike) -> Path:
    """The embedding cache inside a project's folder: ``<project.root>/cache/embeddings``.

    ``project`` is a project or its folder. Pass the result as ``cache_dir`` to
    :func:`~labkit.models.load_segmenter` so the labeler, the
    :class:`~labkit.models.Prefetcher` and ``labkit embed`` share one cache.
    """
    root = project if isinstance(project, (str, os.PathLike)) else project.root
    return Path(root) / "cache" / "embeddings"


def image_key(image: np.ndarray) -> str:
    """sha256 (hex) of an image's shape and pixel bytes: the cache key of an array with no key.

    Examples
    --------
    >>> import numpy as np
    >>> image_key(np.zeros((2, 3, 3), np.uint8))[:12]
    'b8ea768e27d4'
    """
    a = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{a.shape}:{a.dtype.str}:".encode())
    h.update(a.data.cast("B"))
    return h.hexdigest()


def project_image(project: ProjectLike, image: int, *, sha256: str | None = None) -> tuple[np.ndarray, str]:
    """Read one project image and its cache key (the file's sha256 stored in the project).

    Parameters
    ----------
    project : labkit.Project
    image : int
        Image id.
    sha256 : str, optional
        The image's stored hash, when the caller already has ``project.images()``.

    Returns
    -------
    image : ndarray of shape (H, W, 3), uint8
        Verified against the stored hash by ``project.read_image``.
    key : str
    """
    if sha256 is None:
        table = project.images()
        if int(image) not in table.index:
            raise ValueError(f"no image {image!r} in {project!r}; its ids are listed by project.images()")
        sha256 = str(table.at[int(image), "sha256"])
    return project.read_image(int(image)), sha256


def check_key(key: str, what: str = "an image key") -> str:
    """A key or model id must be a short file-name-safe string (letters, digits, ``_.+-``)."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"{what} must be a short file-name-safe string (letters, digits, _ . + -) such "
                         f"as a sha256 hex digest, got {key!r}")
    return key


class EmbeddingCache:
    """Embeddings of one model on disk: ``load``/``save`` by image key, float16, atomic.

    Parameters
    ----------
    root : path
        The cache folder; entries go to ``root/<model_id>/``.
    model_id : str
        Identifies the model's architecture and weights (a segmenter's ``model_id``).
    shape : tuple of int, optional
        The expected embedding shape; an entry with another shape is treated as corrupt.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> cache = EmbeddingCache(tempfile.mkdtemp(), "demo-model")
    >>> "abc" in cache
    False
    >>> _ = cache.save("abc", np.ones((1, 2, 4, 4), np.float32))
    >>> cache.load("abc").dtype, "abc" in cache
    (dtype('float16'), True)
    """

    def __init__(self, root: str | Path, model_id: str, *, shape: tuple[int, ...] | None = None):
        check_key(model_id, "a model id")
        self.root = Path(root)
        self.model_id = model_id
        self.folder = self.root / model_id
        self.shape = tuple(shape) if shape is not None else None

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.folder)!r})"

    def path(self, key: str) -> Path:
        key = check_key(key)
        return self.folder / key[:2] / f"{key}.npy"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def keys(self) -> list[str]:
        """Keys of every stored entry (sorted)."""
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*/[!.]*.npy"))

    def load(self, key: str) -> np.ndarray | None:
        """The stored float16 embedding, or None when missing.

        A corrupt entry (truncated, not an ``.npy`` file, wrong shape or dtype) is
        deleted with a warning and reported as missing, so the caller recomputes it.
        """
        path = self.path(key)
        try:
            arr = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as exc:
            self._discard(path, f"unreadable ({exc})")
            return None
        if arr.dtype != np.float16 or (self.shape is not None and arr.shape != self.shape):
            self._discard(path, f"dtype {arr.dtype} shape {arr.shape}, expected float16 {self.shape}")
            return None
        return arr

    def save(self, key: str, embedding: Any) -> Path:
        """Store an embedding (any float array or CPU/GPU tensor) as float16, atomically."""
        arr = _to_numpy(embedding).astype(np.float16)
        if self.shape is not None and arr.shape != self.shape:
            raise ValueError(f"embedding has shape {arr.shape}, but this cache holds {self.shape}")
        path = self.path(key)
        with atomic_path(path) as tmp:
            np.save(tmp, arr, allow_pickle=False)
        return path

    def remove_stale_tmp(self, older_than_s: float = _STALE_TMP_S) -> int:
        """Delete temporary files left by interrupted writes; return how many."""
        if not self.folder.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        n = 0
        for p in self.folder.glob(f"*/{temp_glob()}"):
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    n += 1
            except FileNotFoundError:
                pass
        return n

    def _discard(self, path: Path, why: str) -> None:
        warnings.warn(f"discarding corrupt embedding cache entry {path}: {why}; it will be recomputed",
                      RuntimeWarning, stacklevel=3)
        path.unlink(missing_ok=True)


def forget_keys(cache_dir: str | Path, keys: Iterable[str]) -> dict[str, int]:
    """Delete every cached embedding of ``keys``, under every model id: erasing images.

    Removes ``<cache_dir>/<model_id>/<key[:2]>/<key>.npy`` for each model folder, and the
    temporary files of writes of those keys (:func:`labkit._util.atomic.temp_glob`), whatever
    their age. Idempotent: keys with nothing cached count zero. Use it when images leave
    a project (right to erasure); the cache of a project is :func:`project_cache_dir`.

    Parameters
    ----------
    cache_dir : path
        An embedding cache folder. A missing folder holds nothing (zero counts).
    keys : iterable of str
        Image keys: the ``sha256`` of ``project.images()`` for project images.

    Returns
    -------
    dict
        ``{"embedding_files_removed": n, "tmp_files_removed": m}``: counts only, no keys.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> _ = EmbeddingCache(folder, "model-a").save("ab12", np.ones((2, 2)))
    >>> _ = EmbeddingCache(folder, "model-b").save("ab12", np.ones((2, 2)))
    >>> forget_keys(folder, ["ab12", "cd34"])
    {'embedding_files_removed': 2, 'tmp_files_removed': 0}
    >>> forget_keys(folder, ["ab12"])["embedding_files_removed"]
    0
    """
    if isinstance(keys, (str, bytes)):
        raise ValueError(f"keys is a single string ({keys!r}); pass a list of image keys")
    keys = sorted({check_key(k) for k in keys})
    root = Path(cache_dir)
    if root.exists() and not root.is_dir():
        raise ValueError(f"cache_dir {root} is a file; expected an embedding cache folder")
    out = {"embedding_files_removed": 0, "tmp_files_removed": 0}
    if not root.is_dir() or not keys:
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for key in keys:
            sub = folder / key[:2]
            if not sub.is_dir():
                continue
            out["embedding_files_removed"] += _unlink(sub / f"{key}.npy")
            # keys are [0-9A-Za-z_.+-]: nothing in them is a glob pattern
            for tmp in sub.glob(temp_glob(f"{key}.npy")):
                out["tmp_files_removed"] += _unlink(tmp)
    return out


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return 1


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, possibly on a GPU
        x = x.detach().to("cpu").numpy()
    return np.asarray(x)
