"""What a pool scores: a project's images, image files or arrays, each with a content key.

The *key* of an image is the sha256 of the bytes the models see: the file's bytes for a
project image or a path (computed now, so a file changed since import gets a new key), the
pixels' hash (:func:`labkit.models.embeddings.image_key`) for an array. Saved predictions
and cross-fitting folds are keyed by it, so a changed image never reuses a stale result.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit.store.protocol import ProjectLike


@dataclass
class ImageSet:
    """N images to score: ids (the index of results), content keys, and where to read each."""

    ids: pd.Index  # named "image"
    keys: np.ndarray  # (N,) str, sha256 hex
    paths: list[Path] | None  # files, or None for arrays
    arrays: Sequence[np.ndarray] | None
    project: ProjectLike | None = None

    def __len__(self) -> int:
        return len(self.ids)


def image_set(images: Any, *, verify: bool = True, progress: bool = False,
              purpose: str = "pool scoring", client: Any = None) -> ImageSet:
    """Describe ``images``: a :class:`labkit.Project`, a sequence of paths, or HWC uint8 arrays.

    A project's images are listed through its audited bulk reader
    (:meth:`~labkit.store.ProjectLike.image_files`, logged with ``purpose``), so the
    privacy report's "who read what" shows the pool's reads. Every file is hashed. A
    file whose bytes no longer match the sha256 recorded at import raises
    :class:`labkit.ImageError` (listing all of them) unless ``verify=False``, which
    scores the current bytes under their own key. With a Dask ``client``, the files are
    hashed by its workers (:func:`labkit._util.dask.sha256_batch`), which must see them.
    """
    from labkit.store.errors import ImageError

    if isinstance(images, ProjectLike):
        return project_files(images, None, verify=verify, progress=progress, purpose=purpose, client=client)
    if isinstance(images, (str, Path)):
        raise ValueError(f"images is a single path ({images!r}); pass a project, a list of image "
                         "paths, or a list of (H, W, 3) uint8 arrays")
    if isinstance(images, np.ndarray) and images.ndim == 4:
        arrays: Sequence[Any] = list(images)
    elif isinstance(images, np.ndarray):
        raise ValueError(f"images is an array of shape {images.shape}; expected (N, H, W, 3) uint8, "
                         "or a list of (H, W, 3) arrays")
    else:
        try:
            arrays = list(images)
        except TypeError:
            raise ValueError(f"images has type {type(images).__name__}; expected a labkit.Project, "
                             "a list of image paths or a list of (H, W, 3) uint8 arrays") from None
    if not arrays:
        raise ValueError("images is empty; expected at least one image")
    ids = pd.RangeIndex(len(arrays), name="image")
    if all(isinstance(a, (str, Path)) for a in arrays):
        paths = [Path(a) for a in arrays]
        keys = hash_files(paths, progress=progress, client=client)
        missing = [str(p) for p, k in zip(paths, keys) if k is None]
        if missing:
            raise ImageError(f"{len(missing)} image file(s) not found: {missing[:20]}")
        return ImageSet(ids, np.array(keys, dtype="U64"), paths, None)
    from labkit.models.embeddings import image_key

    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            what = (f"shape {a.shape}, dtype {a.dtype}" if isinstance(a, np.ndarray)
                    else f"type {type(a).__name__}")
            raise ValueError(f"images[{i}] has {what}; expected an (H, W, 3) uint8 RGB array or an "
                             "image path (convert grayscale with np.stack([g] * 3, -1))")
    return ImageSet(ids, np.array([image_key(a) for a in arrays], dtype="U64"), None, arrays)


def project_files(project: ProjectLike, ids: Sequence[int] | None, *, purpose: str, verify: bool = True,
                  progress: bool = False, rehash: bool = True, client: Any = None) -> ImageSet:
    """A project's images (``ids``, default all it shows the reader) read through its audited reader.

    With ``rehash``, every file is hashed now: a missing file raises, and a changed one
    raises unless ``verify=False`` (then it is keyed by its current bytes). Without, the
    keys are the hashes recorded at import and :class:`ImageDataset` checks each file's
    bytes against them as it reads. With a Dask ``client``, its workers hash the files.
    """
    from labkit.store.errors import ImageError

    files = project.image_files(ids, purpose=purpose)
    paths = list(files["path"])
    recorded = files["sha256"].to_numpy().astype("U64")
    if not rehash:
        return ImageSet(files.index, recorded, paths, None, project)
    keys = hash_files(paths, progress=progress, client=client)
    missing = [(i, p) for i, p, k in zip(files.index, paths, keys) if k is None]
    if missing:
        lines = "\n".join(f"  image {i}: {p}" for i, p in missing[:20])
        raise ImageError(f"{len(missing)} image file(s) of the project are missing (moved or "
                         f"deleted since import); restore them:\n{lines}")
    changed = [(i, p) for i, p, k, h in zip(files.index, paths, keys, recorded) if k != h]
    if changed and verify:
        lines = "\n".join(f"  image {i}: {p}" for i, p in changed[:20])
        raise ImageError(f"{len(changed)} image file(s) changed since import (their sha256 no "
                         f"longer matches); restore or re-import them, or pass verify=False to "
                         f"score the current bytes:\n{lines}")
    return ImageSet(files.index, np.array(keys, dtype="U64"), paths, None, project)


def hash_files(paths: Sequence[Path], *, progress: bool, client: Any = None) -> list[str | None]:
    """sha256 of each file (None: missing), here on 4 threads or by the workers of a Dask ``client``."""
    from labkit._util.hashing import sha256_file
    from labkit._util.progress import progress_bar

    if client is not None:
        from labkit._util.dask import map_batches, sha256_batch

        return map_batches(client, sha256_batch, [str(p) for p in paths], batch_size=512,
                           desc="hashing images", unit="img", progress=progress and len(paths) >= 2000,
                           name=lambda b: f"{len(b)} image files from {b[0]}")

    def one(p: Path) -> str | None:
        try:
            return sha256_file(p)
        except FileNotFoundError:
            return None

    with ThreadPoolExecutor(max_workers=4) as ex:  # hashlib releases the GIL
        return list(progress_bar(ex.map(one, paths), total=len(paths), desc="hashing images", unit="img",
                         disable=not progress or len(paths) < 2000))


class ImageDataset:
    """``torch.utils.data.Dataset`` of ``(position, uint8 tensor (3, S, S))``.

    Images are squashed to S x S (bilinear, aspect ratio not kept). A file is hashed as it
    is read: bytes that differ from the key raise, so a file changed mid-run is never used.
    """

    def __init__(self, images: ImageSet, positions: Sequence[int] | np.ndarray, size: int):
        # only what workers need (a project's database engine does not pickle)
        self.paths, self.arrays, self.keys = images.paths, images.arrays, images.keys
        self.positions, self.size = list(positions), int(size)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, j: int):
        import torch

        i = self.positions[j]
        return i, torch.from_numpy(np.ascontiguousarray(self.read(i).transpose(2, 0, 1)))

    def read(self, i: int) -> np.ndarray:
        """Image ``i`` as an (S, S, 3) uint8 array."""
        import hashlib

        from PIL import Image

        from labkit.store.errors import ImageError

        if self.arrays is not None:
            im = Image.fromarray(self.arrays[i])
        elif self.paths is not None:
            path = self.paths[i]
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != self.keys[i]:
                raise ImageError(f"{path} changed while the pool was scoring it; run again")
            im = Image.open(io.BytesIO(data)).convert("RGB")
        else:
            raise ValueError("an ImageSet holds neither paths nor arrays")
        return squash(im, self.size)


def squash(im: Any, size: int) -> np.ndarray:
    """A PIL image as ``(size, size, 3)`` uint8: resized (bilinear, aspect not kept) when it differs."""
    from PIL import Image

    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


# ------------------------------------------------------------- on Dask workers --
def sources(images: ImageSet, positions: Sequence[int] | np.ndarray, *, ship: bool) -> list[Any]:
    """What a worker reads for the images at ``positions``: their paths (as ``str``), or with
    ``ship`` their bytes read here (arrays are always sent)."""
    if images.arrays is not None:
        return [images.arrays[i] for i in positions]
    if images.paths is None:
        raise ValueError("an ImageSet holds neither paths nor arrays")
    if not ship:
        return [str(images.paths[i]) for i in positions]
    from labkit.store.errors import ImageError

    out: list[Any] = []
    for i in positions:
        try:
            out.append(images.paths[i].read_bytes())
        except FileNotFoundError:
            raise ImageError(f"{describe(images, i)} is missing: {images.paths[i]} (moved or deleted "
                             "since import); restore it") from None
    return out


def describe(images: ImageSet, i: int) -> str:
    """How messages name image ``i`` of a set: ``image 17`` (a project's id) or ``images[3]``."""
    return f"image {images.ids[i]}" if images.project is not None else f"images[{images.ids[i]}]"


def read_checked(source: Any, key: str, name: str) -> bytes:
    """The bytes of an image file (a path, or bytes a client sent), checked against its sha256 ``key``."""
    import hashlib
    import socket

    from labkit.store.errors import ImageError

    if isinstance(source, (bytes, bytearray, memoryview)):
        data, what = bytes(source), "the bytes the client sent do not match"
    else:
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{name}: {source} does not exist on the Dask worker's machine "
                             f"({socket.gethostname()}); if the workers do not share the project's file "
                             "system, pass ship_images=True") from None
        what = f"{source} no longer matches"
    if hashlib.sha256(data).hexdigest() != key:
        raise ImageError(f"{name}: {what} its sha256 (the file changed since it was imported or "
                         "hashed); restore the original file or re-import it")
    return data


