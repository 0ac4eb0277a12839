"""Model-assisted consensus: the model pool's out-of-sample predictions as one more annotator."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from labkit._util.checks import check_choice

from .. import _validate_probs as _v
from ._votes import add_worker, encode_votes
from .dawid_skene import DawidSkene
from .majority_vote import MajorityVote

__all__ = ["aggregate_with_model"]

METHODS = ("dawid_skene", "majority_vote")


def aggregate_with_model(data: pd.DataFrame, probs: Any, *, sample_ids: Sequence[Any] | None = None,
                         classes: Sequence[Any] | None = None, method: str = "dawid_skene",
                         weight: float = 1.0, soft: bool = True, name: Any = "model-pool",
                         n_iter: int = 100, tol: float = 1e-5) -> DawidSkene | MajorityVote:
    """Aggregate human labels together with a model pool treated as one more annotator.

    The pool's probabilities are averaged over its M models into one (N, K) table, and
    the pool joins the workers under ``name``:

    - ``soft=True`` (default): on each task the pool casts a *soft* vote, a weight of
      ``weight * p[n, k]`` on every class k. In Dawid–Skene this is the expected
      likelihood of a fractional label: the E-step adds ``sum_k w p_k log e[pool, k, c]``
      and the M-step counts ``w p_k`` toward the pool's confusion matrix, so the pool gets
      its own learned confusion matrix like any worker. In majority vote the pool adds
      ``w p_k`` to each class's votes.
    - ``soft=False``: the pool votes for its argmax class with weight ``weight``.

    ``weight`` scales the pool's evidence (``weight=1`` counts it as one annotator;
    ``0.5`` as half of one). Predictions must be **out-of-sample** (cross-fitted, as
    labkit's pool produces): a model scoring images it trained on agrees with their
    labels by construction and would be over-trusted.

    Parameters
    ----------
    data : DataFrame with columns ``task``, ``worker``, ``label``
        The human labels.
    probs : ndarray of shape (N, K) or (M, N, K)
        Class probabilities per sample (and model); rows sum to 1.
    sample_ids : sequence of length N, optional
        The task id of each row of ``probs``. Default ``0 .. N-1``. Rows for tasks with
        no human label are ignored; tasks missing from ``probs`` are aggregated from
        their human labels alone.
    classes : sequence of length K, optional
        The label each column of ``probs`` stands for. Default ``0 .. K-1``. Human labels
        must be among them.
    method : {"dawid_skene", "majority_vote"}
    weight : float, default 1.0
        Non-negative scale of the pool's votes.
    soft : bool, default True
        Soft votes (probabilities) or hard votes (argmax).
    name : hashable, default "model-pool"
        The pool's worker id in the results (``errors_``, ``skills_``).
    n_iter, tol
        For Dawid–Skene, as in :class:`DawidSkene`.

    Returns
    -------
    DawidSkene or MajorityVote
        The fitted aggregator: ``labels_`` (Series indexed by task), ``probas_``
        (tasks x classes) and, for Dawid–Skene, ``errors_`` including the pool's
        confusion matrix.

    References
    ----------
    Dawid, A. P., & Skene, A. M. (1979). Maximum likelihood estimation of observer
    error-rates using the EM algorithm. Journal of the Royal Statistical Society,
    Series C 28(1), 20-28. https://doi.org/10.2307/2346806

    Examples
    --------
    Two annotators disagree on task 1; a confident pool breaks the tie.

    >>> df = pd.DataFrame({"task": [0, 0, 1, 1], "worker": ["a", "b", "a", "b"],
    ...                    "label": ["cat", "cat", "cat", "dog"]})
    >>> probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> agg = aggregate_with_model(df, probs, classes=["cat", "dog"], method="majority_vote")
    >>> agg.labels_.tolist()
    ['cat', 'dog']
    >>> agg.probas_.round(2).loc[1].tolist()
    [0.4, 0.6]
    """
    method = check_choice(method, METHODS, "method")
    weight = float(weight)
    if not np.isfinite(weight) or weight < 0:
        raise ValueError(f"weight must be a finite non-negative number; got {weight}")
    mean = _pool_mean(probs)
    n, k = mean.shape
    classes = _v.check_classes(classes, k)
    ids = _v.check_sample_ids(sample_ids, n)
    votes = encode_votes(data, categories=classes)
    rows = votes.tasks.get_indexer(ids)
    keep = rows >= 0
    rows, mean = rows[keep], mean[keep]
    if soft:
        cast = weight * mean
    else:
        cast = np.zeros_like(mean)
        cast[np.arange(len(mean)), mean.argmax(1)] = weight
    votes = add_worker(votes, rows, cast, name)
    if method == "majority_vote":
        agg = MajorityVote(categories=classes)
        agg._finish(votes, votes.counts())
        return agg
    return DawidSkene(n_iter, tol, categories=classes)._fit_votes(votes)


def _pool_mean(probs: Any) -> np.ndarray:
    """The pool's mean probabilities (N, K), validated."""
    arr = np.asarray(probs)
    if arr.ndim == 2:
        arr = arr[None]
    src = _v.open_probs(arr)  # checks the shape and dtype of arr (an array source keeps it as is)
    _v.check_chunk(arr, src, 0, 0, from_logits=False)
    return arr.astype(np.float64).mean(0)
