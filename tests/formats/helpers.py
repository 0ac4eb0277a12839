"""Hypothesis strategies for Datasets and a tolerant Dataset comparison."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from labkit.formats import Dataset, ImageRecord, ObjectRecord
from labkit.geometry import decode_rle, encode_rle

CLASSES = ["cat", "dog", "고양이", "bird"]
WORKERS = ["ana", "7", "ben@example.org"]


def _coord(limit: int):
    # quarter-pixel grid: exact in binary, so only the formats' own arithmetic adds error
    return st.integers(0, 4 * limit).map(lambda v: v / 4)


@st.composite
def geometry(draw, kind: str, w: int, h: int, *, parts: bool, multi_point: bool):
    if kind == "label":
        return None
    if kind == "box":
        xs = sorted(draw(st.lists(_coord(w), min_size=2, max_size=2)))
        ys = sorted(draw(st.lists(_coord(h), min_size=2, max_size=2)))
        return {"x0": xs[0], "y0": ys[0], "x1": xs[1], "y1": ys[1]}
    if kind == "point":
        n = draw(st.integers(1, 3)) if multi_point else 1
        return {"points": [[draw(_coord(w)), draw(_coord(h))] for _ in range(n)]}
    if kind == "ellipse":
        return {"cx": draw(_coord(w)), "cy": draw(_coord(h)), "rx": draw(_coord(w // 2)),
                "ry": draw(_coord(h // 2)), "angle": float(draw(st.integers(-179, 180)))}
    if kind == "polygon":
        rings = [[[draw(_coord(w)), draw(_coord(h))] for _ in range(draw(st.integers(3, 7)))]
                 for _ in range(draw(st.integers(1, 2)) if parts else 1)]
        return {"points": rings[0]} if len(rings) == 1 else {"parts": [{"points": r} for r in rings]}
    if kind == "mask":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        m = np.zeros((h, w), bool)
        for _ in range(rng.integers(0, 4)):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            m[y0:y0 + rng.integers(1, h), x0:x0 + rng.integers(1, w)] = True
        if rng.random() < 0.3:
            m ^= rng.random((h, w)) < 0.1
        return encode_rle(m)
    raise AssertionError(kind)


@st.composite
def datasets(draw, kinds: tuple[str, ...], *, parts: bool = False, multi_point: bool = True,
             workers: bool = False, scores: bool = False, attributes: bool = False,
             subject: bool = False, sizes: bool = True):
    n_images = draw(st.integers(1, 3))
    images, objects = [], []
    for i in range(n_images):
        w, h = draw(st.integers(4, 48)), draw(st.integers(4, 48))
        attrs = {}
        if attributes:
            attrs = draw(st.dictionaries(st.sampled_from(["inst", "image", "condition", "posture"]),
                                         st.sampled_from(["S", "rgb", "ir", "F"]), max_size=3))
        key = f"img_{i}_{draw(st.sampled_from(['a', 'b']))}.png"
        images.append(ImageRecord(key=key, width=w if sizes else None, height=h if sizes else None,
                                  attributes=attrs,
                                  subject=draw(st.sampled_from([None, "001", "042"])) if subject else None))
        for _ in range(draw(st.integers(0, 4))):
            kind = draw(st.sampled_from(kinds))
            objects.append(ObjectRecord(
                image_key=key, kind=kind, label=draw(st.sampled_from(CLASSES)),
                geometry=draw(geometry(kind, w, h, parts=parts, multi_point=multi_point)),
                worker=draw(st.sampled_from([None, *WORKERS])) if workers else None,
                score=draw(st.sampled_from([None, 0.25, 0.9])) if scores else None))
    used = {o.label for o in objects}
    classes = [c for c in CLASSES if c in used or draw(st.booleans())]
    return Dataset(images=images, objects=objects, classes=classes)


def close(a, b, tol: float) -> bool:
    """Structural equality with numbers within ``tol`` (absolute)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if "counts" in a and "counts" in b:
            return a["size"] == b["size"] and bool((decode_rle(a) == decode_rle(b)).all())
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=0, abs_tol=tol)
    return a == b


def assert_same(a: Dataset, b: Dataset, *, tol: float = 1e-9, sizes: bool = True,
                attributes: bool = False, subject: bool = False, classes: bool = False) -> None:
    """Images, objects (as multisets per image) and classes of ``b`` match ``a``."""
    assert [im.key for im in b.images] == [im.key for im in a.images]
    for x, y in zip(a.images, b.images):
        if sizes:
            assert (y.width, y.height) == (x.width, x.height), x.key
        if attributes:
            assert y.attributes == x.attributes, x.key
        if subject:
            assert y.subject == x.subject, x.key
    left = list(b.objects)
    for o in a.objects:
        match = next((p for p in left if p.image_key == o.image_key and p.kind == o.kind
                      and p.label == o.label and p.worker == o.worker
                      and close(p.score, o.score, 1e-9) and close(p.geometry, o.geometry, tol)), None)
        assert match is not None, f"no match for {o} among {left}"
        left.remove(match)
    assert not left, f"unexpected objects {left}"
    if classes:
        assert b.classes == a.classes
    else:
        assert {o.label for o in a.objects} <= set(b.classes)