def decode_batch(batch: list[Any], keys: list[str], names: list[str], size: int) -> np.ndarray:
    """A Dask task: images (paths, bytes or arrays) as uint8 ``(B, 3, size, size)``, as ImageDataset reads them.

    Each file's bytes are checked against its key; an image that cannot be used raises
    :class:`labkit.ImageError` naming it (``names[j]``).
    """
    from PIL import Image, UnidentifiedImageError

    from labkit.store.errors import ImageError

    out = np.empty((len(batch), 3, size, size), np.uint8)
    for j, (source, key, name) in enumerate(zip(batch, keys, names)):
        if isinstance(source, np.ndarray):
            im = Image.fromarray(source)
        else:
            data = read_checked(source, key, name)
            try:
                im = Image.open(io.BytesIO(data)).convert("RGB")
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise ImageError(f"{name}: cannot decode {source if isinstance(source, str) else 'its bytes'} "
                                 f"as an image ({type(exc).__name__}: {exc})") from None
        out[j] = squash(im, size).transpose(2, 0, 1)
    return out


def stack(parts: list[np.ndarray]) -> np.ndarray:
    """A Dask task: decoded batches as one array (the order given)."""
    return np.concatenate(parts) if parts else np.empty((0, 3, 1, 1), np.uint8)


def _worker_init(_: int) -> None:
    import torch

    torch.set_num_threads(1)  # workers only decode; leave the cores to the models


def batches(images: ImageSet, positions: Sequence[int] | np.ndarray, *, size: int, batch_size: int,
            num_workers: int, pin_memory: bool = False):
    """Yield ``(positions (B,), uint8 tensor (B, 3, S, S))`` in order, decoded by DataLoader workers."""
    import torch
    from torch.utils.data import DataLoader

    ds = ImageDataset(images, positions, size)
    # its own generator: a DataLoader otherwise draws its workers' seed from the caller's RNG
    loader: Any = DataLoader(ds, batch_size=batch_size, shuffle=False,  # type: ignore[arg-type]  # map-style
                             num_workers=num_workers, pin_memory=pin_memory,
                             worker_init_fn=_worker_init if num_workers else None,
                             generator=torch.Generator().manual_seed(0))
    for pos, x in loader:
        yield pos.numpy(), x
