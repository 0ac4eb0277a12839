"""Batched scoring of images by every member of a pool (the part of ``predict`` that runs models).

Images are decoded by DataLoader workers, once, and each batch goes through every
member's models before the next is read. With cross-fitting, the batch's images that
fold ``f`` held out go only through fold ``f``'s model; images no fold trained on go
through all of them and get the mean. Finished batches are saved in shards as they
accumulate, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import _images, _torch


def score(pool: Any, iset: _images.ImageSet, positions: np.ndarray, keys: np.ndarray,
          out: np.ndarray, slots: np.ndarray, when: list, *, store: Any, batch_size: int,
          num_workers: int, device: Any, shard_size: int, progress: bool) -> str:
    """Score ``iset`` images at ``positions`` (content ``keys``) into ``out[:, slots]``; return the device."""
    import torch
    from tqdm.auto import tqdm

    dev = _torch.pick_device(device)
    models = pool._loaded(dev)
    norms = {}
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
    with tqdm(total=len(positions), desc=f"pool predict ({M} models, {dev.type})", unit="img",
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
