"""Box fusion and mask consensus: hand cases, STAPLE on raters of known quality, and
crowd-kit's segmentation majority vote as a peer."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.geometry import decode_rle, encode_rle
from labkit.quality.aggregate import cluster_boxes, fuse_boxes, fuse_masks, mask_majority, staple

FAST = settings(max_examples=30, deadline=None)


# --------------------------------------------------------------------------- boxes
def test_fuse_boxes_hand_case():
    df = pd.DataFrame({
        "task": 7, "label": "car",
        "worker": ["a", "a", "b", "b", "c", "c"],
        "x0": [0, 100, 2, 104, 1, 300], "y0": [0, 100, 0, 100, 2, 300],
        "x1": [10, 120, 12, 124, 11, 310], "y1": [10, 120, 10, 120, 12, 310],
        "score": [1.0, 1.0, 1.0, 3.0, 2.0, 1.0]}, index=[11, 12, 13, 14, 15, 16])
    out = fuse_boxes(df, quorum=2)
    assert len(out) == 2  # c's stray box at 300 has one annotator: dropped
    first = out.iloc[0]
    expected = [(0 + 2 + 2 * 1) / 4, (0 + 0 + 2 * 2) / 4, (10 + 12 + 2 * 11) / 4, (10 + 10 + 2 * 12) / 4]
    np.testing.assert_allclose(first[["x0", "y0", "x1", "y1"]].to_numpy(float), expected)
    assert first.members == (11, 13, 15) and first.workers == ("a", "b", "c") and first.support == 3
    assert first.score == pytest.approx(4 / 3)
    second = out.iloc[1]
    np.testing.assert_allclose(second[["x0", "x1"]].to_numpy(float), [(100 + 3 * 104) / 4, (120 + 3 * 124) / 4])
    assert second.members == (12, 14)
    # equal weights; a share quorum of 1.0 needs all three annotators
    out = fuse_boxes(df, weights=None, quorum=1.0)
    assert len(out) == 1 and out.iloc[0].x0 == pytest.approx(1.0) and out.iloc[0].score == 1.0


def test_fuse_boxes_per_class_and_geometry_dicts():
    df = pd.DataFrame({"task": 1, "label": ["cat", "dog", "cat", "dog"], "worker": ["a", "a", "b", "b"],
                       "geometry": [{"x0": 0, "y0": 0, "x1": 10, "y1": 10}] * 4})
    out = fuse_boxes(df, quorum=2)
    assert out["label"].tolist() == ["cat", "dog"] and (out["support"] == 2).all()


def test_fuse_boxes_errors():
    df = pd.DataFrame({"task": 1, "label": "x", "worker": ["a"], "x0": [0], "y0": [0], "x1": [1], "y1": [1]})
    with pytest.raises(ValueError, match="an int quorum counts annotators and must be >= 1"):
        fuse_boxes(df, quorum=0)
    with pytest.raises(ValueError, match=r"a float quorum is a share of annotators in \(0, 1\]"):
        fuse_boxes(df, quorum=1.5)
    with pytest.raises(ValueError, match="weights must be 'score' or None"):
        fuse_boxes(df, weights="area")


@FAST
@given(st.integers(0, 2**32 - 1))
def test_clusters_hold_at_most_one_box_per_annotator(seed):
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 15)
    xy = rng.uniform(0, 30, (n, 2))
    boxes = np.hstack([xy, xy + rng.uniform(3, 15, (n, 2))])
    workers = rng.choice(["a", "b", "c"], n)
    cl = cluster_boxes(boxes, workers, iou_threshold=0.3)
    assert (cl >= 0).all()
    pairs = pd.DataFrame({"c": cl, "w": workers})
    assert not pairs.duplicated().any()
    assert set(cl) == set(range(cl.max() + 1))


# --------------------------------------------------------------------------- masks
def noisy_raters(rng, truth, rates):
    """Masks from raters with known (sensitivity, specificity)."""
    out = []
    for sens, spec in rates:
        u = rng.random(truth.shape)
        out.append(np.where(truth, u < sens, u > spec))
    return np.stack(out)


def disk(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_staple_beats_majority_with_bad_raters_and_recovers_their_rates():
    rng = np.random.default_rng(0)
    truth = disk(96, 96, 48, 40, 25) | disk(96, 96, 20, 75, 12)
    rates = [(0.97, 0.99), (0.95, 0.98), (0.6, 0.75), (0.55, 0.8), (0.6, 0.7)]
    masks = noisy_raters(rng, truth, rates)
    res = staple(masks)
    mv = mask_majority(masks)
    dice = lambda m: 2 * (m & truth).sum() / (m.sum() + truth.sum())  # noqa: E731
    assert dice(res.mask) > dice(mv) + 0.05
    assert dice(res.mask) > 0.97
    np.testing.assert_allclose(res.sensitivity, [r[0] for r in rates], atol=0.04)
    np.testing.assert_allclose(res.specificity, [r[1] for r in rates], atol=0.03)
    assert res.probability.shape == truth.shape and 0 < res.prior < 1


def staple_per_pixel(d, f, iters, p0=0.99, q0=0.99):
    """Warfield et al.'s EM written pixel by pixel (no pattern compression)."""
    r = d.shape[0]
    d = d.reshape(r, -1).astype(float)
    p, q = np.full(r, p0), np.full(r, q0)
    for _ in range(iters):
        a = f * np.prod(np.where(d == 1, p[:, None], 1 - p[:, None]), axis=0)
        b = (1 - f) * np.prod(np.where(d == 0, q[:, None], 1 - q[:, None]), axis=0)
        w = a / (a + b)
        p = (d * w).sum(1) / w.sum()
        q = ((1 - d) * (1 - w)).sum(1) / (1 - w).sum()
    return w, p, q


