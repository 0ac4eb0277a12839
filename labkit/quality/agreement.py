"""Chance-corrected agreement between annotators, with bootstrap confidence intervals.

Every multi-rater statistic here is a function of per-task sums: each task (unit)
contributes a row of *features* computed from its label counts, and a *finisher* turns
the column sums into the statistic. The point estimate finishes the plain sum; the
bootstrap finishes ``weights @ features`` for a whole matrix of resampling weights at
once, so no resample is recomputed from scratch. Two-rater statistics (Cohen's kappa,
:func:`pairwise`, :func:`worker_vs_rest`) finish confusion matrices in the same batched way.

Inputs are a long DataFrame (``task``, ``worker``, ``label``) or reliability data of
shape (M workers, N tasks) with NaN for missing; count-based statistics also take a
counts table of shape (N tasks, K categories) through ``counts=``. Layout conversion
lives in :mod:`labkit.quality.layouts`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .layouts import _check_choice, _codes_to_counts, _encode, _encode_labels

__all__ = [
    "LEVELS",
    "METRICS",
    "AgreementInterval",
    "krippendorff_alpha",
    "fleiss_kappa",
    "cohen_kappa",
    "gwet_ac1",
    "percent_agreement",
    "pairwise",
    "per_class_agreement",
    "worker_vs_rest",
    "confidence_interval",
]

LEVELS = ("nominal", "ordinal", "interval", "ratio")
METRICS = ("krippendorff_alpha", "fleiss_kappa", "gwet_ac1", "percent_agreement", "cohen_kappa")
_WEIGHTS = ("linear", "quadratic")
_OPTIONS = {"krippendorff_alpha": ("level",), "cohen_kappa": ("weights",)}


# ----------------------------------------------------------------------------- input
def _counts_input(data: Any, counts: Any, categories: Sequence[Any] | None) -> tuple[np.ndarray, pd.Index]:
    """Counts (N, K) and the category order, from exactly one of data and counts."""
    if (data is None) == (counts is None):
        raise ValueError(
            "pass either data (a long DataFrame or reliability array of shape (M workers, N tasks)) "
            "or counts= (a table of shape (N tasks, K categories)), "
            + ("not both" if data is not None else "got neither")
        )
    if counts is None:
        coded = _encode(data, categories=categories)
        _check_workers(coded.workers)
        return _codes_to_counts(coded.codes, len(coded.categories)), coded.categories
    cats = counts.columns if isinstance(counts, pd.DataFrame) and categories is None else categories
    arr = np.asarray(counts)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"counts has shape {arr.shape}; expected (N tasks, K categories), both >= 1")
    if (arr.dtype.kind not in "iuf" or not np.isfinite(arr).all() or (arr < 0).any()
            or (arr != np.round(arr)).any()):
        raise ValueError("counts must hold non-negative whole numbers (how many workers chose each category)")
    cats = pd.RangeIndex(arr.shape[1], name="label") if cats is None else pd.Index(list(cats), name="label")
    if len(cats) != arr.shape[1]:
        raise ValueError(f"counts has {arr.shape[1]} columns but {len(cats)} categories were given")
    return arr.astype(np.int64), cats


def _check_workers(workers: pd.Index) -> None:
    if len(workers) < 2:
        raise ValueError(f"agreement needs at least 2 workers; got {len(workers)} ({list(workers)})")


def _require_pairable(n_labels: np.ndarray) -> None:
    if not (n_labels >= 2).any():
        raise ValueError(
            "no task has labels from 2 or more workers, so there is nothing to agree on; "
            "agreement needs tasks labelled at least twice"
        )


def _numeric_values(categories: pd.Index, level: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(categories) and not pd.api.types.is_bool_dtype(categories):
        return np.asarray(categories, dtype=float)
    raise ValueError(
        f"level={level!r} needs numeric labels, got {categories.tolist()[:5]}; use level='nominal', "
        "or level='ordinal' with categories=[...] in scale order"
    )


# ------------------------------------------------------------------ distance functions
def _fixed_delta(categories: pd.Index, level: str) -> np.ndarray:
    """Krippendorff's (2011) difference function delta^2_ck for nominal, interval and ratio."""
    k = len(categories)
    if level == "nominal":
        return 1.0 - np.eye(k)
    v = _numeric_values(categories, level)
    if level == "interval":
        return (v[:, None] - v[None, :]) ** 2
    total = v[:, None] + v[None, :]
    diff = v[:, None] - v[None, :]
    return np.divide(diff, total, out=np.zeros_like(diff), where=total != 0) ** 2


