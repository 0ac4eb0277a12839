from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from labkit.formats import Dataset, FormatError, ImageRecord, ObjectRecord, get_reader, get_writer
from labkit.geometry import decode_rle, ellipse_to_mask, encode_rle, polygon_to_mask
from tests.formats.helpers import datasets

read, write = get_reader("coco"), get_writer("coco")


def _dump(tmp_path, doc, name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def _doc(annotations, images=None):
    return {"images": images or [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 8}],
            "categories": [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}],
            "annotations": annotations}


@settings(max_examples=15, deadline=None)
@given(datasets(("polygon", "mask"), parts=True))
def test_pycocotools_ann_to_mask_matches_original(tmp_path_factory, ds):
    from pycocotools.coco import COCO

    path = tmp_path_factory.mktemp("coco") / "ann.json"
    write(ds, path)
    coco = COCO(str(path))
    sizes = {im.key: (im.height, im.width) for im in ds.images}
    anns = coco.loadAnns(sorted(coco.getAnnIds()))
    assert len(anns) == len(ds.objects)
    for obj, ann in zip(ds.objects, anns):
        assert coco.imgs[ann["image_id"]]["file_name"] == obj.image_key
        want = (decode_rle(obj.geometry) if obj.kind == "mask"
                else polygon_to_mask(obj.geometry, *sizes[obj.image_key]))
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), want)
        assert ann["area"] == pytest.approx(float(want.sum()) if obj.kind == "mask" else ann["area"])


def test_reads_boxes_polygons_rle_and_keeps_provenance(tmp_path):
    m = np.zeros((8, 10), bool)
    m[2:5, 3:7] = True
    runs = [int(v) for v in np.diff(np.flatnonzero(np.diff(np.r_[-1, m.ravel(order="F"), -1])))]
    doc = _doc([
        {"id": 10, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0,
         "score": 0.5, "attributes": {"occluded": True}},
        {"id": 11, "image_id": 1, "category_id": 5, "segmentation": [[0, 0, 4, 0, 4, 4], [5, 5, 9, 5, 9, 7]],
         "bbox": [0, 0, 9, 7], "area": 14, "iscrowd": 0},
        {"id": 12, "image_id": 1, "category_id": 5, "segmentation": {"size": [8, 10], "counts": runs},
         "iscrowd": 1, "bbox": [3, 2, 4, 3], "area": 12},
    ])
    ds = read(_dump(tmp_path, doc))
    box, poly, mask = ds.objects
    assert (box.kind, box.label, box.score) == ("box", "cat", 0.5)
    assert box.geometry == {"x0": 1.0, "y0": 2.0, "x1": 4.0, "y1": 6.0}
    assert box.provenance["coco"]["extra"] == {"attributes": {"occluded": True}}
    assert poly.kind == "polygon" and len(poly.geometry["parts"]) == 2
    assert mask.kind == "mask" and isinstance(mask.geometry["counts"], str)
    np.testing.assert_array_equal(decode_rle(mask.geometry), m)
    assert ds.classes == ["cat", "dog"]
    # re-export keeps ids, iscrowd and extra fields
    write(ds, tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text())
    anns = {a["id"]: a for a in again["annotations"]}
    assert anns[10]["attributes"] == {"occluded": True} and "segmentation" not in anns[10]
    assert anns[10]["bbox"] == [1, 2, 3, 4] and anns[10]["area"] == 12 and anns[10]["score"] == 0.5
    assert anns[11]["segmentation"] == doc["annotations"][1]["segmentation"]
    assert anns[11]["area"] == pytest.approx(8 + 4) and anns[11]["bbox"] == [0, 0, 9, 7]
    assert anns[12]["iscrowd"] == 1 and anns[12]["area"] == 12 and anns[12]["bbox"] == [3, 2, 4, 3]
    assert [c["id"] for c in again["categories"]] == [3, 5]
    assert again["images"][0]["id"] == 1


def test_writes_ellipses_as_polygons_and_points_as_keypoints(tmp_path):
    e = {"cx": 20.0, "cy": 15.0, "rx": 8.0, "ry": 5.0, "angle": 30.0}
    ds = Dataset(images=[ImageRecord("a.png", 40, 30)], classes=["iris", "center"], objects=[
        ObjectRecord("a.png", "ellipse", "iris", e),
        ObjectRecord("a.png", "point", "center", {"points": [[20.0, 15.0]]}),
    ])
    write(ds, tmp_path / "a.json")
    from pycocotools.coco import COCO

    coco = COCO(str(tmp_path / "a.json"))
    ell, pt = coco.loadAnns([1, 2])
    got, want = coco.annToMask(ell).astype(bool), ellipse_to_mask(e, 30, 40)
    assert (got & want).sum() / (got | want).sum() > 0.9
    assert pt["keypoints"] == [20.0, 15.0, 2] and pt["num_keypoints"] == 1
    assert coco.cats[2]["keypoints"] == ["center"]
    back = read(tmp_path / "a.json")
    assert [o.kind for o in back.objects] == ["polygon", "point"]


def test_labels_are_skipped_with_a_warning(tmp_path):
    ds = Dataset([ImageRecord("a.png", 4, 4)], [ObjectRecord("a.png", "label", "cat", None)], ["cat"])
    with pytest.warns(UserWarning, match="image-level labels"):
        write(ds, tmp_path / "a.json")


