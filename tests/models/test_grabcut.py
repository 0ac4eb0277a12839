"""GrabCutSegmenter on synthetic images with a known object."""
from __future__ import annotations

import time

import numpy as np
import pytest

from tests.models.conftest import iou


def ellipse_scene(h=768, w=1024, seed=0):
    """A one-colour ellipse on a textured (noisy, striped) background; returns image, truth, box."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = (np.sin(xx / 7.0) * 40 + np.cos(yy / 11.0) * 40).astype(np.int16)
    bg = np.clip(110 + stripes[..., None] + rng.integers(-30, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    truth = np.zeros((h, w), np.uint8)
    centre, axes = (int(w * 0.45), int(h * 0.5)), (int(w * 0.22), int(h * 0.2))
    cv2.ellipse(truth, centre, axes, 25, 0, 360, 1, -1)
    image = bg.copy()
    image[truth.astype(bool)] = (230, 60, 40)
    ys, xs = np.nonzero(truth)
    box = [xs.min() - 12, ys.min() - 12, xs.max() + 12, ys.max() + 12]
    return image, truth.astype(bool), box


def test_segments_known_object():
    from labkit.models import load_segmenter

    image, truth, box = ellipse_scene()
    seg = load_segmenter("grabcut")
    seg.set_image(image)
    masks, scores = seg.predict(box=box)
    assert masks.shape == (1, 768, 1024) and scores.tolist() == [1.0]
    assert iou(masks[0], truth) >= 0.9, iou(masks[0], truth)
    assert not masks[0][:, : int(box[0])].any()  # nothing outside the box


def test_fast_enough_on_a_1024_image():
    from labkit.models import load_segmenter

    image, _, box = ellipse_scene(seed=1)
    seg = load_segmenter("grabcut")
    seg.set_image(image)
    seg.predict(box=box)  # warm-up
    times = []
    for _ in range(3):
        t = time.perf_counter()
        seg.predict(box=box)
        times.append(time.perf_counter() - t)
    assert min(times) < 0.5, times


def test_points_are_seeds_and_results_reproducible():
    from labkit.models import load_segmenter

    image, truth, box = ellipse_scene(384, 512, seed=2)
    seg = load_segmenter("grabcut")
    seg.set_image(image)
    cx, cy = np.argwhere(truth).mean(0)[::-1]
    a, _ = seg.predict(box=box, points=[[cx, cy], [box[0] + 3, box[1] + 3]], point_labels=[1, 0])
    b, _ = seg.predict(box=box, points=[[cx, cy], [box[0] + 3, box[1] + 3]], point_labels=[1, 0])
    np.testing.assert_array_equal(a, b)
    assert a[0, int(cy), int(cx)] and not a[0, int(box[1]) + 3, int(box[0]) + 3]
    assert iou(a[0], truth) >= 0.9


def test_needs_a_box():
    from labkit.models import load_segmenter

    seg = load_segmenter("grabcut")
    seg.set_image(np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ValueError, match="GrabCut needs a box"):
        seg.predict(points=[[5, 5]], point_labels=[1])
    assert not seg.predict(box=[3, 3, 4, 4])[0].any()  # a sub-2-pixel box is empty, not an error
    assert seg.predict(box=[0, 0, 20, 20])[0].shape == (1, 20, 20)  # box = whole image still runs