def _ordinal_delta(n: np.ndarray) -> np.ndarray:
    """Ordinal delta^2 of shape (B, K, K) from pairable-value margins n of shape (B, K).

    delta_ck = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2 (Krippendorff 2011, p. 6), which is
    (cum_k - cum_c + (n_c - n_k) / 2)^2 with cum the cumulative margins; symmetric in c, k.
    """
    cum = np.cumsum(n, axis=1)
    s = cum[:, None, :] - cum[:, :, None] + (n[:, :, None] - n[:, None, :]) / 2
    return s * s


def _alpha_from(d_o: np.ndarray, d_e: np.ndarray, n_total: np.ndarray) -> np.ndarray:
    # alpha = 1 - D_o / D_e = 1 - (n - 1) * sum o_ck d_ck / sum n_c n_k d_ck
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1.0 - (n_total - 1) * d_o / d_e
    return np.where(d_e > 0, out, np.nan)


# ------------------------------------------------------- count-based statistics (units)
@dataclass(frozen=True)
class _Stat:
    """A statistic as features per unit (rows of counts) and a finisher of summed features."""

    features: Callable[[np.ndarray], np.ndarray]  # counts (U, K) -> (U, F)
    finish: Callable[[np.ndarray], np.ndarray]  # sums (B, F) -> (B,)
    min_labels: int  # units with fewer labels add nothing and are not resampled
    total: Callable[[np.ndarray], np.ndarray] | None = None  # counts -> (F,) sums, if faster

    def value(self, counts: np.ndarray) -> float:
        if self.total is not None:
            sums = self.total(counts)
        else:
            sums = self.features(counts[counts.sum(1) >= self.min_labels]).sum(0)
        return float(self.finish(sums[None])[0])


def _alpha_stat(categories: pd.Index, level: str) -> _Stat:
    k = len(categories)
    if level == "ordinal":
        iu, ju = np.triu_indices(k, 1)

        def features(c: np.ndarray) -> np.ndarray:
            c = c.astype(float)
            m = c.sum(1, keepdims=True)
            # per-unit coincidences o_ck = n_c n_k / (m - 1) above the diagonal (delta_cc = 0)
            return np.hstack([c[:, iu] * c[:, ju] / (m - 1), c])

        def total(c: np.ndarray) -> np.ndarray:
            # the coincidence matrix sum_u (n_u n_u^T - diag n_u) / (m_u - 1) as one product
            c = c[c.sum(1) >= 2].astype(float)
            o = (c / (c.sum(1, keepdims=True) - 1)).T @ c
            return np.concatenate([o[iu, ju], c.sum(0)])

        def finish(s: np.ndarray) -> np.ndarray:
            o, n = s[:, : len(iu)], s[:, len(iu):]
            delta = _ordinal_delta(n)
            d_o = 2 * (o * delta[:, iu, ju]).sum(1)
            return _alpha_from(d_o, np.einsum("bi,bij,bj->b", n, delta, n), n.sum(1))

        return _Stat(features, finish, 2, total)

    delta = _fixed_delta(categories, level)

    def quadratic(c: np.ndarray) -> np.ndarray:  # n_u^T delta n_u per unit
        if level == "nominal":
            m = c.sum(1)
            return (m * m - (c * c).sum(1)).astype(float)
        c = c.astype(float)
        return ((c @ delta) * c).sum(1)

    def features(c: np.ndarray) -> np.ndarray:
        # sum_ck o_ck delta_ck for one unit: (n_u^T delta n_u) / (m_u - 1), delta_cc = 0
        return np.column_stack([quadratic(c) / (c.sum(1) - 1), c])

    def total(c: np.ndarray) -> np.ndarray:  # the point estimate without a (U, F) matrix
        c = c[c.sum(1) >= 2]
        return np.concatenate([[(quadratic(c) / (c.sum(1) - 1)).sum()], c.sum(0)])

    def finish(s: np.ndarray) -> np.ndarray:
        n = s[:, 1:]
        return _alpha_from(s[:, 0], np.einsum("bi,ij,bj->b", n, delta, n), n.sum(1))

    return _Stat(features, finish, 2, total)


