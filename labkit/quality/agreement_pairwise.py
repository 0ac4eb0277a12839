"""Agreement per worker: every pair of workers, and each worker against the rest.

Both build confusion matrices of shape (K, K) per pair (or per worker) with one
``bincount`` and finish them with the same two-rater statistics as
:func:`labkit.quality.agreement.cohen_kappa`. Re-exported by :mod:`labkit.quality.agreement`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._agreement import (
    check_workers,
    confusion_metric,
    metric_name,
    two_rater_options,
)
from ._coding import codes_to_counts, encode

__all__ = ["pairwise", "worker_vs_rest"]


def _pair_confusions(codes: np.ndarray, k: int, chunk: int = 1 << 22) -> np.ndarray:
    """Confusion matrices (M, M, K, K) of every ordered worker pair over shared tasks."""
    m_workers = codes.shape[0]
    t, w = np.nonzero(codes.T >= 0)  # task-major
    c = codes[w, t]
    sizes = np.bincount(t, minlength=codes.shape[1])
    starts = np.cumsum(sizes) - sizes
    out = np.zeros(m_workers * m_workers * k * k, dtype=np.int64)
    pairs_per_entry = sizes[t]  # each label pairs with every label of its task (itself too)
    cum = np.cumsum(pairs_per_entry)
    cuts = np.searchsorted(cum, np.arange(chunk, cum[-1], chunk)) + 1
    edges = np.unique(np.concatenate([[0], cuts, [len(t)]]))
    for lo, hi in zip(edges[:-1], edges[1:]):
        rep = pairs_per_entry[lo:hi]
        left = np.repeat(np.arange(lo, hi), rep)
        right = np.repeat(starts[t[lo:hi]], rep) + np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep)
        key = ((w[left] * m_workers + w[right]) * k + c[left]) * k + c[right]
        out += np.bincount(key, minlength=out.size)
    return out.reshape(m_workers, m_workers, k, k)


def pairwise(data: Any, *, metric: str = "cohen_kappa", weights: str | None = None,
             level: str = "nominal", categories: Sequence[Any] | None = None) -> pd.DataFrame:
    """Agreement of every pair of workers on the tasks both labelled.

    Parameters
    ----------
    data : DataFrame with columns ``task``, ``worker``, ``label``, or array_like of shape (M, N)
    metric : {"cohen_kappa", "krippendorff_alpha", "fleiss_kappa", "gwet_ac1", "percent_agreement"}
        A two-rater statistic; ``fleiss_kappa`` for two raters is Scott's pi. Gwet's q is
        the number of categories in all of ``data``.
    weights : {None, "linear", "quadratic"}
        For ``cohen_kappa``.
    level : {"nominal", "ordinal", "interval", "ratio"}
        For ``krippendorff_alpha``.
    categories : sequence, optional

    Returns
    -------
    DataFrame of shape (M, M)
        Symmetric, index and columns ``worker``; NaN where two workers share fewer than
        2 tasks or the statistic is undefined. The diagonal is each worker with itself.

    References
    ----------
    Scott, W. A. (1955). Reliability of content analysis: the case of nominal scale coding.
    Public Opinion Quarterly 19(3), 321-325. https://doi.org/10.1086/266577

    Examples
    --------
    >>> pairwise([[1, 1, 2, 2], [1, 1, 2, 1], [np.nan, 1, np.nan, np.nan]],
    ...          metric="percent_agreement")
    worker     0     1    2
    worker
    0       1.00  0.75  NaN
    1       0.75  1.00  NaN
    2        NaN   NaN  NaN
    """
    metric = metric_name(metric)
    options = two_rater_options(metric, weights, level)
    coded = encode(data, categories=categories)
    check_workers(coded.workers)
    k, m = len(coded.categories), len(coded.workers)
    conf = _pair_confusions(coded.codes, k).reshape(m * m, k, k)
    values = confusion_metric(conf, metric, coded.categories, **options)
    values[conf.sum((1, 2)) < 2] = np.nan
    values = values.reshape(m, m)
    lower = np.tril_indices(m, -1)
    values[lower] = values.T[lower]  # (j, i) is (i, j) transposed: make it exactly symmetric
    workers = pd.Index(coded.workers, name="worker")
    return pd.DataFrame(values, index=workers, columns=workers.copy())


def worker_vs_rest(data: Any, *, metric: str = "cohen_kappa", weights: str | None = None,
                   level: str = "nominal", categories: Sequence[Any] | None = None) -> pd.Series:
    """Agreement of each worker with the plurality label of the other workers.

    For every task a worker labelled, the "rest" label is the most frequent label among
    the *other* workers on that task; tasks where no other worker labelled or the others
    tie are left out. The two-rater ``metric`` then compares the worker with the rest.

    Parameters
    ----------
    data : DataFrame with columns ``task``, ``worker``, ``label``, or array_like of shape (M, N)
    metric : {"cohen_kappa", "krippendorff_alpha", "fleiss_kappa", "gwet_ac1", "percent_agreement"}
    weights, level, categories
        As in :func:`pairwise`.

    Returns
    -------
    Series of length M
        Index ``worker``, named after ``metric``; NaN where fewer than 2 tasks compare.

    Examples
    --------
    >>> worker_vs_rest([[1, 1, 2, 2], [1, 1, 2, 2], [1, 2, 2, 2]], metric="percent_agreement")
    worker
    0    1.00
    1    1.00
    2    0.75
    Name: percent_agreement, dtype: float64
    """
    metric = metric_name(metric)
    options = two_rater_options(metric, weights, level)
    coded = encode(data, categories=categories)
    check_workers(coded.workers)
    k, m = len(coded.categories), len(coded.workers)
    counts = codes_to_counts(coded.codes, k)
    w, t = np.nonzero(coded.codes >= 0)
    own = coded.codes[w, t]
    others = counts[t]
    others[np.arange(len(t)), own] -= 1
    top = others.max(1)
    rest = others.argmax(1)
    keep = (top > 0) & ((others == top[:, None]).sum(1) == 1)
    key = (w[keep] * k + own[keep]) * k + rest[keep]
    conf = np.bincount(key, minlength=m * k * k).reshape(m, k, k)
    values = confusion_metric(conf, metric, coded.categories, **options)
    values[conf.sum((1, 2)) < 2] = np.nan
    return pd.Series(values, index=pd.Index(coded.workers, name="worker"), name=metric)
