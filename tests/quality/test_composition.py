"""Composition tables and model-based validation (seed 004)."""
import numpy as np
import pandas as pd
import pytest

from labkit.quality import composition as C


@pytest.fixture
def images():
    attrs = [{"inst": "S", "image": "rgb", "posture": "S"}, {"inst": "S", "image": "ir", "posture": "D"},
             {"inst": "T", "image": "rgb"}, {"inst": "L", "image": "rgb", "posture": "S", "pose": [1, 2, 3]}]
    return pd.DataFrame({"split": ["train", "train", "val", "test"], "attributes": attrs}, index=[1, 2, 3, 4])


def test_attribute_shares_add_up_per_attribute(images):
    t = C.attribute_table(images)
    assert list(t.columns) == ["split", "inst", "image", "posture", "pose"]
    assert t.loc[3, "posture"] == C.MISSING and t.loc[4, "pose"] == "[1, 2, 3]"
    s = C.attribute_shares(t)
    assert s.groupby("attribute")["percent"].sum().round(9).eq(100).all()
    assert s.groupby("attribute")["images"].sum().eq(4).all()
    row = s[(s["attribute"] == "image") & (s["value"] == "rgb")].iloc[0]
    assert (row["images"], row["percent"]) == (3, 75.0)


def test_many_values_are_summarised():
    s = C.attribute_shares(pd.DataFrame({"id": [f"p{i}" for i in range(40)]}), max_values=30)
    assert s.values.tolist() == [["id", "(40 distinct values)", 40, 100.0]]


def test_coverage_matrix_and_gaps(images):
    t = C.attribute_table(images)
    labels = pd.Series(["eye", "eye", "iris", "eye", "iris"], index=[1, 2, 2, 3, 4])
    m = C.coverage_matrix(labels, t, "image", classes=["eye", "iris", "pupil"])
    assert m.loc["eye"].to_dict() == {"ir": 1, "rgb": 2} and m.loc["pupil"].sum() == 0
    gaps = C.coverage_gaps(m, 2)
    assert ("iris", "rgb", 1) in list(gaps.itertuples(index=False, name=None))
    assert len(gaps) == 5
    with pytest.raises(ValueError, match="no attribute 'weather'"):
        C.coverage_matrix(labels, t, "weather")


def test_validation_table_and_metrics():
    pred = pd.Series(["a", "b", "a", "a"], index=[1, 2, 3, 4])
    ref = pd.Series(["a", "b", "b", "a", "c"], index=[1, 2, 3, 4, 5])
    acc, n = C.accuracy(pred, ref)
    assert (acc, n) == (0.75, 4)
    m = np.zeros((10, 10), bool)
    m[:5] = True
    half = np.zeros((10, 10), bool)
    half[:5, :5] = True
    miou, k = C.mean_iou([(m, m), (half, m)])
    assert (miou, k) == (0.75, 2)
    t = C.validation_table([
        {"metric": "accuracy", "model": "pool", "split": "5-fold", "baseline": 0.8, "measured": acc, "n": n},
        {"metric": "gaze MAE", "model": "net", "split": "test", "baseline": 10.0, "measured": 4.6,
         "higher_is_better": False},
        {"metric": "mIoU", "baseline": 0.8, "measured": None, "note": "no masks"},
        {"metric": "recall", "measured": 0.7},
    ])
    assert t["status"].tolist() == ["below baseline", "meets baseline", "not evaluated", "no baseline"]
    with pytest.raises(ValueError, match="share no ids"):
        C.accuracy(pred, pd.Series(["a"], index=[9]))
