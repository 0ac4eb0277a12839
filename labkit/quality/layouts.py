"""Converters between the layouts of multi-annotator labels: the one module that does it.

Four layouts hold the same labels (DESIGN.md, "Canonical in-memory shapes"):

- **long**: a DataFrame with columns ``task``, ``worker``, ``label``, one row per
  label (crowd-kit's layout). Labels may be strings or numbers.
- **wide**: a DataFrame of shape (N tasks, M workers), NaN where a worker gave no label.
- **reliability**: an array of shape (M workers, N tasks) of float category codes, NaN
  where missing (the layout of Krippendorff 2011 and of the ``krippendorff`` package).
- **counts**: a table of shape (N tasks, K categories): how many workers chose each
  category for each task (Fleiss 1971). Worker identity is gone, so it is one-way.

Category codes index the category order, which is the sorted unique labels unless
``categories=`` fixes it (for example an ordinal scale, or classes nobody used); every
converter that produces codes returns that order so codes map back to labels.
"""
from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "COLUMNS",
    "Reliability",
    "long_to_wide",
    "wide_to_long",
    "long_to_reliability",
    "reliability_to_long",
    "to_counts",
]

COLUMNS = ("task", "worker", "label")
_DUPLICATES = ("error", "first")


class Reliability(NamedTuple):
    """Reliability data with the labels of its axes and codes.

    Attributes
    ----------
    data : ndarray of shape (M, N)
        Float category codes ``0 .. K-1``; NaN where worker m gave task n no label.
    workers : pandas.Index of length M
    tasks : pandas.Index of length N
    categories : pandas.Index of length K
        ``categories[code]`` is the label a code stands for.
    """

    data: np.ndarray
    workers: pd.Index
    tasks: pd.Index
    categories: pd.Index


class _Coded(NamedTuple):
    """Integer codes (M, N) with -1 for missing, and the labels of axes and codes."""

    codes: np.ndarray
    workers: pd.Index
    tasks: pd.Index
    categories: pd.Index


def _check_choice(value: Any, valid: Sequence[str], what: str) -> str:
    """Return ``value`` if it is one of ``valid``, else raise naming the valid choices."""
    if isinstance(value, str) and value in valid:
        return value
    close = difflib.get_close_matches(str(value), valid, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown {what} {value!r}; expected one of {list(valid)}{hint}")


def _factorize(values: Any, what: str) -> tuple[np.ndarray, pd.Index]:
    """Codes in sorted order of the unique values; falls back to first appearance if unsortable."""
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:  # e.g. task ids mixing str and int: order is cosmetic, keep appearance
        codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64, copy=False), pd.Index(uniques, name=what)


def _encode_labels(values: Any, categories: Sequence[Any] | None) -> tuple[np.ndarray, pd.Index]:
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


def _check_long(long: Any) -> pd.DataFrame:
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


def _code_rows(long: pd.DataFrame, categories: Sequence[Any] | None, duplicates: str):
    """Integer codes of the long layout's rows: ``(t_codes, w_codes, l_codes, tasks, workers, categories)``.

    Each (task, worker) pair keeps one row: more is an error, or the first row with
    ``duplicates="first"``. The one place long rows are coded (layouts and aggregators).
    """
    _check_long(long)
    _check_choice(duplicates, _DUPLICATES, "duplicates")
    # Series, not .to_numpy(): Arrow-backed strings factorize without an object copy
    t_codes, tasks = _factorize(long["task"], "task")
    w_codes, workers = _factorize(long["worker"], "worker")
    l_codes, cats = _encode_labels(long["label"], categories)
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


def _encode_long(long: pd.DataFrame, categories: Sequence[Any] | None, duplicates: str) -> _Coded:
    t_codes, w_codes, l_codes, tasks, workers, cats = _code_rows(long, categories, duplicates)
    codes = np.full((len(workers), len(tasks)), -1, dtype=np.int64)
    codes[w_codes, t_codes] = l_codes
    return _Coded(codes, workers, tasks, cats)


def _encode_array(data: Any, categories: Sequence[Any] | None) -> _Coded:
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(
            f"reliability data has shape {arr.shape}; expected a 2-D array of shape "
            "(M workers, N tasks) with NaN for missing labels"
        )
    if arr.size == 0:
        raise ValueError(f"reliability data has shape {arr.shape}; expected at least one worker and task")
    codes, cats = _encode_labels(arr.ravel(), categories)
    if len(cats) == 0:
        raise ValueError("reliability data has no labels: every entry is missing (NaN)")
    codes = codes.reshape(arr.shape)
    return _Coded(codes, pd.RangeIndex(arr.shape[0], name="worker"),
                  pd.RangeIndex(arr.shape[1], name="task"), cats)


