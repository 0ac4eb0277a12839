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

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ._coding import COLUMNS, codes_to_counts, encode, encode_long

__all__ = [
    "COLUMNS",
    "Reliability",
    "long_to_wide",
    "wide_to_long",
    "long_to_reliability",
    "reliability_to_long",
    "to_counts",
]



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
    coded = encode_long(long, None, duplicates)
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
    coded = encode_long(long, categories, duplicates)
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
    worker_ids = pd.RangeIndex(arr.shape[0]) if workers is None else pd.Index(list(workers))
    task_ids = pd.RangeIndex(arr.shape[1]) if tasks is None else pd.Index(list(tasks))
    if (len(worker_ids), len(task_ids)) != arr.shape:
        raise ValueError(
            f"reliability data has shape {arr.shape} but got {len(worker_ids)} workers and "
            f"{len(task_ids)} tasks; expected one id per row and per column"
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
    return pd.DataFrame({"task": task_ids.to_numpy()[t], "worker": worker_ids.to_numpy()[w], "label": labels})


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
    coded = encode(data, categories=categories, duplicates=duplicates)
    counts = codes_to_counts(coded.codes, len(coded.categories))
    return pd.DataFrame(counts, index=coded.tasks, columns=coded.categories)
