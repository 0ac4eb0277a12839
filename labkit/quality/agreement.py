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

This module holds the coefficients; per-worker statistics live in
:mod:`labkit.quality.agreement_pairwise` and the bootstrap in
:mod:`labkit.quality.agreement_ci`, shared internals in ``_agreement``. All public names
are re-exported here.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from labkit._util.checks import check_choice

from ._agreement import (
    LEVELS,
    METRICS,
    alpha_stat,
    check_weights,
    class_kappa,
    confusion_metric,
    counts_input,
    fleiss_stat,
    gwet_stat,
    percent_stat,
    require_pairable,
)
from ._coding import encode_labels
from .agreement_ci import AgreementInterval, confidence_interval, per_class_intervals
from .agreement_pairwise import pairwise, worker_vs_rest

__all__ = [
    "LEVELS",
    "METRICS",
    "AgreementInterval",
    "per_class_intervals",
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
    level = check_choice(level, LEVELS, "level")
    c, cats = counts_input(data, counts, categories)
    require_pairable(c.sum(1))
    return alpha_stat(cats, level).value(c)


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
    c, _ = counts_input(data, counts, None)
    require_pairable(c.sum(1))
    return fleiss_stat().value(c)


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
    c, cats = counts_input(data, counts, categories)
    require_pairable(c.sum(1))
    return gwet_stat(len(cats)).value(c)


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
    c, _ = counts_input(data, counts, None)
    require_pairable(c.sum(1))
    return percent_stat().value(c)


def _pair_codes(a: Any, b: Any, categories: Sequence[Any] | None) -> tuple[np.ndarray, pd.Index]:
    """Cell ids ``code_a * K + code_b`` for the tasks both raters labelled."""
    a, b = np.asarray(a, dtype=object).ravel(), np.asarray(b, dtype=object).ravel()
    if len(a) != len(b):
        raise ValueError(f"a has {len(a)} labels and b has {len(b)}; expected one label each per task")
    codes, cats = encode_labels(np.concatenate([a, b]), categories)
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
    weights = check_weights(weights)
    cells, cats = _pair_codes(a, b, categories)
    k = len(cats)
    conf = np.bincount(cells, minlength=k * k).reshape(1, k, k)
    return float(confusion_metric(conf, "cohen_kappa", cats, weights=weights)[0])

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
    c, cats = counts_input(data, counts, categories)
    m = c.sum(1)
    require_pairable(m)
    c, m = c[m >= 1].astype(float), m[m >= 1].astype(float)[:, None]
    two = m[:, 0] >= 2
    pi = (c / m).mean(0)
    kappa = class_kappa(c, np.ones((1, len(c))))[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        den = (c * (m - 1))[two].sum(0)
        specific = np.where(den > 0, (c * (c - 1))[two].sum(0) / den, np.nan)
    return pd.DataFrame({"kappa": kappa, "specific_agreement": specific, "prevalence": pi,
                         "n_labels": c.sum(0).astype(np.int64)}, index=pd.Index(cats, name="label"))

