"""``ModelPool.predict``: saved predictions first, then batched scoring of what is missing.

Images are decoded by DataLoader workers, once, and each batch goes through every
member's models before the next is read. With cross-fitting, the batch's images that
fold ``f`` held out go only through fold ``f``'s model; images no fold trained on go
through all of them and get the mean. Finished batches are saved in shards as they
accumulate, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labkit._util.clock import utc_iso

from . import _images, _torch
from ._store import PredictionStore
from .members import PoolPredictions, versions


def predict(pool: Any, images: Any, *, batch_size: int, num_workers: int, device: Any,
            threads: int | None, verify: bool, cache: bool, cache_dir: Any, shard_size: int,
            progress: bool):
    """See :meth:`ModelPool.predict`."""

    for what, v, lo in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0),
                        ("shard_size", shard_size, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{what} is {v!r}; expected an integer >= {lo}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads is {threads!r}; expected a positive integer or None")
    iset = _images.image_set(images, verify=verify, progress=progress)
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
    if todo.size:
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
    return PoolPredictions(probs=uprobs[:, inverse], images=iset.ids, models=pool.names,
                           classes=tuple(pool.classes), fold=pool.fold_of(iset.keys),
                           sha256=iset.keys, provenance=provenance)


def load_models(pool: Any, device: Any) -> list[list]:
    """The members' models (one per fold) on ``device``, loaded once and checked by hash."""
    from labkit._util.hashing import sha256_file

    key = str(device)
    if key not in pool._models:
        loaded = []
        for m in pool.members:
            folds = []
            for path, digest in zip(m.weights, m.sha256):
                if not Path(path).is_file():
                    raise FileNotFoundError(f"member {m.name!r}: weights {path} are missing")
                if sha256_file(path) != digest:
                    raise ValueError(f"member {m.name!r}: {path} changed since the pool was "
                                     "built (sha256 differs); rebuild the pool")
                model = _torch.create(m.arch, len(pool.classes))
                _torch.load_weights(model, Path(path), what=f"member {m.name!r}")
                folds.append(_torch.prepare(model, device))
            loaded.append(folds)
        pool._models = {key: loaded}  # one device at a time
    return pool._models[key]


def score(pool: Any, iset: _images.ImageSet, positions: np.ndarray, keys: np.ndarray,
          out: np.ndarray, slots: np.ndarray, when: list, *, store: Any, batch_size: int,
          num_workers: int, device: Any, shard_size: int, progress: bool) -> str:
    """Score ``iset`` images at ``positions`` (content ``keys``) into ``out[:, slots]``; return the device."""
    import torch

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
                xb = inputs[(member.mean, member.std)]
                F = len(fold_models)
                for f, model in enumerate(fold_models):
                    sel = (fb == f) | (fb < 0)
                    if not sel.any():
                        continue
                    xs = xb if sel.all() else xb[torch.from_numpy(sel).to(xb.device)]
                    weight = np.where(fb[sel] < 0, 1.0 / F, 1.0).astype(np.float32)[:, None]
                    probs[m, sel] += _torch.softmax_probs(model, xs, dev) * weight
            out[:, slots[j]] = probs
            pending.append((j, probs))
            n_pending += len(j)
            done += len(j)
            bar.update(len(j))
            if n_pending >= shard_size:
                flush()
        flush()
    return str(dev)
