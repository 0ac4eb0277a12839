"""The registry, and one smoke test per registered format (registry-driven)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from labkit.formats import FORMATS, Dataset, ImageRecord, ObjectRecord, get_reader, get_writer, list_formats


def test_list_formats():
    assert list_formats() == ["aihub", "coco", "cvat", "labelstudio", "yolo"]


@pytest.mark.parametrize("getter", [get_reader, get_writer])
def test_unknown_name_lists_valid_names_and_close_matches(getter):
    with pytest.raises(ValueError, match=r"unknown format 'ccoco'; valid formats: aihub, coco, cvat, "
                                         r"labelstudio, yolo; did you mean 'coco'\?"):
        getter("ccoco")
    with pytest.raises(ValueError, match=r"unknown format 'pascal_voc'; valid formats: [a-z, ]+$"):
        getter("pascal_voc")


def test_missing_side_is_explained(monkeypatch):
    monkeypatch.setitem(FORMATS, "readonly", (FORMATS["coco"][0], None))
    with pytest.raises(ValueError, match="format 'readonly' cannot be written; formats with a writer: aihub"):
        get_writer("readonly")


@pytest.mark.parametrize("name", list_formats())
def test_smoke(name, tmp_path):
    ds = Dataset([ImageRecord("a.png", 40, 30)],
                 [ObjectRecord("a.png", "polygon", "cat", {"points": [[1.0, 1.0], [20.0, 2.0], [10.0, 25.0]]})],
                 ["cat"])
    target = tmp_path / {"coco": "a.json", "labelstudio": "a.json", "cvat": "a.xml"}.get(name, "out")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        get_writer(name)(ds, target, **({"task": "segment"} if name == "yolo" else {}))
    back = get_reader(name)(target, **({"image_sizes": {"a.png": (40, 30)}} if name == "yolo" else {}))
    (obj,) = back.objects
    assert (obj.image_key, obj.kind, obj.label) == ("a.png", "polygon", "cat")
    np.testing.assert_allclose(obj.geometry["points"], ds.objects[0].geometry["points"], atol=1e-3)
