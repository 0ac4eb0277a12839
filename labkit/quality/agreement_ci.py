"""Percentile bootstrap confidence intervals of agreement statistics, resampling tasks.

The bootstrap finishes ``weights @ features`` for a whole matrix of resampling weights at
once, with features computed once per distinct task, so no resample is recomputed from
scratch. Re-exported by :mod:`labkit.quality.agreement`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._agreement import (
    OPTIONS,
    Stat,
    check_weights,
    class_kappa,
    confusion_metric,
    count_stat,
    counts_input,
    metric_name,
    require_pairable,
)
from ._coding import encode

__all__ = ["AgreementInterval", "confidence_interval", "per_class_intervals"]


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
    metric : str or one of the statistic functions of :mod:`labkit.quality.agreement`
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
    name = metric_name(metric)
    options = dict(options or {})
    allowed = OPTIONS.get(name, ())
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
        coded = encode(data, categories=categories)
        if len(coded.workers) != 2:
            raise ValueError(f"cohen_kappa compares 2 workers; data has {len(coded.workers)}: use pairwise()")
        weights = check_weights(options.get("weights"))
        cats, k = coded.categories, len(coded.categories)
        a, b = coded.codes
        units = (a * k + b)[(a >= 0) & (b >= 0)][:, None]
        if len(units) == 0:
            raise ValueError("the 2 workers share no task")
        stat = Stat(lambda u: np.eye(k * k)[u[:, 0]],
                     lambda s: confusion_metric(s.reshape(-1, k, k), name, cats, weights=weights), 1)
    else:
        c, cats = counts_input(data, counts, categories)
        require_pairable(c.sum(1))
        stat = count_stat(name, cats, options)
        units = c[c.sum(1) >= stat.min_labels]

    patterns, freq = _unique_rows(units)
    features = stat.features(patterns)
    estimate = float(stat.finish((freq @ features)[None])[0])
    boot = np.concatenate([stat.finish(w @ features) for w in _resample_weights(freq, n_boot, rng)])
    ok = boot[np.isfinite(boot)]
    low, high = (np.quantile(ok, [(1 - level) / 2, (1 + level) / 2]) if len(ok) else (np.nan, np.nan))
    return AgreementInterval(name, estimate, float(low), float(high), float(level), int(n_boot))


def per_class_intervals(data: Any = None, *, counts: Any = None, categories: Sequence[Any] | None = None,
                        level: float = 0.95, n_boot: int = 1000, seed: int | np.random.Generator | None = 0
                        ) -> pd.DataFrame:
    """Fleiss' category-specific kappa per class with bootstrap intervals over tasks.

    The estimator is :func:`~labkit.quality.agreement.per_class_agreement`'s kappa; each
    resample re-weights the distinct count rows (as :func:`confidence_interval` does), so
    all resamples come from a few matrix products.

    Parameters
    ----------
    data : DataFrame (long layout) or ndarray of shape (workers, tasks)
    counts : array-like of shape (tasks, categories), optional
        Instead of ``data``.
    level : float
        Confidence level of the percentile intervals.

    Returns
    -------
    DataFrame
        Indexed by class: ``kappa``, ``low``, ``high``, ``n_labels``.

    References
    ----------
    Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters.
    Psychological Bulletin, 76(5), 378-382. doi:10.1037/h0031619

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"task": [1, 1, 2, 2, 3, 3, 4, 4], "worker": list("abababab"),
    ...                    "label": ["x", "x", "y", "y", "x", "y", "y", "y"]})
    >>> per_class_intervals(df, n_boot=200)[["kappa", "n_labels"]].round(3)
           kappa  n_labels
    label
    x      0.467         3
    y      0.467         5
    """
    if not 0 < level < 1:
        raise ValueError(f"level is the confidence level, between 0 and 1; got {level!r}")
    x, cats = counts_input(data, counts, categories)
    require_pairable(x.sum(1))
    units, freq = _unique_rows(x[x.sum(1) >= 1])
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    point = class_kappa(units, freq[None, :].astype(float))[0]
    boots = np.concatenate([class_kappa(units, w) for w in _resample_weights(freq, n_boot, rng)])
    a = (1 - level) / 2
    low, high = np.nanquantile(boots, [a, 1 - a], axis=0)
    return pd.DataFrame({"kappa": point, "low": low, "high": high, "n_labels": (units * freq[:, None]).sum(0)},
                        index=pd.Index(cats, name="label"))
