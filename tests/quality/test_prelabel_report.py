"""prelabel_report against a hand count on a small case, and its input checks."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from labkit.geometry import encode_rle
from labkit.quality import prelabel_report
from labkit.quality.prelabel import object_iou


def _mask(x0, y0, x1, y1, h=10, w=10):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return encode_rle(m)


def _case() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Eight proposals: four GrabCut masks and four pool labels, reviewed as written in each row."""
    a, b = _mask(0, 0, 4, 4), _mask(0, 0, 4, 2)  # b: half of a -> IoU 0.5
    rows = [  # state, source, label, kind, geometry, final_label, final_kind, final_geometry, review_s
        ("accepted", "grabcut", "cat", "mask", a, "cat", "mask", a, 2.0),
        ("edited", "grabcut", "cat", "mask", a, "cat", "mask", b, 8.0),        # IoU 0.5
        ("edited", "grabcut", "dog", "mask", a, "cat", "mask", a, 4.0),        # class only: IoU 1
        ("rejected", "grabcut", "dog", "mask", a, None, None, None, 1.0),
        ("accepted", "pool", "cat", "label", None, "cat", "label", None, 1.0),
        ("accepted", "pool", "dog", "label", None, "dog", "label", None, np.nan),  # no time recorded
        ("edited", "pool", "dog", "label", None, "cat", "label", None, 3.0),
        ("proposed", "pool", "cat", "label", None, None, None, None, np.nan),
    ]
    cols = ["state", "source", "label", "kind", "geometry", "final_label", "final_kind", "final_geometry", "review_s"]
    frame = pd.DataFrame(rows, columns=cols, index=pd.Index(range(11, 19), name="annotation"))
    drawn = pd.DataFrame({"source": ["human", "sam", "human", "simulated", "grabcut"],
                          "provenance": [{"time_spent_s": 10.0}, {"time_spent_s": 20.0},
                                         {"time_spent_s": 5.0, "replaces": 12},  # an edit, not from scratch
                                         {"time_spent_s": 99.0}, {}]})
    return frame, drawn


def test_numbers_equal_a_hand_count():
    frame, drawn = _case()
    r = prelabel_report(frame, drawn=drawn)
    g = r.by_source.loc["grabcut"]
    assert g[["proposals", "pending", "reviewed", "accepted", "edited", "rejected"]].tolist() == [4, 0, 4, 1, 2, 1]
    assert (g["acceptance_rate"], g["edit_rate"], g["rejection_rate"]) == (0.25, 0.5, 0.25)
    assert g["mean_edit_iou"] == pytest.approx(0.75)  # (0.5 + 1) / 2
    p = r.by_source.loc["pool"]
    assert p[["proposals", "pending", "reviewed", "accepted", "edited", "rejected"]].tolist() == [4, 1, 3, 2, 1, 0]
    assert p["acceptance_rate"] == pytest.approx(2 / 3) and math.isnan(p["mean_edit_iou"])
    c = r.by_class  # by the proposed class
    assert c.loc["cat", ["proposals", "accepted", "edited", "pending"]].tolist() == [4, 2, 1, 1]
    assert c.loc["dog", ["proposals", "accepted", "edited", "rejected"]].tolist() == [4, 1, 2, 1]
    assert c.loc["dog", "edit_rate"] == 0.5
    assert r.edits.index.tolist() == [12, 13, 17]
    assert r.edits["class_changed"].tolist() == [False, True, True]
    assert r.edits["iou"].iloc[:2].tolist() == [0.5, 1.0] and math.isnan(r.edits["iou"].iloc[2])
    s = r.seconds
    assert s.loc["review: accept", ["objects", "mean_s"]].tolist() == [2, 1.5]
    assert s.loc["review: edit", ["objects", "median_s"]].tolist() == [3, 4.0]
    assert s.loc["review: reject", "objects"] == 1
    assert s.loc["review", ["objects", "median_s"]].tolist() == [6, 2.5]
    assert s.loc["drawn from scratch", ["objects", "mean_s", "median_s"]].tolist() == [2, 15.0, 15.0]
    summary = r.summary()
    assert summary["proposals"] == 8 and summary["pending"] == 1 and summary["reviewed"] == 7
    assert summary["acceptance_rate"] == pytest.approx(3 / 7) and summary["edit_rate"] == pytest.approx(3 / 7)
    assert summary["mean_edit_iou"] == pytest.approx(0.75)
    assert summary["median_review_s"] == 2.5 and summary["median_drawn_s"] == 15.0


def test_object_iou_across_kinds():
    assert object_iou("box", {"x0": 0, "y0": 0, "x1": 4, "y1": 4}, "mask", _mask(0, 0, 4, 2)) == 0.5
    assert object_iou("box", [0, 0, 4, 4], "box", [0, 0, 4, 2]) == 0.5
    assert object_iou("polygon", [[0, 0], [4, 0], [4, 4], [0, 4]], "box", [0, 0, 4, 4]) == pytest.approx(1.0)
    assert math.isnan(object_iou("mask", _mask(0, 0, 4, 4), "label", None))


def test_empty_and_bad_input():
    frame, _ = _case()
    r = prelabel_report(frame.iloc[:0])
    assert r.by_source.empty and r.edits.empty and r.seconds.loc["review", "objects"] == 0
    with pytest.raises(ValueError, match=r"lacks columns \['review_s'\]; found"):
        prelabel_report(frame.drop(columns="review_s"))
    with pytest.raises(ValueError, match="state must be one of"):
        prelabel_report(frame.assign(state="maybe"))
    with pytest.raises(ValueError, match="project.proposals"):
        prelabel_report([1, 2])
    with pytest.raises(ValueError, match="drawn needs columns"):
        prelabel_report(frame, drawn=pd.DataFrame({"x": [1]}))