def _encode(data: Any, *, categories: Sequence[Any] | None = None, duplicates: str = "error") -> _Coded:
    """Integer codes (M, N), -1 missing, from a long DataFrame or a reliability array."""
    if isinstance(data, pd.DataFrame):
        return _encode_long(data, categories, duplicates)
    return _encode_array(data, categories)


def _codes_to_counts(codes: np.ndarray, n_categories: int) -> np.ndarray:
    """Counts (N, K) from codes (M, N) with -1 for missing."""
    n_tasks = codes.shape[1]
    # missing (-1) lands in an extra column 0 that is dropped: no boolean mask needed
    flat = codes + (1 + (n_categories + 1) * np.arange(n_tasks, dtype=np.int64))
    counts = np.bincount(flat.ravel(), minlength=n_tasks * (n_categories + 1))
    return counts.reshape(n_tasks, n_categories + 1)[:, 1:]


def long_to_wide(long: pd.DataFrame, *, duplicates: str = "error") -> pd.DataFrame:
    """Pivot long labels to a tasks x workers table.

    Parameters
    ----------
    long : DataFrame with columns ``task``, ``worker``, ``label``
    duplicates : {"error", "first"}
        What to do when a (task, worker) pair has several rows: raise, or keep the first.

    Returns
    -------
    wide : DataFrame of shape (N, M)
        Index ``task`` and columns ``worker`` (sorted), the labels as values, NaN where
        missing (so integer labels come back as floats).

    Examples
    --------
    >>> long = pd.DataFrame({"task": [1, 1, 2], "worker": ["a", "b", "a"],
    ...                      "label": ["cat", "dog", "cat"]})
    >>> long_to_wide(long)
    worker    a    b
    task
    1       cat  dog
    2       cat  NaN
    """
    coded = _encode_long(long, None, duplicates)
    values = np.asarray(coded.categories, dtype=object)[coded.codes.T]
    values[coded.codes.T < 0] = np.nan
    wide = pd.DataFrame(values, index=coded.tasks, columns=coded.workers)
    return wide.infer_objects()


def wide_to_long(wide: pd.DataFrame) -> pd.DataFrame:
    """Melt a tasks x workers table into long labels, dropping missing cells.

    Parameters
    ----------
    wide : DataFrame of shape (N, M)
        Tasks in the index, workers in the columns, NaN where missing.

    Returns
    -------
    long : DataFrame with columns ``task``, ``worker``, ``label``
        One row per non-missing cell, ordered by task then worker.

    Examples
    --------
    >>> wide = pd.DataFrame({"a": ["cat", "cat"], "b": ["dog", None]}, index=[1, 2])
    >>> wide_to_long(wide)
       task worker label
    0     1      a   cat
    1     1      b   dog
    2     2      a   cat
    """
    if not isinstance(wide, pd.DataFrame):
        raise ValueError(f"expected a wide DataFrame (tasks x workers); got {type(wide).__name__}")
    if wide.shape[0] == 0 or wide.shape[1] == 0:
        raise ValueError(f"wide DataFrame has shape {wide.shape}; expected at least one task and worker")
    if not wide.index.is_unique or not wide.columns.is_unique:
        raise ValueError("wide DataFrame needs unique task ids (index) and worker ids (columns)")
    values = wide.to_numpy(dtype=object)
    t, w = np.nonzero(~pd.isna(values))
    if len(t) == 0:
        raise ValueError("wide DataFrame has no labels: every cell is missing")
    return pd.DataFrame({
        "task": wide.index.to_numpy()[t],
        "worker": wide.columns.to_numpy()[w],
        "label": pd.Series(values[t, w], dtype=object).infer_objects().to_numpy(),
    })


