"""A project whose images have one known object each, for labeling tests."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image


def scene(seed: int, h: int = 120, w: int = 160):
    """A textured background with one orange ellipse; returns (image, true mask)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 140, (h // 8, w // 8, 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    truth = np.zeros((h, w), np.uint8)
    cv2.ellipse(truth, (w // 2 + seed, h // 2), (w // 5, h // 5), 15, 0, 360, 1, -1)
    img[truth.astype(bool)] = (235, 140, 30)
    return img, truth.astype(bool)


@pytest.fixture
def label_project(tmp_path):
    """Project with 3 scene images, classes cat/dog, annotators ana/ben (+ viewer eve)."""
    from labkit import Project

    files, truths = [], {}
    for i in range(3):
        img, truth = scene(i)
        f = tmp_path / "imgs" / f"scene_{i}.png"
        f.parent.mkdir(exist_ok=True)
        Image.fromarray(img).save(f)
        files.append(f)
        truths[i + 1] = truth
    p = Project.create(tmp_path / "proj", classes=["cat", "dog"])
    for n in ("ana", "ben"):
        p.add_annotator(n)
    p.add_annotator("eve", role="viewer")
    p.add_images(files)
    p.truths = truths
    yield p
    p.close()


def box_of(mask, pad=4):
    ys, xs = np.nonzero(mask)
    return [xs.min() - pad, ys.min() - pad, xs.max() + 1 + pad, ys.max() + 1 + pad]


def iou(a, b):
    return float((a & b).sum() / max(1, (a | b).sum()))
