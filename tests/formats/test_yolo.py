from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from labkit.formats import Dataset, FormatError, ImageRecord, ObjectRecord, get_reader, get_writer
from labkit.geometry import encode_rle, polygon_to_mask

read, write = get_reader("yolo"), get_writer("yolo")


def _dataset():
    m = np.zeros((50, 100), bool)
    m[10:20, 10:30] = True
    m[30:32, 60:62] = True  # a smaller second part
    return Dataset(
        images=[ImageRecord("a.jpg", 100, 50), ImageRecord("b.jpg", 20, 10)],
        objects=[
            ObjectRecord("a.jpg", "box", "cat", {"x0": 10.0, "y0": 5.0, "x1": 30.0, "y1": 25.0}),
            ObjectRecord("a.jpg", "polygon", "dog", {"points": [[0.0, 0.0], [50.0, 0.0], [50.0, 50.0]]}),
            ObjectRecord("a.jpg", "mask", "dog", encode_rle(m)),
            ObjectRecord("a.jpg", "ellipse", "cat", {"cx": 50.0, "cy": 25.0, "rx": 10.0, "ry": 5.0, "angle": 90.0}),
            ObjectRecord("a.jpg", "point", "cat", {"points": [[1.0, 1.0]]}),
        ],
        classes=["cat", "dog", "bird"])


def test_detect_layout(tmp_path):
    with pytest.warns(UserWarning, match="skipped point objects"):
        write(_dataset(), tmp_path, task="detect")
    assert yaml.safe_load((tmp_path / "data.yaml").read_text()) == {
        "nc": 3, "names": {0: "cat", 1: "dog", 2: "bird"}}
    lines = (tmp_path / "labels" / "a.txt").read_text().splitlines()
    assert lines == ["0 0.200000 0.300000 0.200000 0.400000",
                     "1 0.250000 0.500000 0.500000 1.000000",
                     "1 0.360000 0.420000 0.520000 0.440000",
                     "0 0.500000 0.500000 0.100000 0.400000"]
    assert (tmp_path / "labels" / "b.txt").read_text() == ""


def test_segment_keeps_the_largest_part(tmp_path):
    with pytest.warns(UserWarning, match="kept the largest part"):
        write(_dataset(), tmp_path, task="segment")
    with Image.new("RGB", (100, 50)) as img:
        (tmp_path / "images").mkdir()
        img.save(tmp_path / "images" / "a.jpg")
    with Image.new("RGB", (20, 10)) as img:
        img.save(tmp_path / "images" / "b.jpg")
    ds = read(tmp_path)  # sizes from images/
    assert [(im.key, im.width, im.height) for im in ds.images] == [("a.jpg", 100, 50), ("b.jpg", 20, 10)]
    box, tri, mask, ell = ds.objects
    assert box.kind == "polygon" and box.geometry["points"][2] == pytest.approx([30.0, 25.0])
    traced = polygon_to_mask(mask.geometry, 50, 100)
    want = np.zeros((50, 100), bool)
    want[10:20, 10:30] = True
    np.testing.assert_array_equal(traced, want)  # pixel-edge outline of the larger part
    assert len(ell.geometry["points"]) == 64


def test_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="task is 'pose'; expected 'detect' or 'segment'"):
        write(_dataset(), tmp_path, task="pose")
    ds = Dataset([ImageRecord("a.jpg")], [], [])
    with pytest.raises(ValueError, match="have no width/height"):
        write(ds, tmp_path)


def test_bad_lines(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "data.yaml").write_text("names: [cat, dog]\n")
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.1 0.1\n1 0.1 0.1 0.2 0.2 0.3\n"
                                               "0 0.1 0.1 0.2 0.2 0.3 0.3 0.4\n1 0.5 nan 0.1 0.1\n")
    (tmp_path / "labels" / "c.txt").write_text("")
    with pytest.raises(FormatError) as info:
        read(tmp_path, image_sizes={"a.png": (10, 10)})
    assert [w for w, _ in info.value.problems] == ["labels/a.txt:2", "labels/a.txt:4", "labels/a.txt:5",
                                                   "labels/c.txt"]
    msg = str(info.value)
    assert "class '5' is not an index into the 2 names of data.yaml" in msg
    assert "no size for image 'c'" in msg
