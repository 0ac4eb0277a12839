"""Integer coding of multi-annotator labels: the one place labels become codes.

The converters of :mod:`labkit.quality.layouts`, the agreement statistics and the
label aggregators all code the long layout (``task``, ``worker``, ``label`` rows) or a
reliability array through these functions, so every one of them orders categories,
rejects duplicates and reports bad input the same way.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from labkit._util.checks import check_choice

__all__ = ["COLUMNS", "Coded", "check_long", "code_rows", "codes_to_counts", "encode", "encode_labels",
           "encode_long"]

#: Columns of the long layout.
COLUMNS = ("task", "worker", "label")
_DUPLICATES = ("error", "first")


class Coded(NamedTuple):
    """Integer codes (M, N) with -1 for missing, and the labels of axes and codes."""

    codes: np.ndarray
    workers: pd.Index
    tasks: pd.Index
    categories: pd.Index


def _factorize(values: Any, what: str) -> tuple[np.ndarray, pd.Index]:
    """Codes in sorted order of the unique values; falls back to first appearance if unsortable."""
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:  # e.g. task ids mixing str and int: order is cosmetic, keep appearance
        codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64, copy=False), pd.Index(uniques, name=what)


def encode_labels(values: Any, categories: Sequence[Any] | None) -> tuple[np.ndarray, pd.Index]:
    """Codes (-1 where missing) and the category order for a flat sequence of labels."""
    if categories is None:
        try:
            codes, cats = pd.factorize(values, sort=True)
        except TypeError as exc:
            found = sorted({type(v).__name__ for v in pd.unique(values) if not pd.isna(v)})
            raise ValueError(
                f"labels mix types that cannot be sorted ({', '.join(found)}); pass "
                "categories=[...] to fix the category order, or convert labels to one type"
            ) from exc
        return codes.astype(np.int64, copy=False), pd.Index(cats, name="label")
    cats = pd.Index(list(categories), name="label")
    if len(cats) == 0:
        raise ValueError("categories is empty; pass the list of possible labels, or None")
    if not cats.is_unique:
        dup = cats[cats.duplicated()].unique().tolist()
        raise ValueError(f"categories must be unique; {dup} appear more than once")
    codes = cats.get_indexer(values).astype(np.int64, copy=False)
    unknown = (codes < 0) & ~np.asarray(pd.isna(values))
    if unknown.any():
        bad = pd.unique(np.asarray(values, dtype=object)[unknown])[:5].tolist()
        raise ValueError(
            f"{int(unknown.sum())} labels are not in categories, e.g. {bad}; "
            f"categories are {cats.tolist()[:20]}: add the missing ones"
        )
    return codes, cats


def check_long(long: Any) -> pd.DataFrame:
    if not isinstance(long, pd.DataFrame):
        raise ValueError(
            f"expected a long pandas DataFrame with columns {list(COLUMNS)}; got {type(long).__name__}"
        )
    missing = [c for c in COLUMNS if c not in long.columns]
    if missing:
        hint = " A wide table (tasks x workers) converts with wide_to_long()." if "label" in missing else ""
        raise ValueError(
            f"long DataFrame is missing columns {missing}; found {list(map(str, long.columns))}; "
            f"expected {list(COLUMNS)}.{hint}"
        )
    if len(long) == 0:
        raise ValueError("long DataFrame is empty; expected at least one (task, worker, label) row")
    nan_label = long["label"].isna().to_numpy()
    if nan_label.any():
        rows = long.index[nan_label][:5].tolist()
        raise ValueError(
            f"{int(nan_label.sum())} rows have a missing label (index {rows}...); drop them "
            "(long.dropna(subset=['label'])): in the long layout a missing label is a missing row"
        )
    for col in ("task", "worker"):
        if long[col].isna().any():
            raise ValueError(f"column {col!r} has missing values; every row needs a {col} id")
    return long


def code_rows(long: pd.DataFrame, categories: Sequence[Any] | None, duplicates: str):
    """Integer codes of the long layout's rows: ``(t_codes, w_codes, l_codes, tasks, workers, categories)``.

    Each (task, worker) pair keeps one row: more is an error, or the first row with
    ``duplicates="first"``. The one place long rows are coded (layouts and aggregators).
    """
    check_long(long)
    check_choice(duplicates, _DUPLICATES, "duplicates")
    # Series, not .to_numpy(): Arrow-backed strings factorize without an object copy
    t_codes, tasks = _factorize(long["task"], "task")
    w_codes, workers = _factorize(long["worker"], "worker")
    l_codes, cats = encode_labels(long["label"], categories)
    key = w_codes * len(tasks) + t_codes
    dup = pd.Series(key).duplicated(keep="first").to_numpy()
    if dup.any():
        if duplicates == "error":
            pairs = list(zip(tasks[t_codes[dup]], workers[w_codes[dup]]))[:5]
            raise ValueError(
                f"{int(dup.sum())} (task, worker) pairs have more than one label, e.g. {pairs}; "
                "deduplicate the rows, or pass duplicates='first' to keep each pair's first row"
            )
        keep = ~dup
        t_codes, w_codes, l_codes = t_codes[keep], w_codes[keep], l_codes[keep]
    return t_codes, w_codes, l_codes, tasks, workers, cats


def encode_long(long: pd.DataFrame, categories: Sequence[Any] | None, duplicates: str) -> Coded:
    t_codes, w_codes, l_codes, tasks, workers, cats = code_rows(long, categories, duplicates)
    codes = np.full((len(workers), len(tasks)), -1, dtype=np.int64)
    codes[w_codes, t_codes] = l_codes
    return Coded(codes, workers, tasks, cats)


def _encode_array(data: Any, categories: Sequence[Any] | None) -> Coded:
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(
            f"reliability data has shape {arr.shape}; expected a 2-D array of shape "
            "(M workers, N tasks) with NaN for missing labels"
        )
    if arr.size == 0:
        raise ValueError(f"reliability data has shape {arr.shape}; expected at least one worker and task")
    codes, cats = encode_labels(arr.ravel(), categories)
    if len(cats) == 0:
        raise ValueError("reliability data has no labels: every entry is missing (NaN)")
    codes = codes.reshape(arr.shape)
    return Coded(codes, pd.RangeIndex(arr.shape[0], name="worker"),
                  pd.RangeIndex(arr.shape[1], name="task"), cats)


def encode(data: Any, *, categories: Sequence[Any] | None = None, duplicates: str = "error") -> Coded:
    """Integer codes (M, N), -1 missing, from a long DataFrame or a reliability array."""
    if isinstance(data, pd.DataFrame):
        return encode_long(data, categories, duplicates)
    return _encode_array(data, categories)


def codes_to_counts(codes: np.ndarray, n_categories: int) -> np.ndarray:
    """Counts (N, K) from codes (M, N) with -1 for missing."""
    n_tasks = codes.shape[1]
    # missing (-1) lands in an extra column 0 that is dropped: no boolean mask needed
    flat = codes + (1 + (n_categories + 1) * np.arange(n_tasks, dtype=np.int64))
    counts = np.bincount(flat.ravel(), minlength=n_tasks * (n_categories + 1))
    return counts.reshape(n_tasks, n_categories + 1)[:, 1:]