def long_to_reliability(long: pd.DataFrame, *, categories: Sequence[Any] | None = None,
                        duplicates: str = "error") -> Reliability:
    """Long labels to reliability data: float codes of shape (M workers, N tasks).

    Parameters
    ----------
    long : DataFrame with columns ``task``, ``worker``, ``label``
    categories : sequence, optional
        Category order (codes are positions in it). Default: sorted unique labels.
    duplicates : {"error", "first"}

    Returns
    -------
    Reliability
        ``data`` of shape (M, N) with NaN for missing, and the ``workers``, ``tasks``
        and ``categories`` the rows, columns and codes stand for.

    Examples
    --------
    >>> long = pd.DataFrame({"task": [1, 1, 2], "worker": ["a", "b", "a"],
    ...                      "label": ["cat", "dog", "cat"]})
    >>> rel = long_to_reliability(long)
    >>> rel.data
    array([[ 0.,  0.],
           [ 1., nan]])
    >>> list(rel.categories)
    ['cat', 'dog']
    """
    coded = _encode_long(long, categories, duplicates)
    data = coded.codes.astype(float)
    data[coded.codes < 0] = np.nan
    return Reliability(data, coded.workers, coded.tasks, coded.categories)


def reliability_to_long(data: Any, *, workers: Sequence[Any] | None = None,
                        tasks: Sequence[Any] | None = None,
                        categories: Sequence[Any] | None = None) -> pd.DataFrame:
    """Reliability data (M workers, N tasks) to long labels, dropping missing entries.

    Parameters
    ----------
    data : array_like of shape (M, N)
        Labels or category codes, NaN (or None) where missing.
    workers, tasks : sequence, optional
        Ids for the rows and columns. Default: ``0 .. M-1`` and ``0 .. N-1``.
    categories : sequence, optional
        If given, ``data`` holds integer codes and ``categories[code]`` is the label
        (the inverse of :func:`long_to_reliability`).

    Returns
    -------
    long : DataFrame with columns ``task``, ``worker``, ``label``, ordered by task then worker

    Examples
    --------
    >>> reliability_to_long([[0, 0], [1, np.nan]], workers=["a", "b"], tasks=[1, 2],
    ...                     categories=["cat", "dog"])
       task worker label
    0     1      a   cat
    1     1      b   dog
    2     2      a   cat
    """
    arr = np.asarray(data)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"reliability data has shape {arr.shape}; expected (M workers, N tasks), both >= 1")
    workers = pd.RangeIndex(arr.shape[0]) if workers is None else pd.Index(list(workers))
    tasks = pd.RangeIndex(arr.shape[1]) if tasks is None else pd.Index(list(tasks))
    if (len(workers), len(tasks)) != arr.shape:
        raise ValueError(
            f"reliability data has shape {arr.shape} but got {len(workers)} workers and "
            f"{len(tasks)} tasks; expected one id per row and per column"
        )
    present = ~pd.isna(arr)
    t, w = np.nonzero(present.T)
    labels = arr[w, t]
    if categories is not None:
        cats = np.asarray(list(categories), dtype=object)
        as_float = np.asarray(labels, dtype=float)
        as_int = as_float.astype(np.int64)
        if (as_int != as_float).any() or (as_int < 0).any() or (as_int >= len(cats)).any():
            raise ValueError(
                f"with categories of length {len(cats)}, data must hold integer codes in "
                f"0..{len(cats) - 1}; found values from {np.nanmin(labels)} to {np.nanmax(labels)}"
            )
        labels = pd.Series(cats[as_int]).infer_objects().to_numpy()
    return pd.DataFrame({"task": tasks.to_numpy()[t], "worker": workers.to_numpy()[w], "label": labels})


def to_counts(data: Any, *, categories: Sequence[Any] | None = None,
              duplicates: str = "error") -> pd.DataFrame:
    """Count, per task, how many workers chose each category (Fleiss' table).

    Parameters
    ----------
    data : DataFrame with columns ``task``, ``worker``, ``label``, or array_like of shape (M, N)
        Long labels, or reliability data (workers x tasks, NaN missing).
    categories : sequence, optional
        Category order, which may include categories nobody chose. Default: sorted
        unique labels.
    duplicates : {"error", "first"}
        For long input: what to do with repeated (task, worker) pairs.

    Returns
    -------
    counts : DataFrame of shape (N, K)
        Integer counts; index ``task``, columns ``label`` in category order.

    Examples
    --------
    >>> long = pd.DataFrame({"task": [1, 1, 2], "worker": ["a", "b", "a"],
    ...                      "label": ["cat", "dog", "cat"]})
    >>> to_counts(long)
    label  cat  dog
    task
    1        1    1
    2        1    0
    """
    coded = _encode(data, categories=categories, duplicates=duplicates)
    counts = _codes_to_counts(coded.codes, len(coded.categories))
    return pd.DataFrame(counts, index=coded.tasks, columns=coded.categories)
