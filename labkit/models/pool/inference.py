"""``ModelPool.predict``: saved predictions first, then batched scoring of what is missing.

Images are decoded by DataLoader workers, once, and each batch goes through every
member's models before the next is read. With cross-fitting, the batch's images that
fold ``f`` held out go only through fold ``f``'s model; images no fold trained on go
through all of them and get the mean. Finished batches are saved in shards as they
accumulate, so an interrupted run resumes where it stopped.

On a Dask cluster (``client=``) the same arithmetic runs as tasks: one per image batch
that decodes it (:func:`labkit.models.pool._images.decode_batch`), then one per (member,
batch) that runs the member's fold models on it (:func:`score_member`), with the same
out-of-sample routing. Workers read the images and weights from paths they must see, or
from bytes the client sends (``ship_images=True``), check each against its sha256, and
return probabilities; the client saves the shards.
"""
from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit._util.clock import utc_iso

from . import _images, _torch
from ._store import PredictionStore
from .members import PoolPredictions, versions


def predict(pool: Any, images: Any, *, batch_size: int, num_workers: int, device: Any,
            threads: int | None, verify: bool, cache: bool, cache_dir: Any, shard_size: int,
            progress: bool, client: Any = None, ship_images: bool = False):
    """See :meth:`ModelPool.predict`."""

    for what, v, lo in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0),
                        ("shard_size", shard_size, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{what} is {v!r}; expected an integer >= {lo}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads is {threads!r}; expected a positive integer or None")
    if client is not None:
        from labkit._util.dask import check_client

        client = check_client(client)
    if not isinstance(ship_images, bool):
        raise ValueError(f"ship_images is {ship_images!r}; expected True or False")
    # shipping: the client reads every file anyway, so it hashes them too
    iset = _images.image_set(images, verify=verify, progress=progress,
                             client=None if ship_images else client)
    folder = None
    if cache:
        if cache_dir is not None:
            folder = Path(cache_dir) / pool.id
        elif iset.project is not None:
            folder = Path(iset.project.root) / "predictions" / pool.id
        elif pool.home is not None:  # <project>/pool/<name> -> <project>/predictions
            folder = pool.home.parents[1] / "predictions" / pool.id
    M, K = len(pool), len(pool.classes)
    store = PredictionStore(folder, pool.manifest(), M, K) if folder is not None else None
    # each distinct content is looked up and scored once
    ukeys, first, inverse = np.unique(iset.keys, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    if store is not None:
        uprobs, found, when = store.lookup(ukeys)
    else:
        uprobs = np.zeros((M, len(ukeys), K), np.float32)
        found, when = np.zeros(len(ukeys), bool), [None] * len(ukeys)
    todo = np.flatnonzero(~found)
    device_used = None
    if todo.size and client is not None:
        device_used = score_on_cluster(pool, iset, first[todo], ukeys[todo], uprobs, todo, when,
                                       store=store, batch_size=batch_size, device=device, threads=threads,
                                       shard_size=shard_size, progress=progress, client=client,
                                       ship=ship_images)
    elif todo.size:
        with _torch.num_threads(threads):
            device_used = score(pool, iset, first[todo], ukeys[todo], uprobs, todo, when,
                                store=store, batch_size=batch_size, num_workers=num_workers,
                                device=device, shard_size=shard_size, progress=progress)
    provenance = {
        "pool_id": pool.id, "models": list(pool.names),
        "checkpoints": {m.name: list(m.sha256) for m in pool.members},
        "archs": {m.name: m.arch for m in pool.members},
        "classes": pool.classes, "image_size": pool.image_size,
        "images": [int(i) if isinstance(i, (int, np.integer)) else i for i in iset.ids],
        "sha256": iset.keys.tolist(), "computed_at": [when[j] for j in inverse],
        "computed": int(todo.size), "reused": int(len(ukeys) - todo.size),
        "device": device_used, "saved_to": None if folder is None else str(folder),
        "returned_at": utc_iso(), **versions()}
    if client is not None:
        provenance["dask_scheduler"] = str(client.scheduler.address)
    return PoolPredictions(probs=uprobs[:, inverse], images=iset.ids, models=pool.names,
                           classes=tuple(pool.classes), fold=pool.fold_of(iset.keys),
                           sha256=iset.keys, provenance=provenance)


def load_models(pool: Any, device: Any) -> list[list]:
    """The members' models (one per fold) on ``device``, loaded once and checked by hash."""
    key = str(device)
    if key not in pool._models:
        loaded = [load_member(m, len(pool.classes), device) for m in pool.members]
        pool._models = {key: loaded}  # one device at a time
    return pool._models[key]


def load_member(member: Any, num_classes: int, device: Any, weights: Sequence[Any] | None = None) -> list:
    """A member's fold models on ``device``, from its weight files or the files' bytes (``weights``).

    Each file's (or bytes') sha256 must be the one the member records.
    """
    import hashlib
    import tempfile

    from labkit._util.hashing import sha256_file

    folds = []
    for f, (path, digest) in enumerate(zip(member.weights, member.sha256)):
        data = None if weights is None else weights[f]
        if data is None:
            if not Path(path).is_file():
                raise FileNotFoundError(f"member {member.name!r}: weights {path} are missing")
            actual = sha256_file(path)
        else:
            actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise ValueError(f"member {member.name!r}: {path} changed since the pool was "
                             "built (sha256 differs); rebuild the pool")
        model = _torch.create(member.arch, num_classes)
        if data is None:
            _torch.load_weights(model, Path(path), what=f"member {member.name!r}")
        else:  # sent by the client: read from a private file, by the same (tensors-only) reader
            with tempfile.TemporaryDirectory(prefix="labkit-weights-") as tmp:
                local = Path(tmp) / Path(path).name
                local.write_bytes(data)
                _torch.load_weights(model, local, what=f"member {member.name!r}")
        folds.append(_torch.prepare(model, device))
    return folds


def member_probs(fold_models: Sequence[Any], xb: Any, fb: np.ndarray, device: Any, num_classes: int) -> np.ndarray:
    """``(B, K)`` probabilities of one member for the normalised batch ``xb`` (cross-fitted routing).

    Image ``i`` goes through the model of its fold ``fb[i]`` only; an image no fold held out
    (``fb[i] < 0``) through every fold's model, averaged.
    """
    import torch

    F = len(fold_models)
    probs = np.zeros((len(fb), num_classes), np.float32)
    for f, model in enumerate(fold_models):
        sel = (fb == f) | (fb < 0)
        if not sel.any():
            continue
        xs = xb if sel.all() else xb[torch.from_numpy(sel).to(xb.device)]
        weight = np.where(fb[sel] < 0, 1.0 / F, 1.0).astype(np.float32)[:, None]
        probs[sel] += _torch.softmax_probs(model, xs, device) * weight
    return probs


def score(pool: Any, iset: _images.ImageSet, positions: np.ndarray, keys: np.ndarray,
          out: np.ndarray, slots: np.ndarray, when: list, *, store: Any, batch_size: int,
          num_workers: int, device: Any, shard_size: int, progress: bool) -> str:
    """Score ``iset`` images at ``positions`` (content ``keys``) into ``out[:, slots]``; return the device."""
    from labkit._util.progress import progress_bar

    dev = _torch.pick_device(device)
    models = load_models(pool, dev)
    norms: dict[tuple, Any] = {}
    for m in pool.members:
        norms.setdefault((m.mean, m.std), _torch.normalizer(m.mean, m.std, dev))
    fold = pool.fold_of(keys)
    M, K = len(pool), len(pool.classes)
    meta = {"device": str(dev), "pool_id": pool.id, "models": list(pool.names)}
    pending: list[tuple[np.ndarray, np.ndarray]] = []
    n_pending = 0

    def flush() -> None:
        nonlocal pending, n_pending
        if store is not None and pending:
            j = np.concatenate([p[0] for p in pending])
            t = store.add(keys[j], np.concatenate([p[1] for p in pending], axis=1), meta)
            for s in slots[j]:
                when[s] = t
        pending, n_pending = [], 0

    done = 0
    with progress_bar(total=len(positions), desc=f"pool predict ({M} models, {dev.type})", unit="img",
              disable=not progress) as bar:
        for _, x in _images.batches(iset, positions, size=pool.image_size, batch_size=batch_size,
                                    num_workers=num_workers, pin_memory=dev.type == "cuda"):
            j = np.arange(done, done + len(x))
            fb = fold[j]
            probs = np.zeros((M, len(j), K), np.float32)
            inputs = {k: f(x) for k, f in norms.items()}
            for m, (member, fold_models) in enumerate(zip(pool.members, models)):
                probs[m] = member_probs(fold_models, inputs[(member.mean, member.std)], fb, dev, K)
            out[:, slots[j]] = probs
            pending.append((j, probs))
            n_pending += len(j)
            done += len(j)
            bar.update(len(j))
            if n_pending >= shard_size:
                flush()
        flush()
    return str(dev)


# ------------------------------------------------------------------ on Dask --
#: Fold models a worker process keeps loaded, by member and device: the last few members,
#: so a worker scoring batch after batch of one member loads its weights once.
_LOADED: OrderedDict[tuple, list] = OrderedDict()
_KEEP_MEMBERS = 2


def score_member(member: Any, weights: Sequence[Any] | None, x: np.ndarray, fold: np.ndarray,
                 num_classes: int, device: Any, threads: int | None) -> tuple[np.ndarray, str]:
    """A Dask task: ``(probs (B, K), device)`` of one pool member for a decoded batch ``x (B, 3, S, S)``.

    ``weights``: the member's weight files' bytes (sent by the client), or None to read
    its files. Either is checked against the member's sha256 before it is used.
    """
    import torch

    from labkit._util.dask import torch_friendly_malloc

    torch_friendly_malloc()
    dev = _torch.pick_device(device)
    key = (member.arch, num_classes, tuple(member.sha256), str(dev))
    models = _LOADED.get(key)
    if models is None:
        models = load_member(member, num_classes, dev, weights)
        _LOADED[key] = models
        while len(_LOADED) > _KEEP_MEMBERS:
            _LOADED.popitem(last=False)
    _LOADED.move_to_end(key)
    with _torch.num_threads(threads):
        xb = _torch.normalizer(member.mean, member.std, dev)(torch.from_numpy(np.ascontiguousarray(x)))
        return member_probs(models, xb, np.asarray(fold), dev, num_classes), str(dev)


def score_on_cluster(pool: Any, iset: _images.ImageSet, positions: np.ndarray, keys: np.ndarray,
                     out: np.ndarray, slots: np.ndarray, when: list, *, store: Any, batch_size: int,
                     device: Any, threads: int | None, shard_size: int, progress: bool, client: Any,
                     ship: bool) -> str:
    """:func:`score` on a Dask cluster: a decode task per batch, a scoring task per (member, batch)."""
    from labkit._util.dask import run_tasks
    from labkit.store.errors import FixableError, ImageError

    fold = pool.fold_of(keys)
    M, K = len(pool), len(pool.classes)
    meta = {"device": None, "pool_id": pool.id, "models": list(pool.names)}
    n = len(positions)
    batches = [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    weights: list[Any] = [None] * M
    if ship:  # each weight file crosses the network once, to every worker
        weights = [[client.scatter(Path(w).read_bytes(), broadcast=True, hash=False) for w in m.weights]
                   for m in pool.members]
    decoded: dict[int, Any] = {}
    parts: dict[int, dict[int, np.ndarray]] = {}
    devices: set[str] = set()
    pending: list[tuple[np.ndarray, np.ndarray]] = []
    n_pending = 0

    def names(j: np.ndarray) -> list[str]:
        return [_images.describe(iset, int(i)) for i in positions[j]]

    def args(item: tuple[int, int]) -> tuple:
        b, m = item
        if b not in decoded:  # decoded once, for all members (the scheduler keeps it near them)
            j = batches[b]
            decoded[b] = client.submit(
                _images.decode_batch, _images.sources(iset, positions[j], ship=ship), keys[j].tolist(),
                names(j), pool.image_size, key=f"labkit-decode-{uuid.uuid4().hex[:8]}-{b}", pure=False)
        return (pool.members[m], weights[m], decoded[b], fold[batches[b]], K, device, threads)

    def flush() -> None:
        nonlocal pending, n_pending
        if store is not None and pending:
            j = np.concatenate([p[0] for p in pending])
            t = store.add(keys[j], np.concatenate([p[1] for p in pending], axis=1),
                          {**meta, "device": ",".join(sorted(devices))})
            for s in slots[j]:
                when[s] = t
        pending, n_pending = [], 0

    def done(item: tuple[int, int], result: tuple[np.ndarray, str]) -> None:
        nonlocal n_pending
        b, m = item
        probs, dev = result
        devices.add(dev)
        got = parts.setdefault(b, {})
        got[m] = probs
        if len(got) < M:
            return
        del parts[b]
        decoded.pop(b, None)  # every member has it: let the workers drop the decoded batch
        j = batches[b]
        batch_probs = np.stack([got[i] for i in range(M)])
        out[:, slots[j]] = batch_probs
        pending.append((j, batch_probs))
        n_pending += len(j)
        if n_pending >= shard_size:
            flush()

    def error(item: tuple[int, int], exc: BaseException) -> BaseException:
        if isinstance(exc, FixableError):  # names its image already (decode_batch)
            return exc
        b, m = item
        first, last = names(batches[b][[0, -1]])
        return ImageError(f"pool member {pool.names[m]!r} failed on {first} .. {last} on the Dask cluster: "
                          f"{type(exc).__name__}: {exc}")

    items = [(b, m) for b in range(len(batches)) for m in range(M)]
    try:
        run_tasks(client, score_member, items, args=args, name=lambda it: f"batch {it[0]}, member {it[1]}",
                  on_result=done, error=error, weight=lambda it: len(batches[it[0]]),
                  desc=f"pool predict ({M} models, Dask)", unit="img", total=len(positions) * M,
                  progress=progress)
    finally:
        flush()  # what finished is kept, also when a task failed
    return ",".join(sorted(devices))
