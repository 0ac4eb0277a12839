from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labkit.formats import FormatError, get_reader, get_writer
from labkit.geometry import decode_rle

EXAMPLE = Path(__file__).parent / "data" / "cvat_example.xml"
read, write = get_reader("cvat"), get_writer("cvat")


def _read_example():
    with pytest.warns(UserWarning, match="polyline"):
        return read(EXAMPLE)


def test_reads_every_shape():
    ds = _read_example()
    assert [(im.key, im.width, im.height) for im in ds.images] == [
        ("frames/eye_000.png", 8, 6), ("frames/eye_001.png", 8, 6)]
    assert ds.images[0].attributes == {"subset": "default", "task_id": "3"}
    assert ds.classes == ["iris", "eyelid", "closed", "unused"]
    box, rot, poly, parts, pts, ell, mask, tag = ds.objects
    assert box.geometry == {"x0": 1.0, "y0": 2.0, "x1": 5.5, "y1": 4.0}
    assert box.provenance["cvat"] == {"tag": "box", "attrs": {"source": "manual", "occluded": "0", "z_order": "0"},
                                      "attributes": {"visible": "true"}}
    assert rot.kind == "polygon"  # 4x2 box turned 90 degrees about its centre (4, 3)
    np.testing.assert_allclose(rot.geometry["points"], [[5, 1], [5, 5], [3, 5], [3, 1]], atol=1e-12)
    assert poly.geometry == {"points": [[0.5, 0.5], [7.0, 0.5], [7.0, 5.0]]}
    assert [p["points"][0] for p in parts.geometry["parts"]] == [[0.0, 0.0], [5.0, 5.0]]
    assert pts.geometry == {"points": [[3.0, 3.0], [4.5, 3.25]]}
    assert ell.geometry == {"cx": 4.0, "cy": 3.0, "rx": 2.0, "ry": 1.5, "angle": 15.0}
    want = np.zeros((6, 8), bool)
    want[1, 2:4] = want[2, 3:5] = True
    np.testing.assert_array_equal(decode_rle(mask.geometry), want)
    assert (tag.kind, tag.label, tag.geometry) == ("label", "closed", None)


def test_example_roundtrip(tmp_path):
    ds = _read_example()
    write(ds, tmp_path / "annotations.xml")
    back = read(tmp_path / "annotations.xml")
    assert back.classes == ds.classes
    for a, b in zip(ds.objects, back.objects, strict=True):
        assert (a.kind, a.label, a.provenance["cvat"]["attributes"]) == (
            b.kind, b.label, b.provenance["cvat"]["attributes"])
        if a.kind == "mask":
            np.testing.assert_array_equal(decode_rle(a.geometry), decode_rle(b.geometry))
        else:
            assert a.geometry == b.geometry
    assert back.objects[0].provenance["cvat"]["attrs"]["occluded"] == "0"
    assert back.objects[1].provenance["cvat"]["attrs"]["occluded"] == "1"


# --- bad input ---------------------------------------------------------------

def test_truncated_xml(tmp_path):
    text = EXAMPLE.read_text()
    path = tmp_path / "annotations.xml"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(FormatError,
                       match=r"(?s)annotations\.xml: .*invalid XML \(truncated\?\) at line \d+ column \d+"):
        read(path)


def test_problems_are_located(tmp_path):
    text = (EXAMPLE.read_text()
            .replace('points="0.50,0.50;7.00,0.50;7.00,5.00"', 'points="0.50,0.50;7.00,0.50"')
            .replace('xtl="1.00"', 'xtl="one"')
            .replace('rle="0, 2, 2, 2"', 'rle="0, 2, 2"')
            .replace('<tag label="closed"', '<tag label="open"')
            .replace('<image id="1" name="frames/eye_001.png" width="8"', '<image id="1" name="x.png"'))
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(FormatError) as info:
        read(path)
    assert info.value.problems == [
        ("image[0] (frames/eye_000.png)/box[0]", "xtl is 'one'; expected a number"),
        ("image[0] (frames/eye_000.png)/polygon[0]", "polygon has 2 point(s); expected at least 3"),
        ("image[0] (frames/eye_000.png)/mask[0]", "mask rle runs add up to 4; expected width*height = 6"),
        ("image[0] (frames/eye_000.png)/tag[0]",
         "label 'open' is not declared in <meta> labels ['iris', 'eyelid', 'closed', 'unused']"),
        ("image[1]", "missing required key(s) ['width']; found ['id', 'name', 'height']"),
    ]


def test_not_cvat(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text("<root/>")
    with pytest.raises(FormatError, match="root element is <root>; expected <annotations>"):
        read(path)


def test_entity_expansion_is_refused(tmp_path):
    path = tmp_path / "bomb.xml"
    path.write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx">]><annotations>&x;</annotations>')
    with pytest.raises(FormatError, match="unsafe or invalid XML"):
        read(path)
