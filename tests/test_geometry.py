"""Tests of labkit.geometry: cross-checks against pycocotools/shapely, properties, bad input."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from labkit.geometry import (
    KINDS,
    GeometryError,
    box_iou,
    box_to_mask,
    box_to_polygon,
    decode_rle,
    ellipse_half_extent,
    ellipse_iou,
    ellipse_to_mask,
    ellipse_to_polygon,
    encode_rle,
    geometry_bounds,
    geometry_to_mask,
    mask_iou,
    mask_to_box,
    mask_to_polygon,
    normalize_geometry,
    polygon_iou,
    polygon_to_mask,
    polygon_to_rle,
    rle_area,
    rle_to_box,
    to_coco_rle,
)
from labkit.geometry._coco import counts_from_string

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")
FAST = settings(max_examples=60, deadline=None)


def random_masks(rng, n, h=23, w=31):
    # blobs of varied density, plus an empty and a full mask
    out = [rng.random((h, w)) < rng.uniform(0.05, 0.95) for _ in range(n)]
    return out + [np.zeros((h, w), bool), np.ones((h, w), bool)]


def star_polygon(rng, cx, cy, radius, k=12):
    """A random simple (star-shaped) polygon around (cx, cy)."""
    t = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = radius * rng.uniform(0.4, 1.0, k)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def runs_of(mask):
    """Uncompressed COCO runs: column-major, starting with background."""
    flat = np.asarray(mask, bool).ravel(order="F")
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return ([0] + runs) if flat.size and flat[0] else runs


# --------------------------------------------------------------------- RLE
def test_rle_matches_pycocotools():
    rng = np.random.default_rng(0)
    for m in random_masks(rng, 20):
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        rle = encode_rle(m)
        assert rle == {"size": list(m.shape), "counts": ref["counts"].decode()}
        assert np.array_equal(decode_rle(rle), mask_utils.decode(ref).astype(bool))
        assert counts_from_string(rle["counts"]) == runs_of(m)
        assert rle_area(rle) == int(mask_utils.area(ref)) == int(m.sum())
        uncompressed = {"size": list(m.shape), "counts": runs_of(m)}
        assert to_coco_rle(uncompressed)["counts"] == ref["counts"]
        assert normalize_geometry("mask", uncompressed) == rle
        if m.any():
            x, y, w, h = mask_utils.toBbox(ref)
            assert rle_to_box(rle) == mask_to_box(m) == {"x0": x, "y0": y, "x1": x + w, "y1": y + h}


@FAST
@given(arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_rle_round_trip(mask):
    rle = encode_rle(mask)
    assert np.array_equal(decode_rle(rle), mask)
    assert normalize_geometry("mask", rle) == rle == normalize_geometry("mask", mask)
    json.dumps(rle)


def test_empty_mask_has_no_box():
    with pytest.raises(ValueError, match="empty"):
        rle_to_box(encode_rle(np.zeros((3, 3), bool)))
    with pytest.raises(ValueError, match="empty"):
        mask_to_box(np.zeros((3, 3), bool))


# -------------------------------------------------------------- conversions
def test_polygon_rasterisation_matches_pycocotools():
    rng = np.random.default_rng(1)
    for _ in range(20):
        rings = [star_polygon(rng, *rng.uniform(5, 45, 2), rng.uniform(2, 20)) for _ in range(2)]
        ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(
            [r.ravel().tolist() for r in rings], 50, 60))).astype(bool)
        geom = {"parts": [{"points": r} for r in rings]}
        assert np.array_equal(polygon_to_mask(geom, 50, 60), ref)
        assert decode_rle(polygon_to_rle(geom, 50, 60)).tolist() == ref.tolist()


def test_polygon_export_matches_coco_ann_to_mask():
    rng = np.random.default_rng(2)
    polys = [[star_polygon(rng, 30, 20, 15)], [star_polygon(rng, 10, 10, 6), star_polygon(rng, 40, 30, 9)]]
    coco = COCO()
    coco.dataset = {"images": [{"id": 1, "width": 60, "height": 40}], "categories": [{"id": 1, "name": "a"}],
                    "annotations": [{"id": k, "image_id": 1, "category_id": 1, "iscrowd": 0,
                                     "segmentation": [r.ravel().tolist() for r in rings]}
                                    for k, rings in enumerate(polys, 1)]}
    coco.createIndex()
    for k, rings in enumerate(polys, 1):
        geom = normalize_geometry("polygon", {"parts": [{"points": r} for r in rings]})
        assert np.array_equal(polygon_to_mask(geom, 40, 60), coco.annToMask(coco.anns[k]).astype(bool))


def test_polygon_holes_are_subtracted():
    square = [[0, 0], [8, 0], [8, 8], [0, 8]]
    m = polygon_to_mask({"points": square, "holes": [[[2, 2], [4, 2], [4, 4], [2, 4]]]}, 10, 10)
    expected = np.zeros((10, 10), bool)
    expected[:8, :8] = True
    expected[2:4, 2:4] = False
    assert np.array_equal(m, expected)


def test_mask_to_polygon_round_trip_is_exact():
    # the outline follows pixel edges, so area and rasterisation are exact
    rng = np.random.default_rng(3)
    for m in random_masks(rng, 40)[:-2] + [np.eye(6, dtype=bool)]:
        if not m.any():
            continue
        poly = mask_to_polygon(m)
        assert normalize_geometry("polygon", poly) == poly
        assert np.array_equal(polygon_to_mask(poly, *m.shape), m)
        assert polygon_iou([poly], [poly])[0, 0] == pytest.approx(1.0)
        area = sum(shapely.Polygon(p["points"], p.get("holes", [])).area
                   for p in poly.get("parts", [poly]))
        assert area == m.sum()


def test_mask_to_polygon_structure():
    m = np.zeros((12, 12), bool)
    m[1:9, 1:9] = True
    m[3:6, 3:6] = False       # a hole
    m[4, 4] = True            # an island inside the hole
    m[10:12, 10:12] = True    # a second component
    poly = mask_to_polygon(m)
    parts = sorted(poly["parts"], key=lambda p: len(p["points"]))
    assert len(parts) == 3
    assert [len(p.get("holes", [])) for p in parts] == [0, 0, 1]
    assert parts[2]["holes"] == [[[3.0, 3.0], [6.0, 3.0], [6.0, 6.0], [3.0, 6.0]]]
    with pytest.raises(ValueError, match="empty"):
        mask_to_polygon(np.zeros((4, 4), bool))


@pytest.mark.parametrize("radius, tolerance, min_iou", [(10, 1.0, 0.94), (20, 1.0, 0.96), (50, 1.0, 0.98),
                                                         (20, 2.0, 0.9), (5, 0.5, 0.99)])
def test_mask_to_polygon_simplified_round_trip(radius, tolerance, min_iou):
    size = 2 * radius + 10
    disc = cv2.circle(np.zeros((size, size), np.uint8), (size // 2, size // 2), radius, 1, -1).astype(bool)
    poly = mask_to_polygon(disc, tolerance=tolerance)
    assert len(poly["points"]) < len(mask_to_polygon(disc)["points"]) or tolerance < 1
    assert mask_iou([disc], [polygon_to_mask(poly, size, size)])[0, 0] >= min_iou


def test_box_conversions():
    box = {"x0": 2.0, "y0": 1.0, "x1": 5.0, "y1": 4.0}
    expected = np.zeros((6, 7), bool)
    expected[1:4, 2:5] = True
    assert np.array_equal(box_to_mask(box, 6, 7), expected)
    assert mask_to_box(expected) == box
    assert box_to_polygon(box)["points"] == [[2, 1], [5, 1], [5, 4], [2, 4]]
    assert not box_to_mask([2, 2, 2, 5], 6, 7).any()
    rng = np.random.default_rng(4)
    for _ in range(20):  # fractional boxes rasterise as pycocotools' frBbox
        x0, y0 = rng.uniform(0, 20, 2)
        w, h = rng.uniform(0.5, 15, 2)
        ref = mask_utils.decode(mask_utils.frPyObjects(np.array([[x0, y0, w, h]]), 30, 40)[0]).astype(bool)
        assert np.array_equal(box_to_mask([x0, y0, x0 + w, y0 + h], 30, 40), ref)


def test_ellipse_conventions():
    tall = {"cx": 20, "cy": 20, "rx": 12, "ry": 4, "angle": 90}
    x0, y0, x1, y1 = mask_to_box(ellipse_to_mask(tall, 40, 40)).values()
    assert (x1 - x0, y1 - y0) == (8, 24)
    assert geometry_bounds("ellipse", tall) == pytest.approx((16, 8, 24, 32))
    # angle rotates +x toward +y, as cv2.ellipse: compare with OpenCV's own drawing
    e = {"cx": 50, "cy": 40, "rx": 30, "ry": 10, "angle": 30}
    drawn = cv2.ellipse(np.zeros((80, 100), np.uint8), (50, 40), (30, 10), 30, 0, 360, 1, -1).astype(bool)
    mirrored = dict(e, angle=-30)
    assert mask_iou([drawn], [ellipse_to_mask(e, 80, 100)])[0, 0] > 0.9
    assert mask_iou([drawn], [ellipse_to_mask(mirrored, 80, 100)])[0, 0] < 0.5
    # the exact pixel-centre rasterisation agrees with the polygon one up to boundary pixels
    poly_mask = polygon_to_mask(ellipse_to_polygon(e, n=256), 80, 100)
    assert mask_iou([poly_mask], [ellipse_to_mask(e, 80, 100)])[0, 0] > 0.97
    pts = np.array(ellipse_to_polygon(e, n=2000)["points"])
    assert geometry_bounds("ellipse", e) == pytest.approx((*pts.min(0), *pts.max(0)), abs=1e-3)
    assert not ellipse_to_mask(dict(e, rx=0), 80, 100).any()


def test_geometry_to_mask_dispatch():
    m = np.zeros((5, 6), bool)
    m[1:3, 2:5] = True
    for kind, geom in [("box", [2, 1, 5, 3]), ("polygon", [[2, 1], [5, 1], [5, 3], [2, 3]]),
                       ("mask", encode_rle(m)), ("mask", m)]:
        assert np.array_equal(geometry_to_mask(kind, geom, 5, 6), m)
    assert geometry_to_mask("ellipse", {"cx": 3, "cy": 3, "rx": 1, "ry": 1, "angle": 0}, 5, 6).sum() == 4
    with pytest.raises(ValueError, match="no area"):
        geometry_to_mask("point", [1, 1], 5, 6)
    with pytest.raises(GeometryError, match=r"mask has size \[H, W\] = \[5, 6\] but the image is \[6, 6\]"):
        geometry_to_mask("mask", m, 6, 6)


def test_geometry_bounds():
    assert geometry_bounds("box", [1, 2, 3, 4]) == (1, 2, 3, 4)
    assert geometry_bounds("point", [[1, 5], [3, 2]]) == (1, 2, 3, 5)
    assert geometry_bounds("polygon", [0, 1, 4, 0, 2, 6]) == (0, 0, 4, 6)
    m = np.zeros((5, 6), bool)
    m[1:3, 2:5] = True
    assert geometry_bounds("mask", m) == (2, 1, 5, 3)
    with pytest.raises(ValueError, match="no geometry"):
        geometry_bounds("label", None)


def test_unvalidated_bounds_equal_validated_ones_and_measure_bad_shapes():
    rng = np.random.default_rng(4)
    for _ in range(50):
        xy = rng.uniform(-20, 80, (5, 2))
        cases = [("box", {"x0": xy[0, 0], "y0": xy[0, 1], "x1": xy[0, 0] + 3, "y1": xy[0, 1] + 7}),
                 ("polygon", {"parts": [{"points": xy[:3].tolist()}, {"points": xy[2:].tolist()}]}),
                 ("ellipse", {"cx": xy[0, 0], "cy": xy[0, 1], "rx": 5.0, "ry": 2.0, "angle": rng.uniform(-180, 180)}),
                 ("point", {"points": xy.tolist()})]
        for kind, g in cases:
            assert geometry_bounds(kind, g, validate=False) == pytest.approx(geometry_bounds(kind, g))
    # what validation rejects still has bounds: the integrity checks report it instead
    assert geometry_bounds("box", {"x0": 5, "y0": 5, "x1": 2, "y1": 9}, validate=False) == (5, 5, 2, 9)
    assert geometry_bounds("polygon", {"points": [[1, 1], [9, 4]]}, validate=False) == (1, 1, 9, 4)
    with pytest.raises(GeometryError, match="inverted"):
        geometry_bounds("box", {"x0": 5, "y0": 5, "x1": 2, "y1": 9})
    with pytest.raises(KeyError):
        geometry_bounds("box", {"x0": 1, "y0": 2}, validate=False)
    with pytest.raises(GeometryError, match="did you mean 'polygon'"):
        geometry_bounds("polygn", {}, validate=False)


def test_ellipse_half_extent_is_the_extent_of_the_outline():
    for rx, ry, angle in [(4, 2, 0), (4, 2, 90), (12, 4, 30), (5, 5, 17), (7, 1, -120)]:
        e = {"cx": 0, "cy": 0, "rx": rx, "ry": ry, "angle": angle}
        pts = np.array(ellipse_to_polygon(e, n=4000)["points"])
        assert ellipse_half_extent(rx, ry, angle) == pytest.approx(tuple(np.abs(pts).max(0)), abs=1e-3)
    assert ellipse_half_extent(4, 2) == (4, 2)


# ---------------------------------------------------------------------- IoU
def xyxy_to_xywh(b):
    b = np.asarray(b, float)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def random_boxes(rng, n):
    xy = rng.uniform(0, 50, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(0, 30, (n, 2))], axis=1)


def test_box_iou_matches_pycocotools_and_loop():
    rng = np.random.default_rng(5)
    a, b = random_boxes(rng, 30), random_boxes(rng, 20)
    a[3, 2] = a[3, 0]  # a zero-area box
    ours = box_iou(a, b)
    ref = mask_utils.iou(xyxy_to_xywh(a), xyxy_to_xywh(b), [0] * len(b))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    loop = np.zeros_like(ours)
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - iw * ih
            loop[i, j] = iw * ih / union if union > 0 else 0.0
    np.testing.assert_allclose(ours, loop, rtol=0, atol=1e-12)
    dicts = [normalize_geometry("box", x) for x in a]
    np.testing.assert_array_equal(box_iou(dicts, b), ours)


def test_mask_iou_matches_pycocotools():
    rng = np.random.default_rng(6)
    a, b = random_masks(rng, 12), random_masks(rng, 7)
    ours = mask_iou([encode_rle(m) for m in a], b)
    ref = mask_utils.iou([mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in a],
                         [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in b], [0] * len(b))
    np.testing.assert_array_equal(ours, ref)
    naive = np.array([[(p & q).sum() / (p | q).sum() if (p | q).any() else 0.0 for q in b] for p in a])
    np.testing.assert_allclose(ours, naive, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(mask_iou(np.stack(a), np.stack(b)), ours)
    with pytest.raises(GeometryError, match="different sizes"):
        mask_iou(a, [np.zeros((3, 3), bool)])


def test_polygon_iou_matches_shapely_and_masks():
    rng = np.random.default_rng(7)
    a = [star_polygon(rng, *rng.uniform(40, 160, 2), rng.uniform(20, 60)) for _ in range(15)]
    b = [star_polygon(rng, *rng.uniform(40, 160, 2), rng.uniform(20, 60)) for _ in range(10)]
    b.append({"points": [[0, 0], [200, 0], [200, 200], [0, 200]],
              "holes": [[[50, 50], [150, 50], [150, 150], [50, 150]]]})
    ours = polygon_iou(a, b)
    sa = [shapely.Polygon(p) for p in a]
    sb = [shapely.Polygon(p) if isinstance(p, np.ndarray) else shapely.Polygon(p["points"], p["holes"]) for p in b]
    loop = np.array([[p.intersection(q).area / p.union(q).area for q in sb] for p in sa])
    np.testing.assert_allclose(ours, loop, rtol=0, atol=1e-9)
    # rasterised IoU differs only by pixel-boundary effects: here at most 0.003 for
    # shapes of radius 20-60 px; allow 0.01
    masks_a = [polygon_to_mask(p, 200, 200) for p in a]
    masks_b = [polygon_to_mask(p, 200, 200) for p in b]
    assert np.abs(mask_iou(masks_a, masks_b) - ours).max() < 0.01


def test_polygon_iou_parts_and_self_intersection():
    left, right = [[0, 0], [1, 0], [1, 1], [0, 1]], [[2, 0], [3, 0], [3, 1], [2, 1]]
    both = {"parts": [{"points": left}, {"points": right}]}
    np.testing.assert_allclose(polygon_iou([both], [left, right, both]), [[0.5, 0.5, 1.0]])
    bowtie = [[0, 0], [2, 2], [2, 0], [0, 2]]  # two triangles of area 1
    np.testing.assert_allclose(polygon_iou([bowtie], [[[0, 0], [2, 0], [2, 2], [0, 2]]]), [[0.5]])
    # zero-area shapes are accepted and have IoU 0, even with themselves
    flat = [[0, 0], [1, 1], [2, 2]]
    np.testing.assert_array_equal(polygon_iou([flat], [flat, left]), [[0.0, 0.0]])
    dot = {"cx": 1, "cy": 1, "rx": 0, "ry": 0, "angle": 0}
    np.testing.assert_array_equal(ellipse_iou([dot], [dot]), [[0.0]])


def lens_area(r1, r2, d):
    """Area of the intersection of two circles at distance d (analytic)."""
    if d >= r1 + r2:
        return 0.0
    if d <= abs(r1 - r2):
        return math.pi * min(r1, r2) ** 2
    a1 = r1 ** 2 * math.acos((d ** 2 + r1 ** 2 - r2 ** 2) / (2 * d * r1))
    a2 = r2 ** 2 * math.acos((d ** 2 + r2 ** 2 - r1 ** 2) / (2 * d * r2))
    return a1 + a2 - 0.5 * math.sqrt((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2))


@pytest.mark.parametrize("n", [16, 64, 512])
def test_ellipse_iou_against_analytic_circles(n):
    eps = 1 - math.sin(2 * math.pi / n) / (2 * math.pi / n)
    bound = 2 * eps / (1 - 2 * eps)  # documented in ellipse_iou
    circle = {"cx": 50.0, "cy": 50.0, "rx": 20.0, "ry": 20.0, "angle": 0.0}
    others = [dict(circle, rx=r, ry=r, angle=a) for r, a in [(5, 0), (10, 7), (19.5, 45), (30, 3)]]
    expected = [min(o["rx"], 20) ** 2 / max(o["rx"], 20) ** 2 for o in others]  # concentric
    for r2, d in [(20, 10), (15, 25), (8, 20), (30, 40)]:
        others.append(dict(circle, cx=50.0 + d, rx=r2, ry=r2, angle=11.0))
        inter = lens_area(20, r2, d)
        expected.append(inter / (math.pi * (400 + r2 ** 2) - inter))
    err = np.abs(ellipse_iou([circle], others, n=n)[0] - expected)
    assert err.max() <= bound
    if n == 512:
        assert bound < 5.1e-5


def test_iou_of_empty_inputs():
    rng = np.random.default_rng(8)
    assert box_iou(np.zeros((0, 4)), random_boxes(rng, 3)).shape == (0, 3)
    assert box_iou([], []).shape == (0, 0)
    assert mask_iou(random_masks(rng, 2), []).shape == (4, 0)
    assert polygon_iou([], [[[0, 0], [1, 0], [1, 1]]]).shape == (0, 1)
    assert ellipse_iou([{"cx": 1, "cy": 1, "rx": 1, "ry": 1, "angle": 0}], []).shape == (1, 0)


box_st = st.tuples(st.floats(-100, 100), st.floats(-100, 100), st.floats(0.1, 50), st.floats(0.1, 50)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@FAST
@given(st.lists(box_st, min_size=1, max_size=8), st.lists(box_st, min_size=1, max_size=8),
       st.floats(-500, 500), st.floats(-500, 500))
def test_box_iou_properties(a, b, dx, dy):
    iou = box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    assert ((iou >= 0) & (iou <= 1)).all()
    np.testing.assert_allclose(iou, box_iou(b, a).T, atol=1e-12)
    np.testing.assert_allclose(np.diag(box_iou(a, a)), 1.0)
    shift = np.array([dx, dy, dx, dy])
    np.testing.assert_allclose(box_iou(np.array(a) + shift, np.array(b) + shift), iou, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.floats(-300, 300), st.floats(-300, 300))
def test_polygon_and_ellipse_iou_translation_invariant(seed, dx, dy):
    rng = np.random.default_rng(seed)
    a = [star_polygon(rng, *rng.uniform(0, 40, 2), rng.uniform(5, 20)) for _ in range(3)]
    b = [star_polygon(rng, *rng.uniform(0, 40, 2), rng.uniform(5, 20)) for _ in range(2)]
    shift = np.array([dx, dy])
    np.testing.assert_allclose(polygon_iou([p + shift for p in a], [p + shift for p in b]),
                               polygon_iou(a, b), atol=1e-6)
    e = [{"cx": x, "cy": y, "rx": rx, "ry": ry, "angle": ang} for x, y, rx, ry, ang in
         rng.uniform([0, 0, 1, 1, 0], [40, 40, 20, 20, 180], (3, 5))]
    moved = [dict(x, cx=x["cx"] + dx, cy=x["cy"] + dy) for x in e]
    np.testing.assert_allclose(ellipse_iou(moved, moved[:2], n=64), ellipse_iou(e, e[:2], n=64), atol=1e-6)


# ------------------------------------------------------------ normalisation
coord = st.floats(0, 100, allow_nan=False)
ring_st = st.lists(st.tuples(coord, coord), min_size=3, max_size=8)
geometry_st = {
    "label": st.none(),
    "box": st.one_of(box_st,
                     box_st.map(lambda b: dict(zip(("x0", "y0", "x1", "y1"), b))),
                     box_st.map(np.array)),
    "polygon": st.one_of(ring_st, ring_st.map(np.array), ring_st.map(lambda r: [v for p in r for v in p]),
                         st.builds(lambda p, h: {"points": p, "holes": h}, ring_st, st.lists(ring_st, max_size=2)),
                         st.lists(ring_st.map(lambda r: {"points": r}), min_size=1, max_size=3).map(
                             lambda parts: {"parts": parts})),
    "ellipse": st.builds(lambda v, key: {"cx": v[0], "cy": v[1], "rx": v[2], "ry": v[3], key: v[4]},
                         st.tuples(coord, coord, coord, coord, st.floats(-360, 360)),
                         st.sampled_from(["angle", "rotate", "rotation"])),
    "point": st.one_of(st.tuples(coord, coord).map(list), st.lists(st.tuples(coord, coord), min_size=1).map(np.array),
                       st.lists(st.tuples(coord, coord), min_size=1).map(lambda p: {"points": p})),
    "mask": st.one_of(arrays(np.bool_, st.tuples(st.integers(1, 9), st.integers(1, 9))),
                      arrays(np.bool_, st.tuples(st.integers(1, 9), st.integers(1, 9))).map(
                          lambda m: {"size": list(m.shape), "counts": runs_of(m)}),
                      arrays(np.bool_, st.tuples(st.integers(1, 9), st.integers(1, 9))).map(
                          lambda m: dict(encode_rle(m), counts=encode_rle(m)["counts"].encode()))),
}


def only_plain_types(value):
    if isinstance(value, dict):
        return all(isinstance(k, str) and only_plain_types(v) for k, v in value.items())
    if isinstance(value, list):
        return all(only_plain_types(v) for v in value)
    return value is None or type(value) in (float, int, str)


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data())
def test_normalize_is_idempotent_and_plain(kind, data):
    geom = data.draw(geometry_st[kind])
    canonical = normalize_geometry(kind, geom)
    assert normalize_geometry(kind, canonical) == canonical
    assert only_plain_types(canonical)
    assert json.loads(json.dumps(canonical)) == canonical
    if kind in ("box", "polygon", "ellipse", "point"):
        assert all(type(v) is float for v in _leaves(canonical)), canonical


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def test_normalize_shorthands():
    assert normalize_geometry("polygon", np.array([[0, 0], [1, 0], [1, 1]])) == {
        "points": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]}
    assert normalize_geometry("polygon", {"points": [[0, 0], [1, 0], [1, 1]], "holes": []}) == {
        "points": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]}
    assert normalize_geometry("point", [3, 4]) == {"points": [[3.0, 4.0]]}
    assert normalize_geometry("ellipse", {"cx": 1, "cy": 2, "rx": 3, "ry": 4, "rotate": 5})["angle"] == 5.0
    assert normalize_geometry("label", None) is None
    # representable-but-questionable geometry passes (the integrity checks report it)
    normalize_geometry("box", [1, 1, 1, 5])
    normalize_geometry("polygon", [[0, 0], [2, 2], [2, 0], [0, 2]])
    normalize_geometry("ellipse", {"cx": 1, "cy": 1, "rx": 0, "ry": 0, "angle": 0})
    normalize_geometry("mask", np.zeros((4, 4), bool), height=4, width=4)
    # within the 1 px tolerance
    normalize_geometry("box", [-1, -0.5, 101, 50], width=100, height=50)


@pytest.mark.parametrize("kind, geometry, options, match", [
    ("polygons", [1, 2, 3, 4], {}, r"unknown geometry kind 'polygons'.*did you mean 'polygon'"),
    ("label", [1, 2], {}, "label geometry must be None"),
    ("box", [1, 2, 3], {}, r"box has shape \(3,\); expected a dict"),
    ("box", {"x": 1, "y": 2, "w": 3, "h": 4}, {}, r"box has keys \['x', 'y', 'w', 'h'\]; expected"),
    ("box", [5, 2, 3, 4], {}, r"box is inverted \(x0=5, y0=2, x1=3, y1=4\)"),
    ("box", [0, 0, float("nan"), 4], {}, r"non-finite number \(nan\)"),
    ("box", [0, 0, "3", 4], {}, "box must be numbers"),
    ("box", [0, 0, 30, 40], {"width": 20, "height": 50}, r"box has x = 30, outside the image"),
    ("polygon", [[0, 0], [1, 1]], {}, r'polygon has 2 points; a polygon needs at least 3 \(use kind="point"'),
    ("polygon", [0, 0, 1, 1, 2], {}, r"expected \(P, 2\) pairs"),
    ("polygon", [[0, 0], [1, 0], [1, float("inf")]], {}, r"non-finite number \(inf\)"),
    ("polygon", {"points": [[0, 0], [4, 0], [4, 4]], "holes": [[[1, 1], [2, 2]]]}, {},
     "polygon hole 0 has 2 points; a polygon needs at least 3"),
    ("polygon", {"parts": []}, {}, "polygon parts must be a non-empty list"),
    ("polygon", [[0, 0], [10, 0], [10, -3]], {"width": 20, "height": 20}, "polygon has y = -3, outside"),
    ("ellipse", {"cx": 1, "cy": 1, "rx": -1, "ry": 2, "angle": 0}, {}, "ellipse has a negative radius"),
    ("ellipse", {"cx": 1, "cy": 1, "rx": 1, "ry": 2, "angle": 0, "rotate": 0}, {}, "expected at most one of"),
    ("ellipse", {"cx": 8, "cy": 10, "rx": 15, "ry": 2, "angle": 0}, {"width": 20, "height": 20},
     "ellipse has x = -7, outside"),
    ("point", [1, 2, 3], {}, r"point has shape \(3,\)"),
    ("point", np.zeros((0, 2)), {}, r"P >= 1"),
    ("point", [[5, 5], [25, 5]], {"width": 20, "height": 20}, "point has x = 25, outside"),
    ("mask", np.zeros((4, 5), bool), {"width": 4, "height": 5}, r"mask has size \[H, W\] = \[4, 5\]"),
    ("mask", np.full((2, 2), 255, np.uint8), {}, "values other than 0 and 1"),
    ("mask", {"size": [2, 2], "counts": [1, 2]}, {}, "cover 3 pixels but size"),
    ("mask", {"size": [2, 2], "counts": "\x7f\x7f"}, {}, "not a valid COCO compressed RLE"),
    ("mask", {"size": [2, -2], "counts": "04"}, {}, "two integers >= 0"),
    ("mask", {"size": [2, 2], "counts": [1, -1, 4]}, {}, "non-negative integers"),
])
def test_bad_input(kind, geometry, options, match):
    with pytest.raises(GeometryError, match=match):
        normalize_geometry(kind, geometry, **options)


def test_bad_input_to_iou():
    with pytest.raises(GeometryError, match=r"a\[1\] = \[3.0, 0.0, 1.0, 1.0\] is inverted"):
        box_iou([[0, 0, 1, 1], [3, 0, 1, 1]], [[0, 0, 1, 1]])
    with pytest.raises(GeometryError, match="single box dict"):
        box_iou({"x0": 0, "y0": 0, "x1": 1, "y1": 1}, [])
    with pytest.raises(ValueError, match="n is 2"):
        ellipse_to_polygon({"cx": 0, "cy": 0, "rx": 1, "ry": 1, "angle": 0}, n=2)
    with pytest.raises(ValueError, match="tolerance"):
        mask_to_polygon(np.ones((2, 2), bool), tolerance=-1)


def test_import_is_cheap():
    code = ("import sys, labkit.geometry; "
            "print(sorted(m for m in ('cv2', 'shapely', 'pycocotools', 'torch', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ellipse_angle_defaults_to_zero():
    assert normalize_geometry("ellipse", {"cx": 1, "cy": 1, "rx": 1, "ry": 2}) == \
        {"cx": 1.0, "cy": 1.0, "rx": 1.0, "ry": 2.0, "angle": 0.0}
