from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labkit.formats import Dataset, FormatError, ImageRecord, ObjectRecord, get_reader, get_writer

EXAMPLE = Path(__file__).parent / "data" / "aihub_example.json"
read, write = get_reader("aihub"), get_writer("aihub")


def strict(a, b) -> bool:
    """JSON equality that also tells 1 from 1.0 (types JSON writes differently)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict(x, y) for x, y in zip(a, b))
    return a == b


def test_seed_example_is_read(tmp_path):
    ds = read(EXAMPLE)
    (im,) = ds.images
    assert im.key == "NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_232.png"
    assert im.subject == "001" and (im.width, im.height) == (None, None)
    assert im.attributes == {"inst": "S", "image": "rgb", "condition": "F", "posture": "D",
                             "pose": {"head": [-24.6848, 6.2168, -0.4095], "cam": [-96.57, -1.45, 11.05],
                                      "point": [1913, 1076]},
                             "distance": {"cam": 53, "display": 53}}
    assert [(o.kind, o.label) for o in ds.objects] == [
        ("ellipse", "r_iris"), ("ellipse", "l_iris"), ("polygon", "r_eyelid"), ("polygon", "l_eyelid"),
        ("point", "l_center"), ("point", "r_center")]
    assert ds.objects[0].geometry == {"cx": 1021.5, "cy": 292.5, "rx": 12.5, "ry": 10.5, "angle": 0.0}
    assert len(ds.objects[2].geometry["points"]) == 16
    assert ds.objects[5].geometry == {"points": [[1021.5, 292.5]]}
    assert ds.classes == ["r_iris", "l_iris", "r_eyelid", "l_eyelid", "l_center", "r_center"]


@pytest.mark.parametrize("keep_provenance", [True, False], ids=["provenance", "derived"])
def test_seed_example_exports_back_equal(tmp_path, keep_provenance):
    ds = read(EXAMPLE)
    if not keep_provenance:  # the writer derives the same JSON from the geometry alone
        for o in ds.objects:
            o.provenance = {}
    write(ds, tmp_path)
    out = tmp_path / "NIA22EYE_S1_001_T1_S10_S_rgb_F_D_L_232.json"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    original = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    written = json.loads(out.read_text(encoding="utf-8"))
    assert strict(written, original)
    assert list(written["Annotations"]) == list(original["Annotations"])
    for w, o in zip(written["Annotations"]["annotations"], original["Annotations"]["annotations"]):
        assert list(w) == list(o)


def test_edited_geometry_is_derived_and_label_follows(tmp_path):
    ds = read(EXAMPLE)
    iris = ds.objects[0]
    iris.geometry = dict(iris.geometry, cx=1030.0, angle=15.0)
    ds.objects[2].label = "eyelid_r"
    write(ds, tmp_path)
    anns = json.loads(next(tmp_path.glob("*.json")).read_text())["Annotations"]["annotations"]
    assert anns[0] == {"label": "r_iris", "points": [[1017.5, 282], [1042.5, 303]], "shape": "Ellipse",
                       "rotate": 15, "rx": 12.5, "ry": 10.5, "cx": 1030, "cy": 292.5}
    assert anns[2]["label"] == "eyelid_r" and anns[2]["points"][0] == [994, 298]


def test_folder_is_read_sorted_and_recursively(tmp_path):
    doc = json.loads(EXAMPLE.read_text())
    for i, sub in enumerate(["b", "a/x"]):
        doc["Annotations"]["name"] = f"img_{i}.png"
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / f"img_{i}.json").write_text(json.dumps(doc))
    ds = read(tmp_path)
    assert [im.key for im in ds.images] == ["img_1.png", "img_0.png"]
    assert [im.where for im in ds.images] == ["a/x/img_1.json", "b/img_0.json"]
    assert len(ds.objects) == 12


def test_other_kinds_are_written_as_polygons(tmp_path):
    ds = Dataset([ImageRecord("a.png")], [
        ObjectRecord("a.png", "box", "lid", {"x0": 1.0, "y0": 2.0, "x1": 5.0, "y1": 6.5}),
        ObjectRecord("a.png", "label", "open", None),
    ], ["lid", "open"])
    with pytest.warns(UserWarning, match="skipped image-level labels"):
        write(ds, tmp_path)
    back = read(tmp_path)
    assert back.objects[0].geometry == {"points": [[1.0, 2.0], [5.0, 2.0], [5.0, 6.5], [1.0, 6.5]]}


# --- bad input ---------------------------------------------------------------

def test_truncated_json(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    (tmp_path / "cut.json").write_text(text[:-40], encoding="utf-8")
    with pytest.raises(FormatError, match=r"cut\.json: invalid JSON \(the file looks truncated\)"):
        read(tmp_path)


def test_problems_name_file_and_annotation(tmp_path):
    doc = json.loads(EXAMPLE.read_text())
    anns = doc["Annotations"]["annotations"]
    anns[2]["points"] = anns[2]["points"][:2]
    anns[0]["rx"] = "wide"
    anns[4]["shape"] = "Circle"
    del doc["Annotations"]["annotations"][5]["points"]
    doc["Annotations"]["name"] = "other.png"
    shutil.copy(EXAMPLE, tmp_path / "ok.json")
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError) as info:
        read(tmp_path)
    assert [w for w, _ in info.value.problems] == [
        f"bad.json: Annotations.annotations[{i}]" for i in (0, 2, 4, 5)]
    msg = str(info.value)
    assert "rx is str 'wide'; expected a number" in msg
    assert "polygon has 2 point(s); expected at least 3" in msg
    assert "shape is 'Circle'; expected one of ['Ellipse', 'Polygon', 'Point']" in msg
    assert "missing required key(s) ['points']" in msg


def test_same_image_in_two_files(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "one.json")
    shutil.copy(EXAMPLE, tmp_path / "two.json")
    with pytest.raises(FormatError, match=r"two\.json: Annotations\.name: .* is also named by one\.json"):
        read(tmp_path)


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(FormatError, match="no .json files"):
        read(tmp_path)
    with pytest.raises(FormatError, match="no such file or folder"):
        read(tmp_path / "nope.json")
