from __future__ import annotations

import json
import math

import numpy as np
import pytest

from labkit.formats import Dataset, FormatError, ImageRecord, ObjectRecord, _ls_brush, get_reader, get_writer
from labkit.formats.labelstudio import image_key
from labkit.geometry import decode_rle, encode_rle

read, write = get_reader("labelstudio"), get_writer("labelstudio")


# --- the brush RLE against a plain scalar statement of Label Studio's algorithm ---------

def reference_decode(rle: list[int]) -> np.ndarray:
    """thi.ng rle-pack as label-studio-converter's brush.decode_rle reads it, bit by bit."""
    bits = "".join(format(b, "08b") for b in rle)
    pos = 0

    def take(n):
        nonlocal pos
        pos += n
        return int(bits[pos - n:pos], 2)

    num, word = take(32), take(5) + 1
    sizes = [take(4) + 1 for _ in range(4)]
    out, i = np.zeros(num, np.uint8), 0
    while i < num:
        repeat = take(1)
        j = i + 1 + take(sizes[take(2)])
        if repeat:
            out[i:j] = take(word)
        else:
            for k in range(i, j):
                out[k] = take(word)
        i = j
    return out


def reference_encode(values: np.ndarray) -> list[int]:
    """label-studio-converter's brush.encode_rle with its defaults (8-bit words, sizes 3/4/8/16)."""
    bits = format(len(values), "032b") + format(7, "05b") + "".join(format(s - 1, "04b") for s in (3, 4, 8, 16))
    i = 0
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i]:
            j += 1
        n, v = j - i, int(values[i])
        if n == 1:
            bits += "0" + "00" + "000" + format(v, "08b")
        elif n <= 8:
            bits += "1" + "00" + format(n - 1, "03b") + format(v, "08b")
        elif n <= 16:
            bits += "1" + "01" + format(n - 1, "04b") + format(v, "08b")
        elif n <= 256:
            bits += "1" + "10" + format(n - 1, "08b") + format(v, "08b")
        else:
            while n > 2**16:
                bits += "1" + "11" + format(2**16 - 1, "016b") + format(v, "08b")
                n -= 2**16
            bits += "1" + "11" + format(n - 1, "016b") + format(v, "08b")
        i = j
    bits += "0" * (8 - len(bits) % 8)
    return [int(bits[k:k + 8], 2) for k in range(0, len(bits), 8)]


def _masks():
    rng = np.random.default_rng(0)
    yield np.zeros((3, 5), bool)
    yield np.ones((7, 4), bool)
    big = np.zeros((300, 260), bool)
    big[20:290, 5:250] = True  # runs longer than 2**16 values
    yield big
    for _ in range(20):
        h, w = rng.integers(1, 40, 2)
        yield rng.random((h, w)) < rng.random()


@pytest.mark.parametrize("mask", list(_masks()), ids=lambda m: f"{m.shape}-{int(m.sum())}")
def test_brush_rle_matches_reference_transcription(mask):
    rgba = np.repeat(np.where(mask.ravel(), 255, 0).astype(np.uint8), 4)
    rle = _ls_brush.encode(mask)
    assert rle == reference_encode(rgba)
    np.testing.assert_array_equal(reference_decode(rle), rgba)
    np.testing.assert_array_equal(_ls_brush.decode(rle, *mask.shape), mask)


@pytest.mark.parametrize("mask", list(_masks())[:8], ids=lambda m: f"{m.shape}-{int(m.sum())}")
def test_brush_rle_matches_label_studio_converter(mask):
    brush = pytest.importorskip("label_studio_converter.brush")
    ours = _ls_brush.encode(mask)
    assert ours == brush.mask2rle(mask.astype(np.uint8) * 255)
    h, w = mask.shape
    np.testing.assert_array_equal(brush.decode_rle(ours).reshape(h, w, 4)[:, :, 3] > 0, mask)