def _pi_features(c: np.ndarray) -> np.ndarray:
    """[pairwise agreement of the unit if m >= 2, m >= 2, category proportions (K), 1]."""
    c = c.astype(float)
    m = c.sum(1)
    two = m >= 2
    pa = np.divide((c * (c - 1)).sum(1), m * (m - 1), out=np.zeros_like(m), where=two)
    return np.column_stack([pa, two, c / m[:, None], np.ones_like(m)])


def _split_pi(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return s[:, 0] / s[:, 1], s[:, 2:-1] / s[:, -1:]


def _kappa(pa: np.ndarray, pe: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (pa - pe) / (1 - pe)
    return np.where(pe < 1, out, np.nan)


def _fleiss_stat() -> _Stat:
    def finish(s: np.ndarray) -> np.ndarray:
        pa, pi = _split_pi(s)
        return _kappa(pa, (pi * pi).sum(1))

    return _Stat(_pi_features, finish, 1)


def _gwet_stat(n_categories: int) -> _Stat:
    def finish(s: np.ndarray) -> np.ndarray:
        pa, pi = _split_pi(s)
        if n_categories < 2:
            return np.full(len(s), np.nan)
        return _kappa(pa, (pi * (1 - pi)).sum(1) / (n_categories - 1))

    return _Stat(_pi_features, finish, 1)


def _percent_stat() -> _Stat:
    def features(c: np.ndarray) -> np.ndarray:
        m = c.sum(1).astype(float)
        return np.column_stack([(c * (c - 1.0)).sum(1) / (m * (m - 1)), np.ones_like(m)])

    def finish(s: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return s[:, 0] / s[:, 1]

    return _Stat(features, finish, 2)


def _count_stat(metric: str, categories: pd.Index, options: Mapping[str, Any]) -> _Stat:
    if metric == "krippendorff_alpha":
        return _alpha_stat(categories, _check_choice(options.get("level", "nominal"), LEVELS, "level"))
    if metric == "fleiss_kappa":
        return _fleiss_stat()
    if metric == "gwet_ac1":
        return _gwet_stat(len(categories))
    return _percent_stat()


# ------------------------------------------------------------ two-rater (confusion) stats
def _check_weights(weights: str | None) -> str | None:
    return None if weights is None else _check_choice(weights, _WEIGHTS, "weights")


def _confusion_metric(conf: np.ndarray, metric: str, categories: pd.Index, *,
                      weights: str | None = None, level: str = "nominal") -> np.ndarray:
    """A two-rater statistic for each confusion matrix in ``conf`` of shape (B, K, K)."""
    conf = conf.astype(float)
    k = conf.shape[-1]
    n = conf.sum((1, 2))
    rows, cols = conf.sum(2), conf.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pa = np.trace(conf, axis1=1, axis2=2) / n
        pi = (rows + cols) / (2 * n[:, None])
        if metric == "percent_agreement":
            return pa
        if metric == "fleiss_kappa":  # two raters: Scott's (1955) pi
            return _kappa(pa, (pi * pi).sum(1))
        if metric == "gwet_ac1":
            if k < 2:
                return np.full(len(conf), np.nan)
            return _kappa(pa, (pi * (1 - pi)).sum(1) / (k - 1))
        if metric == "krippendorff_alpha":
            o = conf + conf.transpose(0, 2, 1)
            margins = rows + cols
            delta = (_ordinal_delta(margins) if level == "ordinal"
                     else np.broadcast_to(_fixed_delta(categories, level), o.shape))
            d_e = np.einsum("bi,bij,bj->b", margins, delta, margins)
            return _alpha_from((o * delta).sum((1, 2)), d_e, 2 * n)
        idx = np.arange(k)
        w = {None: 1.0 - np.eye(k), "linear": np.abs(idx[:, None] - idx[None, :]).astype(float),
             "quadratic": (idx[:, None] - idx[None, :]).astype(float) ** 2}[weights]
        expected = rows[:, :, None] * cols[:, None, :] / n[:, None, None]
        den = (w * expected).sum((1, 2))
        out = 1.0 - (w * conf).sum((1, 2)) / den
    return np.where(den > 0, out, np.nan)


def _metric_name(metric: Any) -> str:
    if callable(metric) and getattr(metric, "__module__", None) == __name__:
        metric = metric.__name__
    return _check_choice(metric, METRICS, "metric")


def _two_rater_options(metric: str, weights: str | None, level: str) -> dict[str, Any]:
    weights, level = _check_weights(weights), _check_choice(level, LEVELS, "level")
    if weights is not None and metric != "cohen_kappa":
        raise ValueError(f"weights={weights!r} applies to metric='cohen_kappa' only; got metric={metric!r}")
    if level != "nominal" and metric != "krippendorff_alpha":
        raise ValueError(
            f"level={level!r} applies to metric='krippendorff_alpha' only; got metric={metric!r}")
    return {"weights": weights, "level": level}


# ------------------------------------------------------------------- public statistics
def krippendorff_alpha(data: Any = None, *, level: str = "nominal", counts: Any = None,
                       categories: Sequence[Any] | None = None) -> float:
    """Krippendorff's alpha for any number of workers, with missing labels.

    Uses the coincidence-matrix form (Krippendorff 2011): each task u with m_u >= 2
    labels and value counts n_u adds ``(n_u n_u^T - diag(n_u)) / (m_u - 1)``; tasks with
    fewer than 2 labels are ignored. alpha = 1 - D_o / D_e with the difference function
    of ``level``. Equal to ``krippendorff.alpha`` on the same data.

    Parameters
    ----------
    data : DataFrame with columns ``task``, ``worker``, ``label``, or array_like of shape (M, N)
        Long labels, or reliability data (M workers x N tasks, NaN missing).
    level : {"nominal", "ordinal", "interval", "ratio"}
        Level of measurement. Interval and ratio use the label values, so they need
        numeric labels; ordinal uses the category order.
    counts : array_like of shape (N, K), optional
        Instead of ``data``: how many workers chose each category per task. A DataFrame's
        columns are the category values; otherwise categories are ``0 .. K-1``.
    categories : sequence, optional
        Category order (the value scale for ordinal data, e.g. ``["low", "mid", "high"]``).
        Default: sorted unique labels.

    Returns
    -------
    float
        alpha, at most 1; NaN when the expected disagreement is 0 (one value in use).

    References
    ----------
    Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability. Annenberg School
    for Communication, Departmental Papers 43. https://repository.upenn.edu/asc_papers/43
    Hayes, A. F., & Krippendorff, K. (2007). Answering the call for a standard reliability
    measure for coding data. Communication Methods and Measures 1(1), 77-89.
    https://doi.org/10.1080/19312450709336664

    Examples
    --------
    Krippendorff's (2011) example: 4 coders, 12 units, missing values.

    >>> data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
    ...         [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
    ...         [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
    ...         [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan]]
    >>> round(krippendorff_alpha(data), 3)
    0.743
    >>> round(krippendorff_alpha(data, level="interval"), 3)
    0.849
    """
    level = _check_choice(level, LEVELS, "level")
    c, cats = _counts_input(data, counts, categories)
    _require_pairable(c.sum(1))
    return _alpha_stat(cats, level).value(c)


def fleiss_kappa(data: Any = None, *, counts: Any = None) -> float:
    """Fleiss' kappa for many workers, generalised to tasks with different numbers of labels.

    P_a is the mean, over tasks with m_u >= 2 labels, of the share of agreeing label
    pairs; P_e = sum_k pi_k^2 with pi_k the mean over tasks of the share of labels in
    category k (Gwet 2014, ch. 2). With the same number of labels per task this is
    Fleiss (1971) exactly, and equals ``statsmodels.stats.inter_rater.fleiss_kappa``.

    Parameters
    ----------
    data : DataFrame with columns ``task``, ``worker``, ``label``, or array_like of shape (M, N)
    counts : array_like of shape (N, K), optional
        Instead of ``data``: Fleiss' table of label counts per task and category.

    Returns
    -------
    float
        kappa in [-1, 1]; NaN when chance agreement is 1 (one category in use).

    References
    ----------
    Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters.
    Psychological Bulletin 76(5), 378-382. https://doi.org/10.1037/h0031619
    Gwet, K. L. (2014). Handbook of Inter-Rater Reliability, 4th ed. Advanced Analytics.
    ISBN 978-0970806284.

    Examples
    --------
    >>> round(fleiss_kappa(counts=[[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6],
    ...                            [0, 3, 9, 2, 0], [2, 2, 8, 1, 1], [7, 7, 0, 0, 0],
    ...                            [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0],
    ...                            [0, 2, 2, 3, 7]]), 3)
    0.21
    """
    c, _ = _counts_input(data, counts, None)
    _require_pairable(c.sum(1))
    return _fleiss_stat().value(c)


def gwet_ac1(data: Any = None, *, counts: Any = None, categories: Sequence[Any] | None = None) -> float:
    """Gwet's AC1 for many workers and missing labels.

    P_a as in :func:`fleiss_kappa`; P_e = sum_k pi_k (1 - pi_k) / (q - 1) with q the
    number of categories (Gwet 2008; missing data as in Gwet 2014, ch. 2).

    Parameters
    ----------
    data : DataFrame with columns ``task``, ``worker``, ``label``, or array_like of shape (M, N)
    counts : array_like of shape (N, K), optional
    categories : sequence, optional
        All categories of the scheme, including ones nobody chose; q = len(categories).
        Default: the labels that occur (or the K columns of ``counts``).

    Returns
    -------
    float
        AC1, at most 1; NaN when q < 2.

    References
    ----------
    Gwet, K. L. (2008). Computing inter-rater reliability and its variance in the presence
    of high agreement. British Journal of Mathematical and Statistical Psychology 61(1),
    29-48. https://doi.org/10.1348/000711006X126600
    Gwet, K. L. (2014). Handbook of Inter-Rater Reliability, 4th ed. Advanced Analytics.

    Examples
    --------
    Gwet (2014)'s 4 raters x 12 subjects (irrCAC's ``raw_4raters``): AC1 = 0.77544.

    >>> data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
    ...         [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, np.nan],
    ...         [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 3],
    ...         [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan]]
    >>> round(gwet_ac1(data), 5)
    0.77544
    """
    c, cats = _counts_input(data, counts, categories)
    _require_pairable(c.sum(1))
    return _gwet_stat(len(cats)).value(c)


def percent_agreement(data: Any = None, *, counts: Any = None) -> float:
    """Share of agreeing label pairs within a task, averaged over tasks with 2+ labels.

    Parameters
    ----------
    data : DataFrame with columns ``task``, ``worker``, ``label``, or array_like of shape (M, N)
    counts : array_like of shape (N, K), optional

    Returns
    -------
    float
        In [0, 1]. Not chance-corrected: compare with :func:`krippendorff_alpha`.

    References
    ----------
    Gwet, K. L. (2014). Handbook of Inter-Rater Reliability, 4th ed., ch. 2 (P_a).

    Examples
    --------
    >>> round(percent_agreement([[1, 1, 2], [1, 2, 2], [1, np.nan, 1]]), 4)
    0.4444
    """
    c, _ = _counts_input(data, counts, None)
    _require_pairable(c.sum(1))
    return _percent_stat().value(c)


def _pair_codes(a: Any, b: Any, categories: Sequence[Any] | None) -> tuple[np.ndarray, pd.Index]:
    """Cell ids ``code_a * K + code_b`` for the tasks both raters labelled."""
    a, b = np.asarray(a, dtype=object).ravel(), np.asarray(b, dtype=object).ravel()
    if len(a) != len(b):
        raise ValueError(f"a has {len(a)} labels and b has {len(b)}; expected one label each per task")
    codes, cats = _encode_labels(np.concatenate([a, b]), categories)
    ca, cb = codes[: len(a)], codes[len(a):]
    both = (ca >= 0) & (cb >= 0)
    if both.sum() < 1:
        raise ValueError("a and b have no task that both labelled (missing values are NaN/None)")
    return ca[both] * len(cats) + cb[both], cats


def cohen_kappa(a: Any, b: Any, *, weights: str | None = None,
                categories: Sequence[Any] | None = None) -> float:
    """Cohen's kappa between two workers, optionally weighted.

    Tasks where either label is missing (NaN/None) are left out. Weighted kappa uses
    disagreement weights on category positions: ``|i - j|`` (linear) or ``(i - j)^2``
    (quadratic), as ``sklearn.metrics.cohen_kappa_score`` does.

    Parameters
    ----------
    a, b : array_like of shape (N,)
        Labels of the two workers for the same N tasks.
    weights : {None, "linear", "quadratic"}
    categories : sequence, optional
        Category order for the weights. Default: sorted union of the labels.

    Returns
    -------
    float
        kappa, at most 1; NaN when chance agreement is 1.

    References
    ----------
    Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and
    Psychological Measurement 20(1), 37-46. https://doi.org/10.1177/001316446002000104
    Cohen, J. (1968). Weighted kappa. Psychological Bulletin 70(4), 213-220.
    https://doi.org/10.1037/h0026256

    Examples
    --------
    >>> round(cohen_kappa(["y", "y", "n", "n"], ["y", "n", "n", "n"]), 3)
    0.5
    """
    weights = _check_weights(weights)
    cells, cats = _pair_codes(a, b, categories)
    k = len(cats)
    conf = np.bincount(cells, minlength=k * k).reshape(1, k, k)
    return float(_confusion_metric(conf, "cohen_kappa", cats, weights=weights)[0])


# ------------------------------------------------------------------------ per worker
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
    metric = _metric_name(metric)
    options = _two_rater_options(metric, weights, level)
    coded = _encode(data, categories=categories)
    _check_workers(coded.workers)
    k, m = len(coded.categories), len(coded.workers)
    conf = _pair_confusions(coded.codes, k).reshape(m * m, k, k)
    values = _confusion_metric(conf, metric, coded.categories, **options)
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
    metric = _metric_name(metric)
    options = _two_rater_options(metric, weights, level)
    coded = _encode(data, categories=categories)
    _check_workers(coded.workers)
    k, m = len(coded.categories), len(coded.workers)
    counts = _codes_to_counts(coded.codes, k)
    w, t = np.nonzero(coded.codes >= 0)
    own = coded.codes[w, t]
    others = counts[t]
    others[np.arange(len(t)), own] -= 1
    top = others.max(1)
    rest = others.argmax(1)
    keep = (top > 0) & ((others == top[:, None]).sum(1) == 1)
    key = (w[keep] * k + own[keep]) * k + rest[keep]
    conf = np.bincount(key, minlength=m * k * k).reshape(m, k, k)
    values = _confusion_metric(conf, metric, coded.categories, **options)
    values[conf.sum((1, 2)) < 2] = np.nan
    return pd.Series(values, index=pd.Index(coded.workers, name="worker"), name=metric)


def per_class_agreement(data: Any = None, *, counts: Any = None,
                        categories: Sequence[Any] | None = None) -> pd.DataFrame:
    """Agreement on each category: category-specific kappa and specific agreement.

    ``kappa`` is Fleiss' (1971) category-specific kappa, i.e. Fleiss' kappa of the
    category against all others (with :func:`fleiss_kappa`'s generalisation to unequal
    numbers of labels). ``specific_agreement`` is the proportion of specific agreement
    (Uebersax 1982): given one label in the category, the chance that another worker on
    the same task chose it too, ``sum_u n_uk (n_uk - 1) / sum_u n_uk (m_u - 1)``.

    Parameters
    ----------
    data : DataFrame with columns ``task``, ``worker``, ``label``, or array_like of shape (M, N)
    counts : array_like of shape (N, K), optional
    categories : sequence, optional

    Returns
    -------
    DataFrame of shape (K, 4)
        Index ``label``; columns ``kappa``, ``specific_agreement``, ``prevalence`` (pi_k)
        and ``n_labels``. NaN where a category is never (or always) chosen.

    References
    ----------
    Fleiss, J. L. (1971). Psychological Bulletin 76(5), 378-382.
    https://doi.org/10.1037/h0031619
    Uebersax, J. S. (1982). A design-independent method for measuring the reliability of
    psychiatric diagnosis. Journal of Psychiatric Research 17(4), 335-342.
    https://doi.org/10.1016/0022-3956(82)90039-5

    Examples
    --------
    >>> per_class_agreement(counts=pd.DataFrame({"cat": [2, 2, 0], "dog": [0, 0, 2]}))
           kappa  specific_agreement  prevalence  n_labels
    label
    cat      1.0                 1.0    0.666667         4
    dog      1.0                 1.0    0.333333         2
    """
    c, cats = _counts_input(data, counts, categories)
    m = c.sum(1)
    _require_pairable(m)
    c, m = c[m >= 1].astype(float), m[m >= 1].astype(float)[:, None]
    two = m[:, 0] >= 2
    pi = (c / m).mean(0)
    # binary Fleiss: pairs agreeing on "k" plus pairs agreeing on "not k", per task
    pairs = (c * (c - 1) + (m - c) * (m - c - 1))[two] / (m * (m - 1))[two]
    kappa = _kappa(pairs.mean(0), pi * pi + (1 - pi) * (1 - pi))
    with np.errstate(divide="ignore", invalid="ignore"):
        den = (c * (m - 1))[two].sum(0)
        specific = np.where(den > 0, (c * (c - 1))[two].sum(0) / den, np.nan)
    return pd.DataFrame({"kappa": kappa, "specific_agreement": specific, "prevalence": pi,
                         "n_labels": c.sum(0).astype(np.int64)}, index=pd.Index(cats, name="label"))


# ------------------------------------------------------------------------ bootstrap
@dataclass(frozen=True)
class AgreementInterval:
    """A point estimate with a percentile bootstrap interval over tasks."""

    metric: str
    estimate: float
    low: float
    high: float
    level: float
    n_boot: int


def _unique_rows(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows (P, F) of integer units (U, F) in a canonical order, and their counts."""
    radix = units.max(0).astype(object) + 1
    if int(np.prod(radix)) < 2 ** 62:  # one int64 key per row: a 1-D unique is fast
        mult = np.cumprod(np.concatenate([[1], radix[:-1]])).astype(np.int64)
        _, first, freq = np.unique(units @ mult, return_index=True, return_counts=True)
        return units[first], freq
    order = np.lexsort(units.T[::-1])
    s = units[order]
    start = np.flatnonzero(np.r_[True, (s[1:] != s[:-1]).any(1)])
    return s[start], np.diff(np.append(start, len(s)))


def _resample_weights(freq: np.ndarray, n_boot: int, rng: np.random.Generator):
    """Yield blocks (b, P) of how often each distinct unit is drawn in a bootstrap resample.

    Drawing N units with replacement from N is multinomial(N, freq / N) over the P
    distinct units. numpy's multinomial costs O(P) per resample, drawing indices O(N):
    take the cheaper one. Both depend on the multiset of units only, not on task order.
    """
    n, p = int(freq.sum()), len(freq)
    table = np.repeat(np.arange(p), freq) if 4 * p > n else None
    block = max(1, (1 << 22) // (n if table is not None else p))  # about 32 MB per block
    for lo in range(0, n_boot, block):
        b = min(block, n_boot - lo)
        if table is None:
            yield rng.multinomial(n, freq / n, size=b).astype(float)
        else:
            drawn = table[rng.integers(0, n, size=(b, n))] + p * np.arange(b)[:, None]
            yield np.bincount(drawn.ravel(), minlength=b * p).reshape(b, p).astype(float)


def confidence_interval(metric: Any, data: Any = None, *, counts: Any = None,
                        categories: Sequence[Any] | None = None, level: float = 0.95,
                        n_boot: int = 1000, seed: int | np.random.Generator | None = 0,
                        options: Mapping[str, Any] | None = None) -> AgreementInterval:
    """Percentile bootstrap interval of an agreement statistic, resampling tasks.

    Tasks are resampled with replacement (a cluster bootstrap: a task's labels stay
    together). Tasks that cannot contribute are not resampled: those with fewer than 2
    labels for alpha and percent agreement, with no label for Fleiss and Gwet (whose
    chance term uses tasks with 1 label), and with either label missing for Cohen. Each
    task's features are computed once, per distinct task; a resample is a weighted sum.

    Parameters
    ----------
    metric : str or one of this module's statistic functions
        One of ``METRICS``. ``cohen_kappa`` needs exactly 2 workers in ``data``.
    data : DataFrame with columns ``task``, ``worker``, ``label``, or array_like of shape (M, N)
    counts : array_like of shape (N, K), optional
        Instead of ``data``, for the count-based statistics.
    categories : sequence, optional
    level : float
        Confidence level in (0, 1).
    n_boot : int
        Number of resamples.
    seed : int, Generator or None
    options : mapping, optional
        Options of the statistic: ``{"level": "ordinal"}`` for alpha, ``{"weights":
        "linear"}`` for Cohen's kappa.

    Returns
    -------
    AgreementInterval
        ``estimate`` (the statistic on all data), ``low`` and ``high``. Resamples where
        the statistic is undefined are left out of the quantiles.

    References
    ----------
    Efron, B., & Tibshirani, R. J. (1993). An Introduction to the Bootstrap. Chapman &
    Hall. https://doi.org/10.1007/978-1-4899-4541-9

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> truth = rng.integers(0, 3, 300)
    >>> data = np.where(rng.random((4, 300)) < 0.8, truth, rng.integers(0, 3, (4, 300)))
    >>> ci = confidence_interval("krippendorff_alpha", data, n_boot=200)
    >>> ci.low < ci.estimate < ci.high
    True
    """
    name = _metric_name(metric)
    options = dict(options or {})
    allowed = _OPTIONS.get(name, ())
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"options {unknown} do not apply to {name}; valid options: {list(allowed)}")
    if not (isinstance(level, (float, int)) and 0 < level < 1):
        raise ValueError(f"level={level!r}; expected a confidence level between 0 and 1, e.g. 0.95")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot={n_boot!r}; expected a positive number of resamples, e.g. 1000")
    rng = np.random.default_rng(seed)

    if name == "cohen_kappa":
        if counts is not None or data is None:
            raise ValueError("cohen_kappa needs data with exactly 2 workers, not counts")
        coded = _encode(data, categories=categories)
        if len(coded.workers) != 2:
            raise ValueError(f"cohen_kappa compares 2 workers; data has {len(coded.workers)}: use pairwise()")
        weights = _check_weights(options.get("weights"))
        cats, k = coded.categories, len(coded.categories)
        a, b = coded.codes
        units = (a * k + b)[(a >= 0) & (b >= 0)][:, None]
        if len(units) == 0:
            raise ValueError("the 2 workers share no task")
        stat = _Stat(lambda u: np.eye(k * k)[u[:, 0]],
                     lambda s: _confusion_metric(s.reshape(-1, k, k), name, cats, weights=weights), 1)
    else:
        c, cats = _counts_input(data, counts, categories)
        _require_pairable(c.sum(1))
        stat = _count_stat(name, cats, options)
        units = c[c.sum(1) >= stat.min_labels]

    patterns, freq = _unique_rows(units)
    features = stat.features(patterns)
    estimate = float(stat.finish((freq @ features)[None])[0])
    boot = np.concatenate([stat.finish(w @ features) for w in _resample_weights(freq, n_boot, rng)])
    ok = boot[np.isfinite(boot)]
    low, high = (np.quantile(ok, [(1 - level) / 2, (1 + level) / 2]) if len(ok) else (np.nan, np.nan))
    return AgreementInterval(name, estimate, float(low), float(high), float(level), int(n_boot))
