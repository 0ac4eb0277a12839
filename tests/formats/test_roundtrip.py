"""write -> read gives the same Dataset, for every format, on generated Datasets."""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from labkit.formats import get_reader, get_writer
from tests.formats.helpers import assert_same, datasets

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def roundtrip(name: str, ds, *, target: str = "out", write_opts=None, read_opts=None):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / target
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # nothing in these Datasets should be lossy
            get_writer(name)(ds, path, **(write_opts or {}))
        return get_reader(name)(path, **(read_opts or {}))


@SETTINGS
@given(datasets(("box", "polygon", "mask", "point"), parts=True, scores=True, attributes=True))
def test_coco(ds):
    back = roundtrip("coco", ds, target="ann.json")
    assert_same(ds, back, attributes=True, classes=True)


@SETTINGS
@given(datasets(("ellipse", "polygon", "point"), attributes=True, subject=True, sizes=False))
def test_aihub(ds):
    back = roundtrip("aihub", ds)
    assert_same(ds, back, attributes=True, subject=True)


@SETTINGS
@given(datasets(("box", "polygon", "ellipse", "point", "mask", "label"), multi_point=False,
                workers=True, scores=True))
def test_labelstudio(ds):
    back = roundtrip("labelstudio", ds, target="export.json")
    # Label Studio keeps an image's size only in its region results
    for im in ds.images:
        if not any(o.image_key == im.key and o.kind != "label" for o in ds.objects):
            im.width = im.height = None
    assert_same(ds, back, tol=1e-9)


@SETTINGS
@given(datasets(("box", "polygon", "ellipse", "point", "mask", "label"), parts=True, attributes=True))
def test_cvat(ds):
    back = roundtrip("cvat", ds, target="annotations.xml")
    assert_same(ds, back, attributes=True, classes=True)


def _sizes(ds):
    return {im.key: (im.width, im.height) for im in ds.images}


@SETTINGS
@given(datasets(("box",), scores=True))
def test_yolo_detect(ds):
    back = roundtrip("yolo", ds, write_opts={"task": "detect", "scores": True},
                     read_opts={"image_sizes": _sizes(ds)})
    assert_same(ds, back, tol=1e-3, classes=True)


@SETTINGS
@given(datasets(("polygon",)))
def test_yolo_segment(ds):
    back = roundtrip("yolo", ds, write_opts={"task": "segment"}, read_opts={"image_sizes": _sizes(ds)})
    assert_same(ds, back, tol=1e-3, classes=True)