def test_brush_decode_reads_literal_runs():
    # a stream the reference encoder never writes but the JS encoder may: 4 literal values
    head = format(4, "032b") + format(7, "05b") + "".join(format(s - 1, "04b") for s in (3, 4, 8, 16))
    body = "0" + "00" + format(3, "03b") + "".join(format(v, "08b") for v in (1, 2, 3, 0))
    bits = head + body
    bits += "0" * (-len(bits) % 8)
    rle = [int(bits[k:k + 8], 2) for k in range(0, len(bits), 8)]
    np.testing.assert_array_equal(_ls_brush.decode(rle, 1, 1), [[False]])
    np.testing.assert_array_equal(reference_decode(rle), [1, 2, 3, 0])


# --- reading an export -------------------------------------------------------

def _region(typ, value, rid="r1", w=200, h=100, **extra):
    return {"id": rid, "type": typ, "from_name": "label", "to_name": "image",
            "original_width": w, "original_height": h, "image_rotation": 0, "value": value, **extra}


def _export(tmp_path, tasks, name="export.json"):
    path = tmp_path / name
    path.write_text(json.dumps(tasks))
    return path


def test_reads_every_result_type(tmp_path):
    m = np.zeros((100, 200), bool)
    m[10:30, 50:90] = True
    tasks = [{
        "id": 7, "data": {"image": "/data/upload/3/8f2a1b3c-cat.jpg"},
        "annotations": [
            {"id": 1, "completed_by": 12, "result": [
                _region("rectanglelabels", {"x": 10, "y": 20, "width": 50, "height": 30, "rotation": 0,
                                            "rectanglelabels": ["cat"]}),
                _region("rectanglelabels", {"x": 10, "y": 20, "width": 50, "height": 30, "rotation": 90,
                                            "rectanglelabels": ["dog"]}, rid="r2"),
                _region("polygonlabels", {"points": [[0, 0], [50, 0], [50, 50]], "closed": True,
                                          "polygonlabels": ["cat"]}, rid="r3"),
                {"id": "c1", "type": "choices", "from_name": "choice", "to_name": "image",
                 "value": {"choices": ["indoor", "night"]}},
            ]},
            {"id": 2, "completed_by": {"id": 4, "email": "ana@example.org"}, "result": [
                _region("brushlabels", {"format": "rle", "rle": _ls_brush.encode(m), "brushlabels": ["cat"]}),
                _region("keypointlabels", {"x": 25, "y": 50, "width": 0.7, "keypointlabels": ["eye"]}, rid="k"),
                _region("ellipselabels", {"x": 50, "y": 50, "radiusX": 10, "radiusY": 20, "rotation": 30,
                                          "ellipselabels": ["eye"]}, rid="e"),
                {"id": "t", "type": "textarea", "value": {"text": ["note"]}},
            ]},
        ],
        "predictions": [{"id": 9, "model_version": "yolo-v8", "score": 0.8, "result": [
            _region("rectanglelabels", {"x": 0, "y": 0, "width": 10, "height": 10, "rectanglelabels": ["cat"]},
                    score=0.55),
            _region("rectanglelabels", {"x": 5, "y": 5, "width": 10, "height": 10, "rectanglelabels": ["dog"]},
                    rid="p2"),
        ]}],
    }]
    with pytest.warns(UserWarning, match="textarea"):
        ds = read(_export(tmp_path, tasks))
    (im,) = ds.images
    assert (im.key, im.width, im.height) == ("cat.jpg", 200, 100)
    box, rot, poly, indoor, night, brush, kp, ell, p1, p2 = ds.objects
    assert box.geometry == {"x0": 20.0, "y0": 20.0, "x1": 120.0, "y1": 50.0} and box.worker == "12"
    assert rot.kind == "polygon"  # 90 degrees about the top-left corner (20, 20)
    np.testing.assert_allclose(rot.geometry["points"], [[20, 20], [20, 120], [-10, 120], [-10, 20]], atol=1e-9)
    assert poly.geometry == {"points": [[0.0, 0.0], [100.0, 0.0], [100.0, 50.0]]}
    assert (indoor.kind, indoor.label, night.label, indoor.geometry) == ("label", "indoor", "night", None)
    assert brush.worker == "ana@example.org"
    np.testing.assert_array_equal(decode_rle(brush.geometry), m)
    assert kp.geometry == {"points": [[50.0, 50.0]]}
    assert ell.geometry == {"cx": 100.0, "cy": 50.0, "rx": 20.0, "ry": 20.0, "angle": 30.0}
    assert (p1.worker, p1.score, p2.score) == (None, 0.55, 0.8)
    assert p1.provenance["labelstudio"]["source"] == "prediction"
    assert p1.provenance["labelstudio"]["model_version"] == "yolo-v8"
    assert box.provenance["labelstudio"]["image"] == "/data/upload/3/8f2a1b3c-cat.jpg"
    assert ds.classes == ["cat", "dog", "indoor", "night", "eye"]

    # and back: the same tasks, annotations and predictions
    write(ds, tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text())
    assert again[0]["data"]["image"] == "/data/upload/3/8f2a1b3c-cat.jpg" and again[0]["id"] == 7
    assert [a["completed_by"] for a in again[0]["annotations"]] == [12, {"id": 4, "email": "ana@example.org"}]
    assert again[0]["predictions"][0]["model_version"] == "yolo-v8"
    ds2 = read(tmp_path / "again.json")
    assert [(o.kind, o.label, o.worker) for o in ds2.objects] == [
        (o.kind, o.label, o.worker) for o in ds.objects]


