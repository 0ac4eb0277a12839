"""Round trips between the long, wide, reliability and counts layouts, and their errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.quality.layouts import (
    COLUMNS,
    Reliability,
    long_to_reliability,
    long_to_wide,
    reliability_to_long,
    to_counts,
    wide_to_long,
)

LABELS = {"str": ["cat", "dog", "고양이", "bird"], "int": [3, 0, 7, -2]}


@st.composite
def long_frames(draw):
    """Long labels with unique (task, worker) pairs, string or integer labels."""
    kind = draw(st.sampled_from(sorted(LABELS)))
    n_tasks = draw(st.integers(1, 8))
    n_workers = draw(st.integers(1, 5))
    cells = draw(st.lists(st.tuples(st.integers(0, n_tasks - 1), st.integers(0, n_workers - 1)),
                          min_size=1, max_size=n_tasks * n_workers, unique=True))
    labels = draw(st.lists(st.sampled_from(LABELS[kind]), min_size=len(cells), max_size=len(cells)))
    return pd.DataFrame({"task": [f"t{t}" for t, _ in cells], "worker": [f"w{w}" for _, w in cells],
                         "label": labels})


def canonical(long: pd.DataFrame) -> pd.DataFrame:
    return long.sort_values(["task", "worker"]).reset_index(drop=True)[list(COLUMNS)]


@settings(max_examples=40, deadline=None)
@given(long_frames())
def test_long_wide_long_round_trip(long):
    wide = long_to_wide(long)
    assert wide.shape == (long["task"].nunique(), long["worker"].nunique())
    assert int(wide.notna().to_numpy().sum()) == len(long)
    pd.testing.assert_frame_equal(canonical(wide_to_long(wide)), canonical(long), check_dtype=False)
    # and wide -> long -> wide
    pd.testing.assert_frame_equal(long_to_wide(wide_to_long(wide)), wide, check_dtype=False)


@settings(max_examples=40, deadline=None)
@given(long_frames())
def test_long_reliability_long_round_trip(long):
    rel = long_to_reliability(long)
    assert isinstance(rel, Reliability)
    assert rel.data.shape == (len(rel.workers), len(rel.tasks))
    assert list(rel.categories) == sorted(long["label"].unique())
    codes = rel.data[~np.isnan(rel.data)]
    assert ((codes >= 0) & (codes < len(rel.categories)) & (codes == np.round(codes))).all()
    back = reliability_to_long(rel.data, workers=rel.workers, tasks=rel.tasks, categories=rel.categories)
    pd.testing.assert_frame_equal(canonical(back), canonical(long), check_dtype=False)
    # the wide table is the reliability data transposed, with labels for codes
    wide = long_to_wide(long)
    assert (wide.isna().to_numpy() == np.isnan(rel.data.T)).all()


@settings(max_examples=40, deadline=None)
@given(long_frames())
def test_counts_agree_across_layouts(long):
    counts = to_counts(long)
    assert list(counts.columns) == sorted(long["label"].unique())
    assert (counts.sum(axis=1) == long.groupby("task").size().reindex(counts.index)).all()
    rel = long_to_reliability(long)
    from_codes = to_counts(rel.data)
    np.testing.assert_array_equal(from_codes.to_numpy(), counts.to_numpy())
    # reliability data holding the labels themselves (not codes) gives the same table
    labels = reliability_to_long(rel.data, workers=rel.workers, tasks=rel.tasks, categories=rel.categories)
    np.testing.assert_array_equal(to_counts(labels).to_numpy(), counts.to_numpy())
    per_task = long.groupby(["task", "label"]).size().unstack(fill_value=0)
    pd.testing.assert_frame_equal(counts, per_task.reindex(columns=counts.columns, fill_value=0),
                                  check_names=False, check_dtype=False)


def test_categories_fix_order_and_keep_unused_ones():
    long = pd.DataFrame({"task": [1, 1, 2], "worker": ["a", "b", "a"], "label": ["low", "high", "low"]})
    counts = to_counts(long, categories=["low", "mid", "high"])
    assert list(counts.columns) == ["low", "mid", "high"]
    np.testing.assert_array_equal(counts.to_numpy(), [[1, 0, 1], [1, 0, 0]])
    rel = long_to_reliability(long, categories=["low", "mid", "high"])
    np.testing.assert_array_equal(rel.data, [[0, 0], [2, np.nan]])


def test_reliability_array_of_labels():
    data = np.array([["a", "b", None], ["a", None, "c"]], dtype=object)
    counts = to_counts(data)
    assert list(counts.columns) == ["a", "b", "c"]
    np.testing.assert_array_equal(counts.to_numpy(), [[2, 0, 0], [0, 1, 0], [0, 0, 1]])
    long = reliability_to_long(data, workers=["x", "y"])
    assert long.to_dict("list") == {"task": [0, 0, 1, 2], "worker": ["x", "y", "x", "y"],
                                    "label": ["a", "a", "b", "c"]}


def test_duplicates_first_keeps_the_first_row():
    long = pd.DataFrame({"task": [1, 1, 1], "worker": ["a", "a", "b"], "label": ["x", "y", "y"]})
    wide = long_to_wide(long, duplicates="first")
    assert wide.loc[1, "a"] == "x"
    np.testing.assert_array_equal(to_counts(long, duplicates="first").to_numpy(), [[1, 1]])


# ------------------------------------------------------------------------------ errors
def test_missing_columns_are_named_with_the_columns_found():
    with pytest.raises(ValueError, match=r"missing columns \['label'\]; found \['task', 'worker', 'y'\]"):
        long_to_wide(pd.DataFrame({"task": [1], "worker": [1], "y": [1]}))
    with pytest.raises(ValueError, match="wide_to_long"):
        to_counts(pd.DataFrame({"a": [1], "b": [2]}))


def test_duplicate_pairs_error_names_them():
    long = pd.DataFrame({"task": [1, 1], "worker": ["a", "a"], "label": ["x", "y"]})
    with pytest.raises(ValueError, match=r"1 \(task, worker\) pairs have more than one label"
                                         r".*\(1, 'a'\).*duplicates='first'"):
        long_to_reliability(long)


def test_unknown_duplicates_option_suggests_close_match():
    long = pd.DataFrame({"task": [1], "worker": ["a"], "label": ["x"]})
    with pytest.raises(ValueError, match=r"unknown duplicates 'frist'.*did you mean 'first'"):
        to_counts(long, duplicates="frist")


def test_empty_and_missing_inputs():
    with pytest.raises(ValueError, match="empty"):
        to_counts(pd.DataFrame(columns=list(COLUMNS)))
    with pytest.raises(ValueError, match=r"1 rows have a missing label.*dropna"):
        to_counts(pd.DataFrame({"task": [1, 2], "worker": ["a", "a"], "label": ["x", None]}))
    with pytest.raises(ValueError, match="every entry is missing"):
        to_counts(np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match=r"shape \(3,\); expected a 2-D array"):
        to_counts(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="every cell is missing"):
        wide_to_long(pd.DataFrame({"a": [np.nan]}))
    with pytest.raises(ValueError, match="expected a long pandas DataFrame"):
        long_to_wide([[1, 2]])


def test_categories_errors():
    long = pd.DataFrame({"task": [1, 2], "worker": ["a", "a"], "label": ["x", "z"]})
    with pytest.raises(ValueError, match=r"1 labels are not in categories, e.g. \['z'\]"):
        to_counts(long, categories=["x", "y"])
    with pytest.raises(ValueError, match="must be unique"):
        to_counts(long, categories=["x", "x", "z"])


def test_reliability_to_long_errors():
    with pytest.raises(ValueError, match=r"shape \(2, 2\) but got 3 workers"):
        reliability_to_long(np.zeros((2, 2)), workers=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"integer codes in 0\.\.1"):
        reliability_to_long([[0, 2]], categories=["a", "b"])
