"""Precomputing a project's image embeddings into a segmenter's cache, here or on a Dask cluster.

:func:`precompute_embeddings` encodes every image the cache does not hold yet (the
expensive half of SAM: 11-12.5 s per image for ViT-B on two CPU cores), so labeling
sessions only decode prompts. ``labkit embed`` calls it.

Here, images are read one by one through the project's audited reader
(``project.read_image``, hash-checked) and encoded by the segmenter itself. On a Dask
cluster (``client=``), the client lists the images through the audited bulk reader
(``project.image_files``), sends the model to every worker once, and submits one task per
batch of images (:func:`encode_batch`); workers read each file from the path (or from
bytes the client sends, ``ship_images=True``), check it against the image's sha256,
encode it and write the cache entry into the shared cache folder, and the client
re-hashes every entry before it counts. Entries are the same files, under the same keys,
as the local path writes (``np.save`` of the float16 embedding; see ``docs/scale.md``
for when the bytes can differ).

Resumable either way: images whose key is in the cache are skipped, and every entry is
written to a temporary file and renamed (:mod:`labkit._util.atomic`), so an interrupted
run leaves no partial entry.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit.store.protocol import ProjectLike

__all__ = ["STATUSES", "EncoderSpec", "encode_batch", "portable_module", "precompute_embeddings"]

#: What :func:`precompute_embeddings` reports per image.
STATUSES = ("computed", "skipped", "failed")


def precompute_embeddings(project: ProjectLike, segmenter: Any, *, images: Sequence[int] | None = None,
                          client: Any = None, progress: bool = True, batch_size: int = 16,
                          ship_images: bool = False, device: Any = None) -> pd.DataFrame:
    """Encode the project's images into ``segmenter``'s embedding cache; one row per image.

    Parameters
    ----------
    project : labkit.Project
    segmenter : SamSegmenter
        A segmenter with embeddings (``load_segmenter("sam_vit_b", checkpoint=...,
        cache_dir=project_cache_dir(project))``); its cache is where the entries go.
    images : sequence of int, optional
        Image ids (default: every image ``project.images()`` shows).
    client : distributed.Client, optional
        Encode on this Dask cluster: one task per ``batch_size`` images. The workers
        write into the segmenter's cache folder, which they must see at the same path
        (a shared file system) unless ``ship_images=True``.
    progress : bool, default True
        Show a progress bar (and the Dask dashboard's address, when there is one).
    batch_size : int, default 16
        Images per Dask task (ViT-B: 3 minutes of a CPU core, a few seconds of a GPU).
    ship_images : bool, default False
        With a ``client`` whose workers cannot see the project's files or the cache: the
        client reads the images and sends their bytes, the workers return the entries'
        bytes, and the client writes them.
    device : str, optional
        The workers' device (default: CUDA where a worker has it, else its CPU). Unused
        without a ``client``: the segmenter encodes on its own device.

    Returns
    -------
    pandas.DataFrame
        Indexed by image id (``"image"``), in the order of ``images``: ``sha256`` (the
        cache key), ``status`` (``"computed"``, ``"skipped"``: already cached, or
        ``"failed"``) and ``error`` (why it failed: a missing or changed file, or a cache
        entry the client could not confirm; else ``None``). ``attrs`` holds ``summary``
        (counts per status), ``model_id`` and ``cache`` (the folder).

    Examples
    --------
    ::

        seg = load_segmenter("sam_vit_b", checkpoint="sam_vit_b_01ec64.pth",
                             cache_dir=project_cache_dir(project))
        table = precompute_embeddings(project, seg)                  # here
        table = precompute_embeddings(project, seg, client=client)   # on a Dask cluster
        table.attrs["summary"]     # {'computed': ..., 'skipped': ..., 'failed': ...}
    """
    if not getattr(segmenter, "has_embeddings", False):
        name = getattr(segmenter, "name", type(segmenter).__name__)
        raise ValueError(f"segmenter {name!r} has no embeddings to precompute; use a SAM segmenter "
                         "(sam_vit_b, sam_vit_l, sam_vit_h)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size is {batch_size!r}; expected a positive integer (images per task)")
    if not isinstance(ship_images, bool):
        raise ValueError(f"ship_images is {ship_images!r}; expected True or False")
    table = project.images()
    if images is not None:
        if isinstance(images, (str, bytes)) or not isinstance(images, (Sequence, np.ndarray, pd.Index)):
            raise ValueError(f"images is {images!r}; expected a list of image ids")
        ids = [int(i) for i in images]
        unknown = sorted(set(ids) - set(table.index))
        if unknown:
            raise ValueError(f"no image {unknown[:10]} in the project (ids are listed by project.images())")
        table = table.loc[ids]
    cache = segmenter.cache
    cache.remove_stale_tmp()
    keys = table["sha256"].astype(str)
    cached = np.array([segmenter.is_cached(k) for k in keys], bool)
    out = pd.DataFrame({"sha256": keys.to_numpy(), "status": np.where(cached, "skipped", "computed"),
                        "error": None}, index=pd.Index(table.index.astype(np.int64), name="image"))
    out["status"] = out["status"].astype(object)
    out["error"] = out["error"].astype(object)
    todo = [int(i) for i in out.index[~cached]]
    if todo and client is None:
        failed = _here(project, segmenter, todo, out["sha256"], progress)
    elif todo:
        failed = _on_cluster(project, segmenter, todo, client, progress=progress, batch_size=batch_size,
                             ship=ship_images, device=device)
    else:
        failed = {}
    for image, why in failed.items():
        out.at[image, "status"] = "failed"
        out.at[image, "error"] = why
    counts = out["status"].value_counts()
    out.attrs = {"summary": {s: int(counts.get(s, 0)) for s in STATUSES}, "model_id": segmenter.model_id,
                 "cache": str(cache.folder)}
    return out


def _here(project: ProjectLike, segmenter: Any, todo: list[int], keys: pd.Series, progress: bool) -> dict[int, str]:
    from labkit._util.progress import progress_bar

    failed: dict[int, str] = {}
    for image in progress_bar(todo, desc="embedding", unit="img", disable=not progress):
        try:
            segmenter.precompute(project.read_image(image), key=str(keys[image]))
        except (ValueError, OSError) as exc:  # a missing or changed file: report it, go on
            failed[image] = str(exc)
    return failed


# ------------------------------------------------------------------ on Dask --
@dataclass(frozen=True)
class EncoderSpec:
    """What a worker needs to encode as the client's segmenter does (sent once to every worker).

    Pickled whole: Dask's own serialiser of torch modules would turn the module's hook
    tables into plain dicts, to which torch cannot register hooks again.
    """

    model: Any  # the segmenter's Sam, on the CPU, without hooks (portable_module)
    model_id: str
    name: str
    cache_root: str | None  # the shared cache folder; None: return the entries' bytes
    device: str | None


def portable_module(module: Any) -> Any:
    """A copy of a torch module on the CPU without its hooks, which can be pickled and sent to workers.

    A segmenter installs forward hooks that refer to its threads' locks (the background
    encoder's yield points); the copy leaves them out, the weights and buffers are the same.
    """
    import copy

    memo: dict[int, Any] = {}
    for m in module.modules():
        for attr in ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks", "_backward_pre_hooks"):
            hooks = getattr(m, attr, None)
            if hooks:
                memo[id(hooks)] = OrderedDict()
    return copy.deepcopy(module, memo).to("cpu").eval()


#: Segmenters a worker process keeps, by model, cache folder and device (the last one).
_SEGMENTERS: OrderedDict[tuple, Any] = OrderedDict()


def _worker_segmenter(spec: EncoderSpec) -> Any:
    import tempfile

    from labkit.models.segmenters.sam import SamSegmenter

    key = (spec.model_id, spec.cache_root, spec.device)
    seg = _SEGMENTERS.get(key)
    if seg is None:
        root = spec.cache_root or tempfile.mkdtemp(prefix="labkit-embed-")
        seg = SamSegmenter(spec.model, model_id=spec.model_id, name=spec.name, device=spec.device,
                           cache_dir=root, decoder="torch", memory_items=1)
        _SEGMENTERS.clear()
        _SEGMENTERS[key] = seg
    return seg


def encode_batch(spec: EncoderSpec, batch: list[Any], keys: list[str], names: list[str]) -> list[tuple[str, Any]]:
    """A Dask task: encode images into the cache; per image ``("ok", sha256 or bytes)`` or ``("failed", why)``.

    ``batch`` holds paths (str) or the files' bytes. Each is checked against its key.
    With a shared cache (``spec.cache_root``) the entry is written there and its sha256
    returned; without, the entry's bytes are returned and nothing is left on the worker.
    """
    import io

    from PIL import Image

    from labkit._util.dask import torch_friendly_malloc
    from labkit.models.pool._images import read_checked
    from labkit.store.errors import ImageError

    torch_friendly_malloc()
    seg = _worker_segmenter(spec)
    out: list[tuple[str, Any]] = []
    for source, key, name in zip(batch, keys, names):
        try:
            data = read_checked(source, key, name)
            with Image.open(io.BytesIO(data)) as im:  # as the store's reader decodes
                image = np.asarray(im.convert("RGB"))
        except (ValueError, OSError) as exc:  # missing, changed or undecodable: report, go on
            out.append(("failed", str(exc)))
            continue
        try:
            seg.precompute(image, key=key)
        except Exception as exc:
            raise ImageError(f"{name}: encoding failed on the Dask worker ({type(exc).__name__}: {exc})") from exc
        path = seg.cache.path(key)
        entry = path.read_bytes()
        if spec.cache_root is None:
            path.unlink()
            out.append(("ok", entry))
        else:
            out.append(("ok", hashlib.sha256(entry).hexdigest()))
    return out


def _on_cluster(project: ProjectLike, segmenter: Any, todo: list[int], client: Any, *, progress: bool,
                batch_size: int, ship: bool, device: Any) -> dict[int, str]:
    from labkit._util.atomic import write_bytes
    from labkit._util.dask import check_client, run_tasks
    from labkit._util.hashing import sha256_file
    from labkit.store.errors import FixableError, ImageError

    client = check_client(client)
    files = project.image_files(todo, purpose=f"embedding precompute ({segmenter.model_id})")
    ids = [int(i) for i in files.index]
    paths = [Path(p) for p in files["path"]]
    keys = files["sha256"].astype(str).tolist()
    cache = segmenter.cache
    spec = client.scatter(EncoderSpec(portable_module(segmenter.sam), segmenter.model_id,
                                      str(getattr(segmenter, "name", "sam")),
                                      None if ship else str(Path(cache.root).resolve()),
                                      None if device is None else str(device)), broadcast=True, hash=False)
    batches = [list(range(i, min(i + batch_size, len(ids)))) for i in range(0, len(ids), batch_size)]
    failed: dict[int, str] = {}

    def args(batch: list[int]) -> tuple:
        if ship:
            sources: list[Any] = []
            for j in batch:
                try:
                    sources.append(paths[j].read_bytes())
                except OSError:  # the worker reports it, as it would a missing file
                    sources.append(str(paths[j]))
        else:
            sources = [str(paths[j]) for j in batch]
        return (spec, sources, [keys[j] for j in batch], [f"image {ids[j]}" for j in batch])

    def done(batch: list[int], results: list[tuple[str, Any]]) -> None:
        for j, (status, value) in zip(batch, results):
            image, key = ids[j], keys[j]
            path = cache.path(key)
            if status != "ok":
                failed[image] = str(value)
            elif ship:
                write_bytes(path, value)
            elif not path.is_file() or sha256_file(path) != value:
                seen = "is not there" if not path.is_file() else "holds other bytes"
                path.unlink(missing_ok=True)
                failed[image] = (f"image {image}: a Dask worker wrote {path}, which {seen} on this machine; "
                                 "the workers must see the cache folder at the same path (or pass "
                                 "ship_images=True)")

    def error(batch: list[int], exc: BaseException) -> BaseException:
        if isinstance(exc, FixableError):
            return exc
        return ImageError(f"images {ids[batch[0]]} .. {ids[batch[-1]]}: embedding failed on the Dask cluster "
                          f"({type(exc).__name__}: {exc}); finished images are kept: run again to resume")

    run_tasks(client, encode_batch, batches, args=args, on_result=done, error=error, weight=len,
              name=lambda b: f"images {ids[b[0]]} .. {ids[b[-1]]}", desc="embedding (Dask)", unit="img",
              progress=progress)
    return failed