@pytest.mark.parametrize("src, key", [
    ("/data/upload/12/abcdef12-photo 1.png", "photo 1.png"),
    ("/data/upload/1/not-hex-photo.png", "not-hex-photo.png"),
    ("/data/local-files/?d=datasets/eyes/abcdef12-x.png", "abcdef12-x.png"),
    ("https://bucket.example.org/imgs/a%20b.jpg?token=1", "a b.jpg"),
    ("s3://bucket/folder/c.jpg", "c.jpg"),
    ("d.jpg", "d.jpg"),
])
def test_image_key(src, key):
    assert image_key(src) == key


def test_pre_labels_are_written_as_predictions(tmp_path):
    ds = Dataset([ImageRecord("a.png", 100, 50), ImageRecord("b.png", 10, 10)],
                 [ObjectRecord("a.png", "box", "cat", {"x0": 10.0, "y0": 5.0, "x1": 60.0, "y1": 25.0},
                               score=0.9)], ["cat"])
    write(ds, tmp_path / "tasks.json", model_version="sam-1", image_prefix="/data/local-files/?d=imgs/")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [t["data"]["image"] for t in tasks] == ["/data/local-files/?d=imgs/a.png",
                                                   "/data/local-files/?d=imgs/b.png"]
    (pred,) = tasks[0]["predictions"]
    assert pred["model_version"] == "sam-1" and pred["score"] == 0.9 and tasks[0]["annotations"] == []
    (r,) = pred["result"]
    assert r["type"] == "rectanglelabels" and r["value"] == {
        "x": 10.0, "y": 10.0, "width": 50.0, "height": 40.0, "rotation": 0, "rectanglelabels": ["cat"]}


# --- bad input ---------------------------------------------------------------

def test_corrupt_brush_rle(tmp_path):
    rle = _ls_brush.encode(np.ones((10, 20), bool))
    tasks = [{"data": {"image": "a.png"}, "annotations": [{"result": [
        _region("brushlabels", {"format": "rle", "rle": rle[:-3] if len(rle) > 8 else rle[:6],
                                "brushlabels": ["cat"]}, w=20, h=10),
        _region("brushlabels", {"format": "rle", "rle": _ls_brush.encode(np.ones((5, 5), bool)),
                                "brushlabels": ["cat"]}, rid="r2", w=20, h=10),
        _region("brushlabels", {"format": "rle", "rle": [300, 1], "brushlabels": ["cat"]}, rid="r3",
                w=20, h=10),
    ]}]}]
    with pytest.raises(FormatError) as info:
        read(_export(tmp_path, tasks))
    msg = str(info.value)
    assert "tasks[0].annotations[0].result[0]: corrupt brush RLE: stream ends" in msg
    assert "result[1]: corrupt brush RLE: header says 100 values; expected height*width*4 = 800" in msg
    assert "result[2]: corrupt brush RLE: rle must be a list of byte values 0..255" in msg
    with pytest.raises(FormatError, match=r"result\[0\]: corrupt brush RLE"):
        read(_export(tmp_path, tasks[:1]))


