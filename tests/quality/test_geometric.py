"""Geometric agreement: Hungarian matching on hand cases, every kind against brute-force
loops, the ``seen`` convention, summaries and error messages."""
from __future__ import annotations

from itertools import permutations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.geometry import box_iou, ellipse_iou, encode_rle, mask_iou, polygon_iou
from labkit.quality.geometric import geometric_agreement, match_boxes, summarize_agreement

FAST = settings(max_examples=30, deadline=None)


def test_hungarian_finds_more_matches_than_greedy():
    a = [[0, 0, 10, 10], [5, 0, 15, 10]]
    b = [[2, 0, 12, 10], [-3, 0, 7, 10]]
    # greedy by IoU takes (a0, b0) = 0.667 first and leaves a1-b1 at 0.11: one match
    m = match_boxes(a, b, iou_threshold=0.5)
    assert sorted(zip(m.a.tolist(), m.b.tolist())) == [(0, 1), (1, 0)]
    np.testing.assert_allclose(m.similarity, [7 / 13, 7 / 13])


def test_match_boxes_threshold_and_empty():
    m = match_boxes([[0, 0, 10, 10]], [[5, 0, 15, 10]], iou_threshold=0.34)
    assert m.a.tolist() == [] and m.b.tolist() == []  # IoU = 1/3
    m = match_boxes([[0, 0, 10, 10]], [[5, 0, 15, 10]], iou_threshold=0.3)
    assert m.a.tolist() == [0]
    m = match_boxes(np.zeros((0, 4)), [[0, 0, 1, 1]])
    assert len(m.a) == 0
    with pytest.raises(ValueError, match=r"iou_threshold must be in \[0, 1\]; got 1.5"):
        match_boxes([[0, 0, 1, 1]], [[0, 0, 1, 1]], iou_threshold=1.5)


def brute_force(sim: np.ndarray, valid: np.ndarray) -> tuple[int, float]:
    """Most valid pairs, then largest total similarity (or smallest total distance)."""
    n, m = sim.shape
    best = (0, 0.0)
    small, large = (n, m) if n <= m else (m, n)
    s, v = (sim, valid) if n <= m else (sim.T, valid.T)
    for perm in permutations(range(large), small):
        pairs = [(i, j) for i, j in enumerate(perm) if v[i, j]]
        score = (len(pairs), sum(s[i, j] for i, j in pairs))
        if score[0] > best[0] or (score[0] == best[0] and score[1] > best[1] + 1e-12):
            best = score
    return best


def random_boxes(rng, n):
    xy = rng.uniform(0, 40, (n, 2))
    wh = rng.uniform(5, 20, (n, 2))
    return np.hstack([xy, xy + wh])


@FAST
@given(st.integers(0, 2**32 - 1))
def test_box_agreement_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    rows = []
    for task in range(3):
        base = random_boxes(rng, rng.integers(1, 4))
        for w in ["a", "b", "c"]:
            keep = rng.random(len(base)) < 0.8
            boxes = base[keep] + rng.normal(0, 2, (int(keep.sum()), 4))
            boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
            extra = random_boxes(rng, rng.integers(0, 2))
            for b in np.vstack([boxes, extra]):
                rows.append({"task": task, "worker": w, "label": "cat",
                             "geometry": dict(zip(["x0", "y0", "x1", "y1"], b))})
    df = pd.DataFrame(rows)
    out = geometric_agreement(df, kind="box", iou_threshold=0.3)
    for r in out.itertuples():
        g = df[df["task"] == r.task]
        ba = np.array([list(x.values()) for x in g[g.worker == r.worker_a].geometry]).reshape(-1, 4)
        bb = np.array([list(x.values()) for x in g[g.worker == r.worker_b].geometry]).reshape(-1, 4)
        iou = box_iou(ba, bb)
        n_match, total = brute_force(iou, (iou >= 0.3) & (iou > 0))
        assert (r.n_a, r.n_b, r.matched) == (len(ba), len(bb), n_match)
        assert r.f1 == pytest.approx(2 * n_match / (len(ba) + len(bb)))
        if n_match:
            assert r.mean_iou == pytest.approx(total / n_match)
        else:
            assert np.isnan(r.mean_iou)


def test_masks_instance_and_pixel_agreement():
    h, w = 20, 20
    m1, m2, n1 = (np.zeros((h, w), bool) for _ in range(3))
    m1[2:8, 2:8] = m2[12:18, 12:18] = n1[3:8, 2:8] = True
    df = pd.DataFrame({"task": 1, "label": "cell", "kind": "mask", "worker": ["a", "a", "b"],
                       "geometry": [encode_rle(m1), encode_rle(m2), encode_rle(n1)]})
    r = geometric_agreement(df).iloc[0]
    iou = mask_iou([m1], [n1])[0, 0]
    assert (r.n_a, r.n_b, r.matched, r.unmatched) == (2, 1, 1, 1)
    assert r.mean_iou == pytest.approx(iou) and r.mean_dice == pytest.approx(2 * iou / (1 + iou))
    union = m1 | m2
    pixel = (union & n1).sum() / (union | n1).sum()
    assert r.pixel_iou == pytest.approx(pixel) and r.pixel_dice == pytest.approx(2 * pixel / (1 + pixel))


