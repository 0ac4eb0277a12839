"""Checks for a pool of models' class probabilities, shared by ``labkit.quality``.

Shape, dtype, label, class-name and sample-id checks run once, up front. The
per-value checks (finite, non-negative, rows summing to 1) run chunk by chunk
inside the scoring loop, on data that is already in cache; :func:`check_chunk`
is cheap when the chunk is valid and only searches for the culprit when it is
not, so that the message can name it.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Any

import numpy as np

#: Rows of probabilities must sum to 1 within this (float32 softmax outputs
#: written to disk with a few decimals are well inside it).
ROW_SUM_ATOL = 1e-3


class ProbSource:
    """Where the probabilities come from: one ``(M, N, K)`` array or M ``(N, K)`` arrays.

    ``array`` is set for an array; ``models`` (an iterator that has already
    yielded its first item into ``first``) for an iterable. ``M`` is ``None``
    for an iterable until it is consumed.
    """

    def __init__(self, array: np.ndarray | None, models: Iterator[Any] | None,
                 first: np.ndarray | None, M: int | None, N: int, K: int, dtype: np.dtype):
        self.array, self.models, self.first = array, models, first
        self.M, self.N, self.K = M, N, K
        self.work_dtype = np.dtype(np.float32 if dtype.itemsize <= 4 and dtype.kind == "f"
                                   else np.float64)
        self.row_atol = max(ROW_SUM_ATOL, K * float(np.finfo(dtype).eps) / 2
                            if dtype.kind == "f" else 0.0)

    @property
    def shape_text(self) -> str:
        if self.array is not None:
            return f"probs has shape {self.array.shape}"
        first, _ = self._iterable()
        return f"probs[0] has shape {first.shape}"

    @property
    def n_models(self) -> int:
        """``M``; for an iterable, known once :meth:`iter_models` has consumed it."""
        if self.M is None:
            raise ValueError("the number of models of an iterable probs is known only after "
                             "iter_models() has consumed it")
        return self.M

    def _iterable(self) -> tuple[np.ndarray, Iterator[Any]]:
        """``(first, models)`` of a source made from an iterable."""
        if self.first is None or self.models is None:
            raise ValueError("this ProbSource holds an (M, N, K) array, not an iterable of "
                             "models; read .array instead")
        return self.first, self.models

    def where(self, m: int, i: int) -> str:
        return f"probs[{m}, {i}]" if self.array is not None else f"probs[{m}][{i}]"

    def iter_models(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(m, (N, K) array)``, checking each model's shape as it arrives."""
        first, models = self._iterable()
        for m, item in enumerate(chain([first], models)):
            arr = first if m == 0 else _numeric(item, f"probs[{m}]")
            if arr.shape != first.shape:
                raise ValueError(
                    f"probs[{m}] has shape {arr.shape} but probs[0] has shape {first.shape}; "
                    "expected every model's array to have the same shape (N samples, K classes), "
                    "in the same sample and class order")
            yield m, arr
        self.M = m + 1


def _numeric(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} has dtype {arr.dtype}; expected real numbers "
                         "(probabilities, or logits with from_logits=True)")
    return arr


def open_probs(probs: Any) -> ProbSource:
    """Check the outer shape of ``probs`` and describe it (see :class:`ProbSource`)."""
    if isinstance(probs, np.ndarray) or hasattr(probs, "__array__"):
        arr = _numeric(probs, "probs")
        if arr.ndim != 3:
            hint = (" For a single model use probs[None]." if arr.ndim == 2 else "")
            raise ValueError(f"probs has shape {arr.shape}; expected (M models, N samples, "
                             f"K classes) or an iterable of M (N, K) arrays.{hint}")
        M, N, K = arr.shape
        if M == 0:
            raise ValueError(f"probs has shape {arr.shape}; expected at least one model (M >= 1)")
        _check_k(K, "probs", arr.shape)
        return ProbSource(arr, None, None, M, N, K, arr.dtype)
    if isinstance(probs, (str, bytes, dict)) or not isinstance(probs, Iterable):
        raise ValueError(f"probs has type {type(probs).__name__}; expected an (M, N, K) array "
                         "or an iterable of M (N, K) arrays, one per model")
    models = iter(probs)
    try:
        first = next(models)
    except StopIteration:
        raise ValueError("probs is empty; expected at least one model's (N, K) array") from None
    first = _numeric(first, "probs[0]")
    if first.ndim != 2:
        raise ValueError(f"probs[0] has shape {first.shape}; expected an (N samples, K classes) "
                         "array per model when probs is an iterable")
    N, K = first.shape
    _check_k(K, "probs[0]", first.shape)
    return ProbSource(None, models, first, None, N, K, first.dtype)


def _check_k(K: int, what: str, shape: tuple) -> None:
    if K < 2:
        raise ValueError(f"{what} has shape {shape}, so K={K} class(es); expected at least 2 "
                         "classes on the last axis (is the array transposed?)")