def test_polygon_with_holes_becomes_rle(tmp_path):
    g = {"points": [[0, 0], [10, 0], [10, 10], [0, 10]], "holes": [[[3, 3], [6, 3], [6, 6], [3, 6]]]}
    ds = Dataset([ImageRecord("a.png", 12, 12)], [ObjectRecord("a.png", "polygon", "cat", g)], ["cat"])
    write(ds, tmp_path / "a.json")
    back = read(tmp_path / "a.json")
    assert back.objects[0].kind == "mask"
    np.testing.assert_array_equal(decode_rle(back.objects[0].geometry), polygon_to_mask(g, 12, 12))


# --- bad input ---------------------------------------------------------------

def test_truncated_json(tmp_path):
    text = json.dumps(_doc([{"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]}]))
    path = _dump(tmp_path, text[: len(text) // 2])
    with pytest.raises(FormatError, match=r"(?s)ann\.json.*invalid JSON \(the file looks truncated\).*line 1"):
        read(path)


def test_unknown_image_id(tmp_path):
    path = _dump(tmp_path, _doc([{"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]},
                                 {"image_id": 99, "category_id": 3, "bbox": [0, 0, 1, 1]}]))
    with pytest.raises(FormatError, match=r"annotations\[1\]: image_id 99 is not in images"):
        read(path)


def test_polygon_with_two_points(tmp_path):
    path = _dump(tmp_path, _doc([{"image_id": 1, "category_id": 3, "segmentation": [[0, 0, 4, 4]]}]))
    with pytest.raises(FormatError, match=r"annotations\[0\]: polygon has 2 point\(s\); expected at least 3"):
        read(path)


def test_every_problem_is_listed_once(tmp_path):
    path = _dump(tmp_path, _doc([
        {"image_id": 1, "category_id": 7, "bbox": [0, 0, 1, 1]},
        {"image_id": 1, "category_id": 3, "bbox": [0, "x", 1, 1]},
        {"image_id": 1, "category_id": 3, "segmentation": {"size": [8, 10], "counts": "zzz"}},
        {"image_id": 1, "bbox": [0, 0, 1, 1]},
    ]))
    with pytest.raises(FormatError) as info:
        read(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: 4 problem(s)")
    assert "annotations[0]: category_id 7 is not in categories" in msg
    assert "annotations[1]: bbox[1] is str 'x'; expected a number" in msg
    assert "annotations[2]: mask RLE counts" in msg
    assert "annotations[3]: missing required key(s) ['category_id']" in msg
    assert [w for w, _ in info.value.problems] == [f"annotations[{i}]" for i in range(4)]


def test_non_finite_and_too_many_problems(tmp_path):
    anns = [{"image_id": 1, "category_id": 3, "bbox": [float("nan"), 0, 1, 1]} for _ in range(25)]
    with pytest.raises(FormatError, match=r"25 problem\(s\)(.|\n)*bbox\[0\] is nan; expected a finite "
                                          r"number(.|\n)*and 5 more problem"):
        read(_dump(tmp_path, _doc(anns)))


def test_results_list_is_explained(tmp_path):
    with pytest.raises(FormatError, match="COCO results file"):
        read(_dump(tmp_path, [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.3}]))


def test_uncompressed_rle_of_wrong_length(tmp_path):
    seg = {"size": [8, 10], "counts": [5, 3]}
    with pytest.raises(FormatError, match=r"annotations\[0\]: mask RLE runs cover 8 pixels"):
        read(_dump(tmp_path, _doc([{"image_id": 1, "category_id": 3, "segmentation": seg}])))


def test_mask_roundtrip_exact(tmp_path):
    m = np.random.default_rng(1).random((30, 20)) < 0.4
    ds = Dataset([ImageRecord("a.png", 20, 30)], [ObjectRecord("a.png", "mask", "cat", encode_rle(m))],
                 ["cat"])
    write(ds, tmp_path / "a.json")
    np.testing.assert_array_equal(decode_rle(read(tmp_path / "a.json").objects[0].geometry), m)



@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.fixed_dictionaries(
    {"id": st.integers(-3, 40) | st.sampled_from(["x", True, 2.0]),
     "file_name": st.sampled_from(["a.png", "b.png", "c/d.png", "e.jpg", ""]),
     "width": st.sampled_from([64, 1, 0, -5, 10.0, 2**60, True]), "height": st.sampled_from([48, 3, 7.5, 5])},
    optional={"license": st.integers(0, 3), "url": st.text(max_size=3), "score": st.floats()}), max_size=5))
@example([{"id": 1, "file_name": "a.png", "width": 64, "height": 48, "license": 2},
          {"id": 7, "file_name": "c/d.png", "width": 1, "height": 3}])
def test_the_header_reads_a_clean_images_list_in_columns_as_record_by_record(images):
    """The header's column path (``_plain_images``) takes only lists the record path finds nothing
    wrong with, and gives the same records, ids and places."""
    from labkit._util.checks import json_problems
    from labkit.formats._base import Problems
    from labkit.formats.coco import _IMAGE_KEYS, _Header

    extra = [{k: v for k, v in im.items() if k not in _IMAGE_KEYS} for im in images]
    fast, slow = object.__new__(_Header), object.__new__(_Header)
    fast.invalid, slow.invalid = set(), set()
    clean = not json_problems(extra, "image")
    pr = Problems("f.json")
    slow._images(pr, images, extra, clean)
    if clean and fast._plain_images(images, extra):
        assert not pr
        assert (fast.images, fast.by_id, fast.position) == (slow.images, slow.by_id, slow.position)
    if images == [{"id": 1, "file_name": "a.png", "width": 64, "height": 48, "license": 2},
                  {"id": 7, "file_name": "c/d.png", "width": 1, "height": 3}]:
        assert fast.images[0].attributes == {"license": 2}  # the example did take the column path
