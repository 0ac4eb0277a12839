"""Saved pool predictions: content-addressed shards with provenance.

Layout, under ``<project>/predictions/<pool id>/`` (the pool id hashes the members'
names, architectures, checkpoint sha256s, preprocessing, classes and folds, so another
pool, or the same pool with one changed checkpoint, never reads these files)::

    pool.json                      the pool's manifest: members, checkpoint hashes,
                                   classes, image size, labkit/torch/timm versions
    shards/<utc time>-<rand>.npz   sha256 (n,) of the images' bytes, probs (M, n, K)
                                   float32, meta (JSON: time, device, versions)

A shard is written to a temporary file and renamed, once a batch of images has been
scored by every model, so an interrupted run keeps what it finished and the next run
computes only the rest. Predictions are looked up by the image's sha256: a changed
image has a new hash and is scored again; its old entry is simply no longer used.
"""
from __future__ import annotations

import json
import uuid
import warnings
import zipfile
from pathlib import Path

import numpy as np

from labkit._util.atomic import atomic_path, write_json
from labkit._util.clock import utc_iso, utc_stamp


class PredictionStore:
    """Per-image probabilities of one pool (M models, K classes), keyed by image sha256."""

    def __init__(self, folder: Path, manifest: dict, M: int, K: int):
        self.folder, self.M, self.K = Path(folder), M, K
        self.shards = self.folder / "shards"
        path = self.folder / "pool.json"
        if not path.exists():
            write_json(path, manifest)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        """``(probs (M, N, K) float32, found (N,) bool, computed_at per image)`` for ``keys``."""
        N = len(keys)
        probs = np.zeros((self.M, N, self.K), np.float32)
        found = np.zeros(N, bool)
        when: list[str | None] = [None] * N
        if not self.shards.is_dir():
            return probs, found, when
        where = {k: i for i, k in enumerate(keys)}  # a repeated key: its last position, filled below
        for path in sorted(self.shards.glob("[!.]*.npz")):
            try:
                with np.load(path, allow_pickle=False) as z:
                    skeys, sprobs = z["sha256"], z["probs"]
                    meta = json.loads(str(z["meta"]))
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                warnings.warn(f"unreadable saved predictions {path} ({exc}); those images are "
                              "scored again", stacklevel=3)
                continue
            if sprobs.shape[0] != self.M or sprobs.shape[2] != self.K:
                warnings.warn(f"{path} holds probabilities of shape {sprobs.shape}, not (M={self.M}, "
                              f"n, K={self.K}); ignored", stacklevel=3)
                continue
            for j, k in enumerate(skeys):
                i = where.get(str(k))
                if i is not None:
                    probs[:, i] = sprobs[:, j]
                    found[i] = True
                    when[i] = meta.get("time")
        if len(where) < N:  # repeated keys: copy from the position that was filled
            for i, k in enumerate(keys):
                j = where[k]
                if i != j and found[j]:
                    probs[:, i], found[i], when[i] = probs[:, j], True, when[j]
        return probs, found, when

    def add(self, keys: np.ndarray, probs: np.ndarray, meta: dict) -> str:
        """Save one shard atomically; return its time stamp."""
        self.shards.mkdir(parents=True, exist_ok=True)
        meta = {**meta, "time": utc_iso(), "n": int(len(keys))}
        path = self.shards / f"{utc_stamp(micro=True)}-{uuid.uuid4().hex[:8]}.npz"
        with atomic_path(path) as tmp:
            np.savez(tmp, sha256=np.asarray(keys, dtype="U64"), probs=probs.astype(np.float32),
                     meta=np.array(json.dumps(meta)))
        return meta["time"]