def test_polygons_and_ellipses_use_exact_iou():
    p1 = [[0, 0], [10, 0], [10, 10], [0, 10]]
    p2 = [[2, 0], [12, 0], [12, 10], [2, 10]]
    df = pd.DataFrame({"task": 1, "label": "x", "worker": ["a", "b"], "geometry": [{"points": p1}, {"points": p2}]})
    r = geometric_agreement(df, kind="polygon").iloc[0]
    assert r.mean_iou == pytest.approx(polygon_iou([p1], [p2])[0, 0])
    e1 = {"cx": 10, "cy": 10, "rx": 5, "ry": 3, "angle": 0}
    e2 = {"cx": 11, "cy": 10, "rx": 5, "ry": 3, "angle": 10}
    df = pd.DataFrame({"task": 1, "label": "x", "worker": ["a", "b"], "geometry": [e1, e2]})
    r = geometric_agreement(df, kind="ellipse").iloc[0]
    assert r.mean_iou == pytest.approx(ellipse_iou([e1], [e2])[0, 0])


def test_points_normalised_by_object_size():
    df = pd.DataFrame({"task": 1, "label": "nucleus", "worker": ["a", "a", "b", "b"],
                       "geometry": [{"points": [[10, 10]]}, {"points": [[50, 50]]},
                                    {"points": [[12, 10]]}, {"points": [[80, 80]]}],
                       "size": [10.0, 10.0, 10.0, 10.0]})
    r = geometric_agreement(df, kind="point", scale="size").iloc[0]
    assert (r.matched, r.unmatched) == (1, 2) and r.mean_distance == pytest.approx(0.2)
    r = geometric_agreement(df, kind="point", scale=2.0, max_distance=1.0).iloc[0]
    assert r.matched == 1 and r.mean_distance == pytest.approx(1.0)
    with pytest.raises(ValueError, match="single-point annotations have no size"):
        geometric_agreement(df, kind="point")
    # keypoint sets: size from their bounding box
    kp = pd.DataFrame({"task": 1, "label": "hand", "worker": ["a", "b"],
                       "geometry": [{"points": [[0, 0], [10, 10]]}, {"points": [[1, 0], [11, 10]]}]})
    r = geometric_agreement(kp, kind="point").iloc[0]
    assert r.mean_distance == pytest.approx(0.1)


def test_class_separation_and_seen_workers():
    df = pd.DataFrame({"task": [1, 1, 1], "label": ["cat", "dog", "cat"], "worker": ["a", "b", "b"],
                       "x0": [0, 0, 50], "y0": [0, 0, 50], "x1": [10, 10, 60], "y1": [10, 10, 60]})
    out = geometric_agreement(df, kind="box").set_index("label")
    assert out.loc["cat", "matched"] == 0 and out.loc["dog", "n_a"] == 0 and out.loc["dog", "n_b"] == 1
    seen = pd.DataFrame({"task": [1], "worker": ["c"]})
    out = geometric_agreement(df, kind="box", seen=seen)
    assert set(zip(out.worker_a, out.worker_b)) == {("a", "b"), ("a", "c"), ("b", "c")}
    ac = out[(out.label == "cat") & (out.worker_b == "c") & (out.worker_a == "a")].iloc[0]
    assert (ac.n_a, ac.n_b, ac.f1) == (1, 0, 0.0)


def test_summaries_pool_counts():
    df = pd.DataFrame({"task": [1, 1, 2, 2, 2], "label": "cat", "worker": ["a", "b", "a", "b", "c"],
                       "x0": [0, 1, 0, 0, 30], "y0": 0, "x1": [10, 10, 10, 10, 40], "y1": 10})
    pairs = geometric_agreement(df, kind="box")
    by_task = summarize_agreement(pairs, by="task")
    assert by_task.loc[1, "f1"] == 1.0 and by_task.loc[1, "mean_iou"] == pytest.approx(0.9)
    by_worker = summarize_agreement(pairs, by="worker")
    assert by_worker.loc["c", "matched"] == 0 and by_worker.loc["c", "n"] == 2
    assert by_worker.loc["a", "f1"] == pytest.approx(2 * 2 / (3 + 3))
    by_pair = summarize_agreement(pairs, by="pair")
    assert by_pair.loc[("a", "b"), "mean_iou"] == pytest.approx((0.9 + 1.0) / 2)
    with pytest.raises(ValueError, match="unknown by 'image'"):
        summarize_agreement(pairs, by="image")


def test_errors_name_what_is_missing():
    with pytest.raises(ValueError, match=r"missing columns \['geometry'\]"):
        geometric_agreement(pd.DataFrame({"task": [1], "worker": ["a"], "label": ["x"]}), kind="mask")
    mixed = pd.DataFrame({"task": [1, 1], "worker": ["a", "b"], "label": ["x", "x"], "kind": ["box", "mask"],
                          "geometry": [None, None]})
    with pytest.raises(ValueError, match=r"holds kinds \['box', 'mask'\]; pass kind="):
        geometric_agreement(mixed)
    with pytest.raises(ValueError, match="unknown kind 'boxes'"):
        geometric_agreement(mixed, kind="boxes")