def check_labels(labels: Any, src: ProbSource) -> np.ndarray:
    """Labels as an ``(N,)`` intp array of class indices in ``[0, K)``."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != src.N:
        raise ValueError(f"{src.shape_text} (N={src.N} samples) but labels has shape "
                         f"{arr.shape}; expected one label per sample, shape ({src.N},)")
    if arr.dtype.kind not in "iu":
        hint = ("use labels.astype(int) if they are whole numbers" if arr.dtype.kind in "fb"
                else "map class names to indices, e.g. [classes.index(c) for c in labels]")
        raise ValueError(f"labels has dtype {arr.dtype}; expected integer class indices "
                         f"0..{src.K - 1} ({hint})")
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if hi >= src.K:
            raise ValueError(f"{src.shape_text} but labels has values up to {hi}; expected "
                             f"K={hi + 1} classes. Check that probs and labels use the same "
                             "class list, and that labels count from 0")
        if lo < 0:
            raise ValueError(f"labels has values down to {lo}; expected class indices in "
                             f"[0, {src.K}). Drop unlabelled samples (c_perplexity needs no "
                             "labels)")
    return arr.astype(np.intp, copy=False)


def check_classes(classes: Sequence[Any] | None, K: int) -> list[Any]:
    """Class names, one per class; ``range(K)`` by default."""
    if classes is None:
        return list(range(K))
    names = list(classes)
    if len(names) != K:
        raise ValueError(f"classes has {len(names)} names but probs has K={K} classes; "
                         "expected one name per class, in the order of the last axis of probs")
    seen: set[Any] = set()
    dups = []
    for c in names:
        if c in seen:
            dups.append(c)
        seen.add(c)
    if dups:
        raise ValueError(f"classes has duplicate names, e.g. {dups[0]!r}; expected unique names")
    bad = [c for c in names if "|" in str(c)]
    if bad:
        raise ValueError(f"class name {bad[0]!r} contains '|', which separates the class pair in "
                         "the c_confusion column; rename it (e.g. replace '|' with '/')")
    return names


def check_sample_ids(sample_ids: Sequence[Any] | None, N: int) -> Any:
    """A ``pandas.Index`` named ``"sample"`` of N unique ids (``0..N-1`` by default)."""
    import pandas as pd

    if sample_ids is None:
        return pd.RangeIndex(N, name="sample")
    index = pd.Index(sample_ids, name="sample")
    if index.ndim != 1 or len(index) != N:
        raise ValueError(f"sample_ids has {len(index)} ids but probs has N={N} samples; "
                         "expected one id per sample, in the order of the samples axis")
    if not index.is_unique:
        dup = index[index.duplicated()].tolist()[0]
        raise ValueError(f"sample_ids has duplicates, e.g. {dup!r}; expected unique ids")
    return index


def check_chunk(q: np.ndarray, src: ProbSource, m0: int, i0: int, *, from_logits: bool) -> None:
    """Raise ValueError unless the ``(m, n, K)`` chunk holds valid values.

    ``q[a, b]`` is model ``m0 + a``, sample ``i0 + b``. Probabilities must be
    finite, non-negative and sum to 1 per row; logits must be finite.
    """
    if from_logits:
        if np.isfinite(q.min()) and np.isfinite(q.max()):
            return
        a, b, k = np.argwhere(~np.isfinite(q))[0]
        raise ValueError(f"{src.where(m0 + a, i0 + b)} has {q[a, b, k]} for class {k}; "
                         "expected finite logits")
    sums = np.einsum("mnk->mn", q)  # much faster than q.sum(-1) for a short last axis
    lowest = q.min()
    if lowest >= 0 and np.all(np.abs(sums - 1.0) <= src.row_atol):
        return
    bad = np.argwhere(~np.isfinite(q))
    if bad.size:
        a, b, k = bad[0]
        raise ValueError(f"{src.where(m0 + a, i0 + b)} has {q[a, b, k]} for class {k}; expected "
                         "finite probabilities (look for NaN/inf in the model outputs)")
    bad = np.argwhere(q < 0)
    if bad.size:
        a, b, k = bad[0]
        raise ValueError(f"{src.where(m0 + a, i0 + b)} has the negative value {q[a, b, k]:.6g} "
                         f"for class {k}; expected probabilities in [0, 1]. If these are logits "
                         "or log-probabilities, pass from_logits=True")
    a, b = np.argwhere(np.abs(sums - 1.0) > src.row_atol)[0]
    raise ValueError(f"{src.where(m0 + a, i0 + b)} sums to {sums[a, b]:.6g}; expected each "
                     f"model's probabilities for a sample to sum to 1 (tolerance "
                     f"{src.row_atol:g}). Normalise with p / p.sum(-1, keepdims=True), or pass "
                     "from_logits=True if these are logits")
