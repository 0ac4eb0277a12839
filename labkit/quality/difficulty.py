"""How hard each sample is for a pool of classifiers: C- and X-perplexity and friends.

Every function reads the class probabilities that M models give N samples over K
classes: ``probs`` of shape ``(M, N, K)``, or an iterable of M ``(N, K)`` arrays,
one per model (a generator that loads one model's outputs at a time keeps memory
at O(N·K), the running sums, instead of O(M·N·K)). Samples and classes are in the
same order in every model. A memory-mapped array (``np.load(path, mmap_mode="r")``)
works too: it is read chunk by chunk.

- :func:`c_perplexity` (no labels needed): ``2 ** mean_m H(p_m)``, with ``H`` the
  Shannon entropy in bits. 1 when every model is certain, K when every model is
  uniform.
- :func:`x_perplexity`: the fraction of models whose top class is not the label.
- :func:`confusion_classes`: per sample, the classes behind those two scores.
- :func:`difficulty_table`: all of the above plus the usual ensemble uncertainty
  scores (BALD mutual information, variation ratio, margin), one row per sample.

Implementation: samples are processed in chunks that fit in cache, on a few
threads (numpy releases the GIL). numpy reduces a short last axis (K=10) row by
row, slowly, so sums over classes use ``einsum`` and maxima loop over the K
classes instead. float32 inputs are computed in float32 and accumulated in float64
wherever rounding would pile up (over more than 16 models, over samples' running
sums, in every final score), which matches a float64 computation to ~3e-7.
Iterables are consumed model by model into running sums.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, NamedTuple

import numpy as np

from . import _validate_probs as _v

__all__ = ["ConfusionClasses", "c_perplexity", "confusion_classes", "difficulty_table",
           "x_perplexity"]

#: Values per chunk, all models together: chunk and temporaries stay in L2.
_CHUNK_VALUES = 1 << 17
#: Up to this many classes, loops over classes beat numpy's per-row reductions.
_LOOP_MAX_K = 64

_Sums = dict  # name -> per-chunk sums over models: h (n,), c/p/votes (K, n), wrong (n,)


# --------------------------------------------------------------------------- engine

def _n_threads() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def _spans(N: int, models: int, K: int) -> list[tuple[int, int]]:
    n = max(1, _CHUNK_VALUES // (models * K))
    return [(s, min(s + n, N)) for s in range(0, N, n)]


def _run(pool: ThreadPoolExecutor | None, fn: Callable[[int, int], None],
         spans: list[tuple[int, int]]) -> None:
    # map() re-raises the first failing chunk's error, in chunk order: messages are deterministic.
    if pool is None or len(spans) < 2:
        for s, e in spans:
            fn(s, e)
    else:
        for _ in pool.map(lambda span: fn(*span), spans):
            pass


def _prepare(chunk: np.ndarray, src: _v.ProbSource, m0: int, i0: int,
             from_logits: bool) -> np.ndarray:
    """``(m, n, K)`` input slice -> validated probabilities in the work dtype (a view if it can)."""
    if not from_logits:
        q = chunk if chunk.dtype == src.work_dtype else chunk.astype(src.work_dtype)
        _v.check_chunk(q, src, m0, i0, from_logits=False)
        return q
    q = chunk.astype(src.work_dtype)
    _v.check_chunk(q, src, m0, i0, from_logits=True)
    q -= _max_classes(q)[..., None]  # stable softmax
    np.exp(q, out=q)
    q /= np.einsum("mnk->mn", q)[..., None]
    return q


def _max_classes(q: np.ndarray) -> np.ndarray:
    """``(m, n, K)`` -> ``(m, n)`` largest value per row."""
    if q.shape[2] > _LOOP_MAX_K:
        return q.max(axis=2)
    best = q[..., 0].copy()
    for k in range(1, q.shape[2]):
        np.maximum(best, q[..., k], out=best)
    return best


def _argmax_classes(q: np.ndarray) -> np.ndarray:
    """``(m, n, K)`` -> ``(m, n)`` top class per model; ties go to the lower class id."""
    K = q.shape[2]
    if K > _LOOP_MAX_K:
        return q.argmax(axis=2)
    # numpy reduces a short last axis row by row; K strided passes over all rows are faster
    best = q[..., 0].copy()
    top = np.zeros(best.shape, np.int16)
    gt = np.empty(best.shape, bool)
    for k in range(1, K):
        np.greater(q[..., k], best, out=gt)
        # k only grows, so the latest strict improvement wins; no masked (slow) writes
        np.maximum(top, gt * np.int16(k), out=top)
        np.maximum(best, q[..., k], out=best)
    return top


def _sum_models(x: np.ndarray) -> np.ndarray:
    """``(m, n, K)`` -> ``(K, n)`` float64 sum over models, contiguous for the class loops."""
    if x.shape[0] <= 16 or x.dtype == np.float64:
        # a few float32 terms lose nothing that matters; einsum also transposes for free
        return np.einsum("mnk->kn", x).astype(np.float64, copy=False)
    return np.ascontiguousarray(x.sum(axis=0, dtype=np.float64).T)


def _partial(q: np.ndarray, labels: np.ndarray | None, need: frozenset[str]) -> _Sums:
    """Sums over the ``m`` models of a ``(m, n, K)`` chunk."""
    n, K = q.shape[1], q.shape[2]
    sums: _Sums = {}
    if "h" in need or "c" in need:
        logq = np.maximum(q, np.finfo(q.dtype).tiny)  # 0·log 0 = 0 without warnings
        np.log2(logq, out=logq)
        if "c" in need:
            logq *= q
            sums["c"] = _sum_models(logq)
            sums["c"] *= -1.0
            if "h" in need:
                sums["h"] = sums["c"].sum(axis=0)
        else:  # fused multiply and sum over classes
            sums["h"] = -np.einsum("mnk,mnk->mn", q, logq).sum(axis=0, dtype=np.float64)
    if "p" in need:
        sums["p"] = _sum_models(q)
    if "votes" in need or "wrong" in need:
        top = _argmax_classes(q)
        if "votes" in need:
            flat = top.astype(np.intp) * n + np.arange(n)
            sums["votes"] = np.bincount(flat.ravel(), minlength=K * n).reshape(K, n)
        if "wrong" in need:
            sums["wrong"] = np.count_nonzero(top != labels, axis=0)
    return sums


def _scan(src: _v.ProbSource, labels: np.ndarray | None, need: set[str], from_logits: bool,
          finish: Callable[[int, int, _Sums, int], None]) -> None:
    """Call ``finish(start, stop, sums, M)`` per chunk of samples, with sums over all M models."""
    needed = frozenset(need)
    N, K = src.N, src.K

    def lab(s: int, e: int) -> np.ndarray | None:
        return None if labels is None else labels[s:e]

    threads = _n_threads()
    with (ThreadPoolExecutor(threads) if threads > 1 else nullcontext()) as pool:
        if src.array is not None:
            array, M = src.array, src.n_models

            def whole(s: int, e: int) -> None:
                q = _prepare(array[:, s:e], src, 0, s, from_logits)
                finish(s, e, _partial(q, lab(s, e), needed), M)

            _run(pool, whole, _spans(N, M, K))
            return

        shapes = {"h": (N,), "wrong": (N,), "c": (K, N), "p": (K, N), "votes": (K, N)}
        acc = {name: np.zeros(shapes[name], np.int32 if name in ("votes", "wrong") else np.float64)
               for name in needed}
        spans = _spans(N, 1, K)
        for m, arr in src.iter_models():
            def add(s: int, e: int, m: int = m, arr: np.ndarray = arr) -> None:
                q = _prepare(arr[None, s:e], src, m, s, from_logits)
                for name, value in _partial(q, lab(s, e), needed).items():
                    acc[name][..., s:e] += value

            _run(pool, add, spans)
        _run(pool, lambda s, e: finish(s, e, {k: v[..., s:e] for k, v in acc.items()}, src.n_models),
             spans)


def _open(probs: Any, labels: Any) -> tuple[_v.ProbSource, np.ndarray | None]:
    src = _v.open_probs(probs)
    return src, (None if labels is None else _v.check_labels(labels, src))


def _perplexity(h_mean: np.ndarray, K: int) -> np.ndarray:
    # rounding (and rows off 1 by up to the tolerance) must not leave [1, K]
    return np.clip(np.exp2(h_mean), 1.0, K)


def _entropy_bits(p: np.ndarray) -> np.ndarray:
    """``(K, n)`` float64 distributions -> ``(n,)`` entropies in bits."""
    plogp = np.maximum(p, np.finfo(p.dtype).tiny)
    np.log2(plogp, out=plogp)
    plogp *= p
    return -plogp.sum(axis=0)


def _topk(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(K, n)`` -> ``(n, k)`` class ids and values, largest first, ties to the lower id."""
    order = np.argsort(-values.T, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(values.T, order, axis=1)


def _top2(v: np.ndarray, *, ids: bool = True) -> tuple:
    """``(K, n)`` -> ids and values of the largest and second largest, as :func:`_topk`.

    Without ``ids`` only ``(v1, v2)`` are returned.
    """
    if v.shape[0] > _LOOP_MAX_K:
        idx, val = _topk(v, 2)
        return (idx[:, 0], val[:, 0], idx[:, 1], val[:, 1]) if ids else (val[:, 0], val[:, 1])
    # one pass per class with preallocated buffers: these (n,) operations are small, so
    # temporaries and ufunc dispatch, not arithmetic, set the cost
    v1, v2 = np.maximum(v[0], v[1]), np.minimum(v[0], v[1])
    low = np.empty_like(v1)
    if ids:
        gt1, gt2 = v[1] > v[0], np.empty(v1.shape, bool)
        i1 = gt1.astype(np.int16)
        i2 = 1 - i1
        step = np.empty_like(i1)
    for k in range(2, v.shape[0]):
        vk = v[k]
        if ids:
            np.greater(vk, v1, out=gt1)
            np.greater(vk, v2, out=gt2)
            np.subtract(k, i2, out=step)   # i2 <- k where vk beats the runner-up ...
            step *= gt2
            i2 += step
            np.subtract(i1, i2, out=step)  # ... or <- i1 where vk beats the leader
            step *= gt1
            i2 += step
            np.multiply(gt1, k, out=step)  # k only grows: the latest strict improvement wins
            np.maximum(i1, step, out=i1)
        np.minimum(vk, v1, out=low)
        np.maximum(v2, low, out=v2)
        np.maximum(v1, vk, out=v1)
    return (i1, v1, i2, v2) if ids else (v1, v2)


# --------------------------------------------------------------------------- public API

def c_perplexity(probs: Any, *, from_logits: bool = False) -> np.ndarray:
    """C-perplexity (confusion): how uncertain the pool of models is about each sample.

    ``C(x) = 2 ** (1/M · Σ_m H(p_m(·|x)))``, the geometric mean over the M models
    of ``2 ** H`` with ``H = -Σ_k p_k log2 p_k`` in bits and ``0·log 0 = 0``. It
    needs no labels. ``1 <= C <= K``: 1 when every model puts all its mass on one
    class, K when every model is uniform.

    Parameters
    ----------
    probs : array_like of shape (M, N, K), or iterable of M arrays of shape (N, K)
        Class probabilities of M models for N samples over K classes. Each row
        must be finite, non-negative and sum to 1 (within 1e-3). An iterable
        (e.g. a generator loading one model's outputs at a time) is consumed once.
    from_logits : bool, default False
        ``probs`` holds logits; a numerically stable softmax is applied first.

    Returns
    -------
    ndarray of shape (N,)
        float64, in ``[1, K]``.

    Raises
    ------
    ValueError
        If shapes disagree or values are not probabilities; the message names the
        first offending model and sample.

    See Also
    --------
    x_perplexity, confusion_classes, difficulty_table

    References
    ----------
    .. [1] N. L. Zhang, W. Xie, Z. Lin, G. Dong, X.-H. Li, C. C. Cao, Y. Wang.
       "Example Perplexity". arXiv:2203.08813, 2022 (patent CN115661502A).

    Examples
    --------
    Two models, two samples, three classes. Both models are sure about sample 0;
    about sample 1 they have entropies of 1 and 1.5 bits, so C = 2 ** 1.25.

    >>> import numpy as np
    >>> probs = np.array([[[1.0, 0.0, 0.0], [0.50, 0.50, 0.0]],
    ...                   [[1.0, 0.0, 0.0], [0.25, 0.25, 0.5]]])
    >>> c_perplexity(probs).round(4)
    array([1.    , 2.3784])
    >>> c_perplexity(model for model in probs).round(4)  # one model at a time
    array([1.    , 2.3784])
    """
    src, _ = _open(probs, None)
    out = np.empty(src.N)

    def finish(s: int, e: int, sums: _Sums, M: int) -> None:
        out[s:e] = _perplexity(sums["h"] / M, src.K)

    _scan(src, None, {"h"}, from_logits, finish)
    return out


def x_perplexity(probs: Any, labels: Any, *, from_logits: bool = False) -> np.ndarray:
    """X-perplexity (mistake): the fraction of models whose top class is not the label.

    ``X(x) = 1/M · Σ_m [argmax_k p_m(k|x) != y]``. A model whose largest
    probability is shared by several classes votes for the lowest class id.

    Parameters
    ----------
    probs : array_like of shape (M, N, K), or iterable of M arrays of shape (N, K)
        As in :func:`c_perplexity`.
    labels : array_like of int, shape (N,)
        Given class index of every sample, in ``[0, K)``.
    from_logits : bool, default False
        ``probs`` holds logits; a numerically stable softmax is applied first.

    Returns
    -------
    ndarray of shape (N,)
        float64, in ``[0, 1]``, multiples of ``1/M``.

    References
    ----------
    .. [1] N. L. Zhang et al. "Example Perplexity". arXiv:2203.08813, 2022.

    Examples
    --------
    >>> import numpy as np
    >>> probs = np.array([[[1.0, 0.0, 0.0], [0.50, 0.50, 0.0]],
    ...                   [[1.0, 0.0, 0.0], [0.25, 0.25, 0.5]]])
    >>> x_perplexity(probs, labels=[0, 2])  # model 0 votes class 0 (tie) for sample 1
    array([0. , 0.5])
    """
    src, labels = _open(probs, labels)
    out = np.empty(src.N)

    def finish(s: int, e: int, sums: _Sums, M: int) -> None:
        out[s:e] = sums["wrong"] / M

    _scan(src, labels, {"wrong"}, from_logits, finish)
    return out


class ConfusionClasses(NamedTuple):
    """Top confusion classes per sample, from :func:`confusion_classes`.

    Rows are samples, columns ranks (largest value first, ties to the lower class
    id). ``-1`` in a class array marks an empty slot; its value is 0.

    Attributes
    ----------
    c_classes : ndarray of int64, shape (N, k)
        C-confusion classes: largest mean over models of ``-p log2 p`` (bits).
        Classes that contribute 0 (probability exactly 0 or 1 in every model) are
        not listed.
    c_values : ndarray of float64, shape (N, k)
        Their mean ``-p log2 p``; a row sums to at most the sample's mean entropy.
    x_classes : ndarray of int64, shape (N, k), or None
        X-confusion classes: the wrong classes the models voted for (top class
        other than the label), most votes first. Classes no model voted for, and
        the label itself, are not listed. ``None`` without labels.
    x_values : ndarray of int64, shape (N, k), or None
        Number of models that voted each class; a row sums to ``M · X``.
    """

    c_classes: np.ndarray
    c_values: np.ndarray
    x_classes: np.ndarray | None
    x_values: np.ndarray | None


def confusion_classes(probs: Any, labels: Any = None, *, k: int = 5,
                      from_logits: bool = False) -> ConfusionClasses:
    """The classes that make each sample confusing (C) and that models mistake it for (X).

    C-confusion value of class ``j``: ``1/M · Σ_m -p_m(j|x) log2 p_m(j|x)``, the
    class's share of the mean entropy (the values of a sample sum to
    ``log2 C``). X-confusion value of class ``j != y``: how many models have
    ``j`` as their top class. Unlike the paper's released code, the label is left
    out of the X list: its vote count is ``M · (1 - X)``, and what a reviewer of
    labels wants is the classes the pool mistook the sample for.

    Parameters
    ----------
    probs : array_like of shape (M, N, K), or iterable of M arrays of shape (N, K)
        As in :func:`c_perplexity`.
    labels : array_like of int, shape (N,), optional
        Given class indices; without them only the C lists are computed.
    k : int, default 5
        How many classes per sample; at most K are returned.
    from_logits : bool, default False
        ``probs`` holds logits; a numerically stable softmax is applied first.

    Returns
    -------
    ConfusionClasses
        ``(c_classes, c_values, x_classes, x_values)``, each of shape
        ``(N, min(k, K))``; see :class:`ConfusionClasses`.

    References
    ----------
    .. [1] N. L. Zhang et al. "Example Perplexity". arXiv:2203.08813, 2022.

    Examples
    --------
    >>> import numpy as np
    >>> probs = np.array([[[1.0, 0.0, 0.0], [0.50, 0.50, 0.0]],
    ...                   [[1.0, 0.0, 0.0], [0.25, 0.25, 0.5]]])
    >>> top = confusion_classes(probs, labels=[0, 2], k=2)
    >>> top.c_classes  # sample 0 is not confusing at all
    array([[-1, -1],
           [ 0,  1]])
    >>> top.c_values
    array([[0. , 0. ],
           [0.5, 0.5]])
    >>> top.x_classes, top.x_values  # for sample 1 (label 2), one model said class 0
    (array([[-1, -1],
           [ 0, -1]]), array([[0, 0],
           [1, 0]]))
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k is {k!r}; expected a positive integer (number of classes per sample)")
    src, labels = _open(probs, labels)
    kk = min(int(k), src.K)
    c_idx = np.empty((src.N, kk), np.int64)
    c_val = np.empty((src.N, kk))

    def finish(s: int, e: int, sums: _Sums, M: int) -> None:
        idx, val = _topk(sums["c"] / M, kk)
        idx[val <= 0] = -1
        c_idx[s:e], c_val[s:e] = idx, np.maximum(val, 0.0)

    if labels is None:
        _scan(src, None, {"c"}, from_logits, finish)
        return ConfusionClasses(c_idx, c_val, None, None)
    x_idx = np.empty((src.N, kk), np.int64)
    x_val = np.empty((src.N, kk), np.int64)

    def finish_with_labels(s: int, e: int, sums: _Sums, M: int) -> None:
        finish(s, e, sums, M)
        votes = sums["votes"].copy()
        votes[labels[s:e], np.arange(e - s)] = 0
        idx, val = _topk(votes, kk)
        idx[val == 0] = -1
        x_idx[s:e], x_val[s:e] = idx, val

    _scan(src, labels, {"c", "votes"}, from_logits, finish_with_labels)
    return ConfusionClasses(c_idx, c_val, x_idx, x_val)


_TABLE_FLOATS = ("c_perplexity", "x_perplexity", "expected_entropy", "predictive_entropy",
                 "mutual_information", "variation_ratio", "margin", "label_prob")


def difficulty_table(probs: Any, labels: Any = None, *, classes: Sequence[Any] | None = None,
                     sample_ids: Sequence[Any] | None = None, from_logits: bool = False) -> Any:
    """One row per sample with every difficulty and uncertainty score of the pool.

    With ``p̄ = 1/M Σ_m p_m`` the pool's mean distribution and entropies in bits:

    ==================== ==================================================================
    column               meaning
    ==================== ==================================================================
    c_perplexity         ``2 ** expected_entropy`` (:func:`c_perplexity`), in [1, K]
    x_perplexity         fraction of models whose top class is not the label; NaN
                         without labels (:func:`x_perplexity`)
    expected_entropy     ``1/M Σ_m H(p_m)``: how unsure a single model is on average
                         (aleatoric uncertainty in BALD terms), in [0, log2 K]
    predictive_entropy   ``H(p̄)``: total uncertainty of the pool, in [0, log2 K]
    mutual_information   ``predictive_entropy - expected_entropy`` (BALD): how much
                         the models disagree; >= 0
    variation_ratio      ``1 - (votes of the modal class) / M``, in [0, 1)
    margin               largest minus second largest entry of ``p̄``, in [0, 1]
    label_prob           ``p̄[label]``; NaN without labels
    c_confusion          the two C-confusion classes (:func:`confusion_classes`) as
                         ``"name_a|name_b"`` in class-list order, so a pair reads the
                         same whichever is larger; NaN when fewer than two classes
                         carry entropy. ``table.c_confusion.value_counts()`` lists the
                         most confused pairs
    x_confusion          the wrong class most models voted for (ties: the lower class
                         id); NaN when no model erred, or without labels. With
                         ``x_perplexity`` near 1 it is the class a mislabelled sample
                         most likely belongs to
    ==================== ==================================================================

    The two confusion columns are ``pandas.Categorical`` (cheap for millions of
    rows); use :func:`confusion_classes` for longer lists and their values.

    Parameters
    ----------
    probs : array_like of shape (M, N, K), or iterable of M arrays of shape (N, K)
        As in :func:`c_perplexity`.
    labels : array_like of int, shape (N,), optional
        Given class indices in ``[0, K)``.
    classes : sequence of str, length K, optional
        Class names for the confusion columns (default: the class ids 0..K-1).
    sample_ids : sequence, length N, optional
        Unique ids for the index (default: 0..N-1).
    from_logits : bool, default False
        ``probs`` holds logits; a numerically stable softmax is applied first.

    Returns
    -------
    pandas.DataFrame
        N rows, index named ``"sample"``, the columns above in that order.

    References
    ----------
    .. [1] N. L. Zhang et al. "Example Perplexity". arXiv:2203.08813, 2022.
    .. [2] N. Houlsby, F. Huszár, Z. Ghahramani, M. Lengyel. "Bayesian Active
       Learning for Classification and Preference Learning". arXiv:1112.5745, 2011.

    Examples
    --------
    >>> import numpy as np
    >>> probs = np.array([[[0.70, 0.25, 0.05], [0.50, 0.50, 0.0]],
    ...                   [[0.60, 0.35, 0.05], [0.25, 0.25, 0.5]]])
    >>> table = difficulty_table(probs, labels=[0, 2], classes=["cat", "dog", "fox"],
    ...                          sample_ids=["a.jpg", "b.jpg"])
    >>> table[["c_perplexity", "x_perplexity", "mutual_information", "margin"]].round(3)
            c_perplexity  x_perplexity  mutual_information  margin
    sample
    a.jpg          2.192           0.0               0.009    0.35
    b.jpg          2.378           0.5               0.311    0.00
    >>> table[["c_confusion", "x_confusion"]]
           c_confusion x_confusion
    sample
    a.jpg      cat|dog         NaN
    b.jpg      cat|dog         cat
    """
    src, labels = _open(probs, labels)
    N, K = src.N, src.K
    names = _v.check_classes(classes, K)
    index = _v.check_sample_ids(sample_ids, N)
    cols = {name: np.full(N, np.nan) for name in _TABLE_FLOATS}
    pair = np.empty(N, np.intp)
    x_code = np.full(N, -1, np.intp)
    log2k = np.log2(K)

    def finish(s: int, e: int, sums: _Sums, M: int) -> None:
        at = np.arange(e - s)
        expected = np.clip(sums["h"] / M, 0.0, log2k)
        pbar = sums["p"] / M
        predictive = np.clip(_entropy_bits(pbar), 0.0, log2k)
        votes = sums["votes"]
        cols["c_perplexity"][s:e] = _perplexity(expected, K)
        cols["expected_entropy"][s:e] = expected
        cols["predictive_entropy"][s:e] = predictive
        cols["mutual_information"][s:e] = np.maximum(predictive - expected, 0.0)
        cols["variation_ratio"][s:e] = 1.0 - votes.max(axis=0) / M
        top, second = _top2(pbar, ids=False)
        cols["margin"][s:e] = top - second
        i1, v1, i2, v2 = _top2(sums["c"] / M)  # as confusion_classes, so ties agree
        code = np.minimum(i1, i2).astype(np.intp) * K + np.maximum(i1, i2)
        pair[s:e] = np.where(v2 > 0, code, -1)
        if labels is not None:
            lab = labels[s:e]
            right = votes[lab, at]
            cols["x_perplexity"][s:e] = (M - right) / M
            cols["label_prob"][s:e] = pbar[lab, at]
            wrong = votes.copy()
            wrong[lab, at] = 0
            most = wrong.argmax(axis=0)  # first maximum: the lower class id on ties
            x_code[s:e] = np.where(wrong[most, at] > 0, most, -1)

    _scan(src, labels, {"h", "c", "p", "votes"}, from_logits, finish)
    return _assemble(cols, pair, x_code, names, index)


def _assemble(cols: dict, pair: np.ndarray, x_code: np.ndarray, names: list, index: Any) -> Any:
    import pandas as pd

    K = len(names)
    valid = pair >= 0
    if K * K <= 1 << 22:
        present = np.bincount(pair[valid], minlength=K * K) > 0
        pairs = np.flatnonzero(present)
        remap = np.cumsum(present) - 1
        codes = np.where(valid, remap[np.where(valid, pair, 0)], -1)
    else:
        pairs, inverse = np.unique(pair[valid], return_inverse=True)
        codes = np.full(pair.shape, -1, np.intp)
        codes[valid] = inverse
    pair_names = [f"{names[c // K]}|{names[c % K]}" for c in pairs]
    frame = dict(cols)
    frame["c_confusion"] = pd.Categorical.from_codes(codes, categories=pair_names)
    frame["x_confusion"] = pd.Categorical.from_codes(x_code, categories=names)
    return pd.DataFrame(frame, index=index)