def test_truncated_export(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps([{"data": {"image": "a.png"}, "annotations": []}])[:-5])
    with pytest.raises(FormatError, match=r"(?s)export\.json: .*invalid JSON \(the file looks truncated\)"):
        read(path)


def test_polygon_with_two_points_and_bad_numbers(tmp_path):
    tasks = [{"data": {"image": "a.png"}, "annotations": [{"result": [
        _region("polygonlabels", {"points": [[0, 0], [5, 5]], "polygonlabels": ["cat"]}),
        _region("rectanglelabels", {"x": "ten", "y": 0, "width": 1, "height": 1, "rectanglelabels": ["cat"]}),
        _region("rectanglelabels", {"x": 1, "y": 0, "width": 1, "height": 1, "rectanglelabels": []}),
    ]}]}]
    with pytest.raises(FormatError) as info:
        read(_export(tmp_path, tasks))
    msg = str(info.value)
    assert "result[0]: polygon has 2 point(s); expected at least 3" in msg
    assert "result[1]: x is str 'ten'; expected a number" in msg
    assert "result[2]: region has labels []; expected a non-empty list of class names" in msg


def test_inconsistent_original_size(tmp_path):
    tasks = [{"data": {"image": "a.png"}, "annotations": [{"result": [
        _region("keypointlabels", {"x": 1, "y": 1, "keypointlabels": ["eye"]}),
        _region("keypointlabels", {"x": 1, "y": 1, "keypointlabels": ["eye"]}, w=201),
    ]}]}]
    with pytest.raises(FormatError, match=r"result\[1\]: original size 201x100 differs from 200x100"):
        read(_export(tmp_path, tasks))


def test_rotated_rectangle_percentages_use_pixels(tmp_path):
    # 45 degrees on a non-square image: rotation happens in pixel space
    tasks = [{"data": {"image": "a.png"}, "annotations": [{"result": [
        _region("rectanglelabels", {"x": 50, "y": 50, "width": 10, "height": 10, "rotation": 45,
                                    "rectanglelabels": ["cat"]}, w=400, h=100)]}]}]
    (obj,) = read(_export(tmp_path, tasks)).objects
    pts = np.array(obj.geometry["points"])
    s = math.sqrt(0.5)
    np.testing.assert_allclose(pts[1], [200 + 40 * s, 50 + 40 * s])
    np.testing.assert_allclose(pts[3], [200 - 10 * s, 50 + 10 * s])


def test_mask_roundtrip_large(tmp_path):
    m = np.zeros((480, 640), bool)
    m[100:400, 50:600] = True
    m[200:250, 300:320] = False
    ds = Dataset([ImageRecord("a.png", 640, 480)], [ObjectRecord("a.png", "mask", "cat", encode_rle(m))], ["cat"])
    write(ds, tmp_path / "t.json")
    np.testing.assert_array_equal(decode_rle(read(tmp_path / "t.json").objects[0].geometry), m)


def test_generic_labels_and_bare_tools(tmp_path):
    tasks = [{"data": {"image": "a.png"}, "annotations": [{"result": [
        _region("labels", {"x": 10, "y": 10, "width": 10, "height": 10, "rotation": 0, "labels": ["cat"]}),
        _region("rectangle", {"x": 50, "y": 50, "width": 10, "height": 10, "rotation": 0}, rid="r2"),
        {"id": "r2", "type": "labels", "from_name": "tags", "to_name": "image", "value": {"labels": ["dog"]}},
        _region("polygon", {"points": [[0, 0], [10, 0], [10, 10]]}, rid="r3"),
    ]}]}]
    with pytest.raises(FormatError, match=r"result\[3\]: region has labels None"):
        read(_export(tmp_path, tasks))
    ds = read(_export(tmp_path, [dict(tasks[0], annotations=[{"result": tasks[0]["annotations"][0]["result"][:3]}])]))
    assert [(o.kind, o.label) for o in ds.objects] == [("box", "cat"), ("box", "dog")]
    assert ds.objects[1].geometry == {"x0": 100.0, "y0": 50.0, "x1": 120.0, "y1": 60.0}
