"""The parts of a model pool that need neither torch nor the pool itself.

:class:`PoolMember` (one model and its weight files), :class:`PoolPredictions` (what
:meth:`~labkit.models.pool.ModelPool.predict` returns), the digests that identify a pool
(:func:`pool_id`, :func:`folds_digest`), and the checks of a pool's options. Training,
inference and erasure import these from here, so none of them imports the pool.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from labkit._util.hashing import sha256_json
from labkit._util.versions import package_versions

__all__ = ["PoolMember", "PoolPredictions", "check_classes", "check_size", "folds_digest", "pool_id",
           "versions"]


@dataclass(frozen=True)
class PoolMember:
    """One model of the pool: a timm architecture and its weights.

    ``weights`` holds one file per cross-fitting fold for a trained pool, one file for a
    checkpoint. ``sha256`` are those files' hashes; ``mean``/``std`` the input
    normalisation (in [0, 1] units); ``fraction`` the share of its training folds a
    trained member saw (``None`` for a checkpoint).
    """

    name: str
    arch: str
    weights: tuple[str, ...]
    sha256: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    fraction: float | None = None


@dataclass(frozen=True, eq=False)
class PoolPredictions:
    """Class probabilities of every pool member for N images, with where they came from.

    Attributes
    ----------
    probs : ndarray of shape (M, N, K), float32
        ``probs[m, i]`` is member ``models[m]``'s distribution for image ``images[i]``.
        ``np.asarray(predictions)`` is this array, so a ``PoolPredictions`` can be passed
        wherever ``probs`` is expected (e.g. :func:`labkit.quality.difficulty_table`).
    images : pandas.Index
        The N image ids (project ids; positions 0..N-1 for paths or arrays), name ``"image"``.
    models : tuple of str
        The M member names.
    classes : tuple of str
        The K class names, in the order of the last axis.
    fold : ndarray of shape (N,), int
        For a trained pool, the cross-fitting fold an image was held out in (its
        probabilities come from that fold's models only); -1 for an image no model
        trained on (the average over all folds' models) and for checkpoint pools.
    sha256 : ndarray of shape (N,), str
        Hash of the bytes each image was scored from.
    provenance : dict
        Pool id, members with checkpoint hashes, image hashes, when each image was
        computed, how many were reused from disk, device, versions, and where saved.
    """

    probs: np.ndarray
    images: pd.Index
    models: tuple[str, ...]
    classes: tuple[str, ...]
    fold: np.ndarray
    sha256: np.ndarray
    provenance: dict = field(repr=False)

    def __array__(self, dtype=None, copy=None):
        return self.probs if dtype is None else self.probs.astype(dtype)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.probs.shape

    def mean(self) -> pd.DataFrame:
        """The pool's mean distribution per image: N rows (``images``), K columns (``classes``)."""
        return pd.DataFrame(self.probs.mean(axis=0), index=self.images, columns=list(self.classes))

    def __repr__(self) -> str:
        M, N, K = self.probs.shape
        return (f"PoolPredictions(M={M} models, N={N} images, K={K} classes; computed "
                f"{self.provenance['computed']}, reused {self.provenance['reused']})")


def folds_digest(keys: np.ndarray, fold: np.ndarray) -> str:
    """sha256 of cross-fitting folds: ``keys`` (N,) sorted image sha256s, ``fold`` (N,) int64."""
    h = hashlib.sha256("\n".join(np.asarray(keys).tolist()).encode())
    h.update(np.asarray(fold, np.int64).tobytes())
    return h.hexdigest()


def pool_id(members: Sequence[PoolMember], classes: Sequence[str], image_size: int,
            folds_sha256: str | None) -> str:
    """:attr:`ModelPool.id` from its parts (also for a pool.json, without building the pool)."""
    key = {"members": [[m.name, m.arch, list(m.sha256), list(m.mean), list(m.std)] for m in members],
           "classes": list(classes), "image_size": int(image_size), "folds": folds_sha256}
    return sha256_json(key)[:16]


def versions() -> dict:
    """Versions of labkit, torch and timm, for a pool's provenance."""
    return package_versions("torch", "timm")


def check_classes(classes: Sequence[str]) -> list[str]:
    if isinstance(classes, str) or not len(classes) or len(set(classes)) != len(classes):
        raise ValueError(f"classes is {classes!r}; expected a list of unique class names, in the "
                         "order of the models' outputs")
    if len(classes) < 2:
        raise ValueError(f"classes has {len(classes)} name; a classifier pool needs at least 2")
    return [str(c) for c in classes]


def check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 8 <= size <= 4096:
        raise ValueError(f"image_size is {size!r}; expected an integer number of pixels in [8, 4096]")
    return int(size)