def test_staple_equals_pixelwise_em():
    rng = np.random.default_rng(1)
    truth = disk(30, 40, 15, 20, 9)
    masks = noisy_raters(rng, truth, [(0.9, 0.95), (0.8, 0.9), (0.7, 0.99)])
    res = staple(masks, max_iter=7, tol=0.0)
    w, p, q = staple_per_pixel(masks, masks.mean(), 7)
    assert res.n_iter == 7
    np.testing.assert_allclose(res.probability.ravel(), w, atol=1e-9)
    np.testing.assert_allclose(res.sensitivity, p, atol=1e-9)
    np.testing.assert_allclose(res.specificity, q, atol=1e-9)


def test_staple_inputs_rle_dict_and_degenerate():
    truth = disk(20, 20, 10, 10, 5)
    res = staple({"ann": encode_rle(truth), "ben": truth, "cy": truth})
    assert res.sensitivity.index.tolist() == ["ann", "ben", "cy"] and (res.mask == truth).all()
    empty = staple(np.zeros((2, 5, 5), bool))
    assert not empty.mask.any() and empty.n_iter == 0
    with pytest.raises(ValueError, match=r"masks have shapes \[\(4, 4\), \(5, 5\)\]"):
        staple([np.zeros((4, 4)), np.zeros((5, 5))])
    with pytest.raises(ValueError, match="prior must be strictly between 0 and 1"):
        staple([truth, truth], prior=1.0)


def test_mask_majority_matches_crowdkit_and_weights():
    from crowdkit.aggregation import SegmentationMajorityVote

    rng = np.random.default_rng(2)
    for r in (2, 3, 4):
        masks = rng.random((r, 12, 9)) < 0.5
        df = pd.DataFrame({"task": 0, "worker": range(r), "segmentation": list(masks)})
        ck = SegmentationMajorityVote().fit_predict(df).iloc[0]
        assert (mask_majority(masks) == ck).all()
    masks = np.stack([np.eye(3, dtype=bool), np.zeros((3, 3), bool), np.zeros((3, 3), bool)])
    assert not mask_majority(masks).any()
    assert (mask_majority(masks, weights=[3, 1, 1]) == np.eye(3, dtype=bool)).all()
    with pytest.raises(ValueError, match="weights must be 3 finite non-negative numbers"):
        mask_majority(masks, weights=[1, 1])


def test_fuse_masks_by_object_and_by_class():
    h, w = 40, 40
    cell1, cell2 = disk(h, w, 10, 10, 6), disk(h, w, 28, 28, 7)
    shifted = np.roll(cell1, 1, axis=1)
    stray = disk(h, w, 32, 6, 3)
    rows = [("a", cell1), ("a", cell2), ("b", shifted), ("b", cell2), ("c", cell1), ("c", stray)]
    df = pd.DataFrame({"task": 1, "label": "cell", "worker": [r[0] for r in rows],
                       "geometry": [encode_rle(r[1]) for r in rows]}, index=range(100, 106))
    out = fuse_masks(df, method="staple", by="object", quorum=2)
    assert len(out) == 2  # the stray blob (one annotator) is dropped
    masks = [decode_rle(g) for g in out["geometry"]]
    assert (masks[0] == cell1).mean() > 0.98 and (masks[1] == cell2).mean() > 0.98
    assert out.iloc[0].members == (100, 102, 104) and out.iloc[1].workers == ("a", "b")
    assert set(out.iloc[1].sensitivity) == {"a", "b", "c"}  # c saw the image and drew nothing there
    by_class = fuse_masks(df, method="majority", by="class")
    assert len(by_class) == 1
    union = decode_rle(by_class.iloc[0].geometry)
    assert (union == (cell1 | cell2)).mean() > 0.98 and not union[stray & ~cell1 & ~cell2].any()
