"""Shared internals of the agreement statistics: input checks, distance functions, and
statistics as per-task features plus a finisher.

Every multi-rater statistic is a function of per-task sums: each task (unit) contributes
a row of *features* computed from its label counts, and a *finisher* turns the column
sums into the statistic (a :class:`Stat`). Two-rater statistics finish confusion
matrices of shape (B, K, K) in :func:`confusion_metric`. Public functions live in
:mod:`labkit.quality.agreement`, :mod:`labkit.quality.agreement_pairwise` and
:mod:`labkit.quality.agreement_ci`; everything here trusts that they validated.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from labkit._util.checks import check_choice

from ._coding import codes_to_counts, encode

__all__ = ["LEVELS", "METRICS", "OPTIONS", "Stat", "alpha_stat", "check_weights", "check_workers", "class_kappa",
           "confusion_metric", "count_stat", "counts_input", "fleiss_stat", "gwet_stat", "metric_name",
           "percent_stat", "require_pairable", "two_rater_options"]

LEVELS = ("nominal", "ordinal", "interval", "ratio")
METRICS = ("krippendorff_alpha", "fleiss_kappa", "gwet_ac1", "percent_agreement", "cohen_kappa")
_WEIGHTS = ("linear", "quadratic")
OPTIONS = {"krippendorff_alpha": ("level",), "cohen_kappa": ("weights",)}

# the modules whose statistic functions may be passed as ``metric=`` (by function)
_AGREEMENT_MODULES = frozenset(f"{__package__}.{m}" for m in (
    "agreement", "agreement_pairwise", "agreement_ci", "_agreement"))


# ----------------------------------------------------------------------------- input
def counts_input(data: Any, counts: Any, categories: Sequence[Any] | None) -> tuple[np.ndarray, pd.Index]:
    """Counts (N, K) and the category order, from exactly one of data and counts."""
    if (data is None) == (counts is None):
        raise ValueError(
            "pass either data (a long DataFrame or reliability array of shape (M workers, N tasks)) "
            "or counts= (a table of shape (N tasks, K categories)), "
            + ("not both" if data is not None else "got neither")
        )
    if counts is None:
        coded = encode(data, categories=categories)
        check_workers(coded.workers)
        return codes_to_counts(coded.codes, len(coded.categories)), coded.categories
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


def check_workers(workers: pd.Index) -> None:
    if len(workers) < 2:
        raise ValueError(f"agreement needs at least 2 workers; got {len(workers)} ({list(workers)})")


def require_pairable(n_labels: np.ndarray) -> None:
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
class Stat:
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


def alpha_stat(categories: pd.Index, level: str) -> Stat:
    if level == "ordinal":
        return _ordinal_alpha_stat(len(categories))
    return _fixed_alpha_stat(categories, level)


def _ordinal_alpha_stat(k: int) -> Stat:
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

    return Stat(features, finish, 2, total)


def _fixed_alpha_stat(categories: pd.Index, level: str) -> Stat:
    """Nominal, interval or ratio alpha: the distance matrix does not depend on the data."""
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

    return Stat(features, finish, 2, total)


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


def fleiss_stat() -> Stat:
    def finish(s: np.ndarray) -> np.ndarray:
        pa, pi = _split_pi(s)
        return _kappa(pa, (pi * pi).sum(1))

    return Stat(_pi_features, finish, 1)


def gwet_stat(n_categories: int) -> Stat:
    def finish(s: np.ndarray) -> np.ndarray:
        pa, pi = _split_pi(s)
        if n_categories < 2:
            return np.full(len(s), np.nan)
        return _kappa(pa, (pi * (1 - pi)).sum(1) / (n_categories - 1))

    return Stat(_pi_features, finish, 1)


def percent_stat() -> Stat:
    def features(c: np.ndarray) -> np.ndarray:
        m = c.sum(1).astype(float)
        return np.column_stack([(c * (c - 1.0)).sum(1) / (m * (m - 1)), np.ones_like(m)])

    def finish(s: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return s[:, 0] / s[:, 1]

    return Stat(features, finish, 2)


def count_stat(metric: str, categories: pd.Index, options: Mapping[str, Any]) -> Stat:
    if metric == "krippendorff_alpha":
        return alpha_stat(categories, check_choice(options.get("level", "nominal"), LEVELS, "level"))
    if metric == "fleiss_kappa":
        return fleiss_stat()
    if metric == "gwet_ac1":
        return gwet_stat(len(categories))
    return percent_stat()


# ------------------------------------------------------------ two-rater (confusion) stats
def check_weights(weights: str | None) -> str | None:
    return None if weights is None else check_choice(weights, _WEIGHTS, "weights")


def confusion_metric(conf: np.ndarray, metric: str, categories: pd.Index, *,
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


def metric_name(metric: Any) -> str:
    if callable(metric) and getattr(metric, "__module__", None) in _AGREEMENT_MODULES:
        metric = metric.__name__
    return check_choice(metric, METRICS, "metric")


def two_rater_options(metric: str, weights: str | None, level: str) -> dict[str, Any]:
    weights, level = check_weights(weights), check_choice(level, LEVELS, "level")
    if weights is not None and metric != "cohen_kappa":
        raise ValueError(f"weights={weights!r} applies to metric='cohen_kappa' only; got metric={metric!r}")
    if level != "nominal" and metric != "krippendorff_alpha":
        raise ValueError(
            f"level={level!r} applies to metric='krippendorff_alpha' only; got metric={metric!r}")
    return {"weights": weights, "level": level}


def class_kappa(c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Category-specific (binary Fleiss) kappa for task weights ``w`` of shape (B, N); returns (B, K).

    ``c`` is the counts matrix (N, K) of tasks with at least one label. Prevalence is the
    mean over tasks of each category's share; observed agreement the mean over tasks
    with 2+ labels of the pairs agreeing on "k" or on "not k". Unit weights give the
    point estimate, bootstrap resample counts give its resamples.
    """
    m = c.sum(1, keepdims=True).astype(float)
    two = m[:, 0] >= 2
    pi = (w @ (c / m)) / w.sum(1, keepdims=True)
    pairs = (c * (c - 1) + (m - c) * (m - c - 1))[two] / (m * (m - 1))[two]
    pa = (w[:, two] @ pairs) / w[:, two].sum(1, keepdims=True)
    return _kappa(pa, pi * pi + (1 - pi) * (1 - pi))
