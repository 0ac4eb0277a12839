"""Label-error candidates from a pool's out-of-sample probabilities.

Two views of the same evidence are combined:

- **confident learning** (cleanlab's ``find_label_issues``) on the pool's mean
  probabilities ``p̄ = 1/M Σ_m p_m``: a sample is flagged when the pool is confident
  (above the per-class threshold) that it belongs to another class, with the number
  of flags per class pair set by the estimated joint of given and true labels;
- **X-perplexity** (:func:`~labkit.quality.difficulty.x_perplexity`): the share of the
  M models whose top class is not the given label.

A sample is a candidate when cleanlab flags it or when nearly every model votes against
its label (``x_perplexity >= x_threshold``, default 0.8). The two catch different errors:
confident learning prunes as many samples per class pair as its estimate of the noise
rate, and so misses some flips; a label that almost the whole pool (strong and weak
members, trained on different data) rejects is rarely right, while a sample that is
merely hard is still labelled correctly by the stronger models. On scikit-learn's digits
with 10% planted flips (``benchmarks/bench_label_errors.py``), the union keeps
cleanlab's precision and finds nearly all flips; a threshold of 0.5 (a bare majority)
lets in many hard but correct samples. Candidates are ranked by

    ``score = (x_perplexity + (1 - label_prob)) / 2``

the mean of the share of models that disagree with the label and the pool's mean
probability against it (both in [0, 1]; ``label_prob`` is cleanlab's self-confidence
``p̄[label]``). Ties keep the sample order.

The probabilities must be **out-of-sample**: no model may have trained on the samples
it scores (cross-fitting, as :meth:`labkit.models.pool.ModelPool.train` does), or a
model that memorised a wrong label will vouch for it.

This module needs numpy, pandas and cleanlab (``pip install cleanlab``), never torch.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _validate_probs as _v
from .difficulty import difficulty_table

__all__ = ["ISSUE_COLUMNS", "label_issues"]

#: Columns of :func:`label_issues`, in order.
ISSUE_COLUMNS = ("given_label", "suggested_label", "score", "cl_flag", "x_perplexity",
                 "c_perplexity", "label_prob", "suggested_prob", "votes", "n_models", "reason")

_CANDIDATES = ("either", "both", "cleanlab", "x_perplexity")


def _cleanlab():
    try:
        from cleanlab.count import get_confident_thresholds
        from cleanlab.filter import find_label_issues
    except ImportError as exc:  # pragma: no cover - cleanlab is a dependency
        raise ImportError("labkit.quality.label_issues needs cleanlab; install it with "
                          "`pip install cleanlab`") from exc
    return find_label_issues, get_confident_thresholds


def label_issues(probs: Any, labels: Any, *, classes: Sequence[Any] | None = None,
                 sample_ids: Sequence[Any] | None = None, x_threshold: float = 0.8,
                 candidates: str = "either", filter_by: str = "prune_by_noise_rate",
                 n_jobs: int | None = 1, return_all: bool = False) -> Any:
    """Rank the samples whose given label is probably wrong, with the reason for each.

    Parameters
    ----------
    probs : array_like of shape (M, N, K), or iterable of M arrays of shape (N, K)
        Out-of-sample class probabilities of M models for N samples over K classes
        (rows finite, non-negative, summing to 1).
    labels : array_like of int, shape (N,)
        Given class index of every sample, in ``[0, K)``.
    classes : sequence of str, length K, optional
        Class names, used in ``given_label``, ``suggested_label`` and ``reason``
        (default: the class ids).
    sample_ids : sequence, length N, optional
        Unique ids for the index (default: 0..N-1).
    x_threshold : float in (0, 1], default 0.8
        A sample is an X-candidate when ``x_perplexity >= x_threshold``: at least this
        share of the models vote against the label (0.8 of 9 models: 8; of 4 models: all).
    candidates : {"either", "both", "cleanlab", "x_perplexity"}, default "either"
        Which samples are listed: flagged by cleanlab or X-candidates (``"either"``),
        by both, or by one of them only.
    filter_by : str, default "prune_by_noise_rate"
        Passed to :func:`cleanlab.filter.find_label_issues`.
    n_jobs : int or None, default 1
        Processes for cleanlab (``None``: all cores; 1 avoids starting processes,
        which costs more than it saves below ~10^5 samples).
    return_all : bool, default False
        Return every sample (candidates first, then the rest, each part ranked) with
        a boolean ``candidate`` column, instead of the candidates only.

    Returns
    -------
    pandas.DataFrame
        One row per candidate, best first, indexed by sample id (index name
        ``"sample"``), with columns:

        =============== ===========================================================
        given_label     the label under review (a class name)
        suggested_label the pool's most probable class other than the given one
        score           ``(x_perplexity + 1 - label_prob) / 2``, in [0, 1]
        cl_flag         cleanlab's confident learning flags the sample
        x_perplexity    share of models whose top class is not the given label
        c_perplexity    how confused the pool is (1 = sure, K = uniform); a high
                        value points to an ambiguous image rather than a wrong label
        label_prob      ``p̄[given]``, cleanlab's self-confidence
        suggested_prob  ``p̄[suggested]``
        votes           models whose top class is ``suggested_label``
        n_models        M
        reason          the evidence, in words
        =============== ===========================================================

    Raises
    ------
    ValueError
        For probabilities, labels, classes or ids that do not fit together (the
        message names the first offending value), or an unknown option.
    ImportError
        When cleanlab is not installed.

    References
    ----------
    .. [1] C. G. Northcutt, L. Jiang, I. L. Chuang. "Confident Learning: Estimating
       Uncertainty in Dataset Labels". JAIR 70, 2021. arXiv:1911.00068.
    .. [2] N. L. Zhang, W. Xie, Z. Lin, G. Dong, X.-H. Li, C. C. Cao, Y. Wang.
       "Example Perplexity". arXiv:2203.08813, 2022.

    Examples
    --------
    Three models, six samples of two classes; sample 5 is labelled ``cat`` but every
    model says ``dog``.

    >>> import numpy as np
    >>> cat, dog, sure_dog = [0.9, 0.1], [0.2, 0.8], [0.1, 0.9]
    >>> probs = np.array([[cat, cat, cat, dog, dog, sure_dog]] * 3)
    >>> table = label_issues(probs, [0, 0, 0, 1, 1, 0], classes=["cat", "dog"])
    >>> table[["given_label", "suggested_label", "score", "cl_flag", "votes"]]
           given_label suggested_label  score  cl_flag  votes
    sample
    5              cat             dog   0.95     True      3
    >>> print(table.reason.iloc[0])
    cleanlab flags it (p('cat') = 0.10, below the class threshold 0.70); 3/3 models vote 'dog'
    """
    import pandas as pd

    if candidates not in _CANDIDATES:
        raise ValueError(f"candidates is {candidates!r}; expected one of {_CANDIDATES}")
    if isinstance(x_threshold, bool) or not isinstance(x_threshold, (int, float, np.number)) \
            or not 0 < float(x_threshold) <= 1:
        raise ValueError(f"x_threshold is {x_threshold!r}; expected a number in (0, 1] "
                         "(the share of models voting against the label)")
    arr = _as_array(probs)
    # difficulty_table validates shapes, values, labels, class names and ids
    table = difficulty_table(arr, labels, classes=classes, sample_ids=sample_ids)
    src = _v.open_probs(arr)
    y = _v.check_labels(labels, src)
    names = _v.check_classes(classes, src.K)
    find_label_issues, get_confident_thresholds = _cleanlab()
    return _compute(arr, y, names, table, float(x_threshold), candidates, filter_by, n_jobs,
                    return_all, find_label_issues, get_confident_thresholds, pd)


def _as_array(probs: Any) -> np.ndarray:
    if isinstance(probs, np.ndarray) or hasattr(probs, "__array__"):
        return np.asarray(probs)
    src = _v.open_probs(probs)  # a clear error for non-iterables and empty iterables
    return np.stack([arr for _, arr in src.iter_models()])


def _compute(arr, y, names, table, x_threshold, candidates, filter_by, n_jobs, return_all,
             find_label_issues, get_confident_thresholds, pd):
    M, N, K = arr.shape
    pbar = arr.mean(axis=0, dtype=np.float64)
    pbar /= pbar.sum(axis=1, keepdims=True)  # rows were within tolerance of 1; cleanlab wants 1
    at = np.arange(N)
    cl_flag = np.asarray(find_label_issues(y, pbar, filter_by=filter_by, n_jobs=n_jobs), bool)
    thresholds = np.asarray(get_confident_thresholds(y, pbar), float)

    others = pbar.copy()
    others[at, y] = -np.inf
    suggested = others.argmax(axis=1)
    # models whose top class (ties: the lower id, as in x_perplexity) is the suggestion
    voted = np.count_nonzero(arr.argmax(axis=2) == suggested, axis=0)
    wrong_votes = np.rint(table["x_perplexity"].to_numpy() * M).astype(np.int64)
    most_voted = table["x_confusion"].cat.codes.to_numpy()  # the wrong class most models chose

    x = table["x_perplexity"].to_numpy()
    label_prob = table["label_prob"].to_numpy()
    x_flag = x >= x_threshold - 1e-12
    pick = {"either": cl_flag | x_flag, "both": cl_flag & x_flag, "cleanlab": cl_flag,
            "x_perplexity": x_flag}[candidates]
    score = (x + (1.0 - label_prob)) / 2.0

    out = pd.DataFrame({
        "given_label": pd.Categorical.from_codes(y, categories=names),
        "suggested_label": pd.Categorical.from_codes(suggested, categories=names),
        "score": score, "cl_flag": cl_flag, "x_perplexity": x,
        "c_perplexity": table["c_perplexity"].to_numpy(), "label_prob": label_prob,
        "suggested_prob": pbar[at, suggested], "votes": voted, "n_models": np.full(N, M),
    }, index=table.index)
    out["reason"] = [
        _reason(names, y[i], suggested[i], cl_flag[i], label_prob[i], thresholds[y[i]],
                wrong_votes[i], voted[i], most_voted[i], M)
        for i in range(N)]
    order = np.lexsort((at, label_prob, -score, ~pick))  # last key sorts first
    out = out.iloc[order]
    if return_all:
        out.insert(len(out.columns) - 1, "candidate", pick[order])
        return out
    return out[pick[order]]


def _reason(names, given, suggested, cl, p_given, threshold, wrong, voted, most_voted, M) -> str:
    g = names[given]
    if threshold > 1:  # cleanlab's marker for a class no sample is labelled with
        cl_text = f"p({g!r}) = {p_given:.2f}"
    else:
        rel = "below" if p_given < threshold else "above"
        cl_text = f"p({g!r}) = {p_given:.2f}, {rel} the class threshold {threshold:.2f}"
    head = f"cleanlab flags it ({cl_text})" if cl else f"cleanlab does not flag it ({cl_text})"
    if wrong == 0:
        tail = f"all {M} models vote {g!r}"
    elif voted == wrong:
        tail = f"{voted}/{M} models vote {names[suggested]!r}"
    elif voted > 0:
        tail = f"{wrong}/{M} models vote against {g!r}, {voted} of them for {names[suggested]!r}"
    else:
        tail = f"{wrong}/{M} models vote against {g!r} (most for {names[most_voted]!r})"
    return f"{head}; {tail}"
