"""Import and export through a project: whole-file validation, one transaction, faithful round trips."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labkit import ImportProblem, Project
from labkit.formats import FormatError
from labkit.geometry import decode_rle, encode_rle, geometry_to_mask
from tests.store.helpers import snapshot

DATA = Path(__file__).parents[1] / "formats" / "data"


def _mask(h=30, w=40, box=(5, 5, 20, 15)):
    m = np.zeros((h, w), bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    m[8:10, 8:10] = False  # a hole
    return m


def _coco(**over):
    rle = encode_rle(_mask())
    doc = {
        "images": [{"id": 10, "file_name": "img_0.png", "width": 40, "height": 30},
                   {"id": 11, "file_name": "img_1.png", "width": 40, "height": 30}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 1, "bbox": [1, 2, 10, 8], "area": 80, "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 2, "segmentation": [[2, 2, 20, 2, 20, 20, 2, 20]],
             "bbox": [2, 2, 18, 18], "area": 324, "iscrowd": 0},
            {"id": 3, "image_id": 11, "category_id": 1, "segmentation": rle, "bbox": [5, 5, 15, 10],
             "area": 146, "iscrowd": 0},
        ],
    }
    doc.update(over)
    return doc


def _write(tmp_path, doc, name="coco.json"):
    f = tmp_path / name
    f.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return f


def test_coco_import_then_export_loads_in_pycocotools(project, tmp_path):
    from pycocotools.coco import COCO

    s = project.import_annotations(_write(tmp_path, _coco()), format="coco", annotator="vendor")
    assert s.annotations_added == 3 and s.annotators_added == ["vendor"]
    df = project.annotations()
    assert df["kind"].tolist() == ["box", "polygon", "mask"]
    assert (df["source"] == "import:coco").all() and (df["worker"] == "vendor").all()
    assert df.iloc[0]["geometry"] == {"x0": 1.0, "y0": 2.0, "x1": 11.0, "y1": 10.0}
    np.testing.assert_array_equal(decode_rle(df.iloc[2]["geometry"]), _mask())
    out = project.export(tmp_path / "out.json", format="coco")
    coco = COCO(str(out))
    by_name = {im["file_name"]: im["id"] for im in coco.dataset["images"]}
    for (_, row), ann in zip(df.iterrows(), coco.dataset["annotations"]):
        if row["kind"] in ("polygon", "mask"):
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool),
                                          geometry_to_mask(row["kind"], row["geometry"], 30, 40))
        assert ann["image_id"] == by_name[f"img_{row['task'] - 1}.png"]
    assert project.audit_log()["action"].tolist()[-2:] == ["import_annotations", "export"]


@pytest.mark.parametrize("doc, error, msg", [
    ('{"images": [{"id": 1, "file_name": "img_0.png"', FormatError, "(?i)json"),
    (_coco(annotations=[{"id": 1, "image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1]}]), FormatError,
     "annotations\\[0\\].*image_id 99"),
    (_coco(annotations=[{"id": 1, "image_id": 10, "category_id": 1, "segmentation": [[1, 1, 5, 5]]}]),
     FormatError, "annotations\\[0\\].*(2 points|at least 3)"),
    (_coco(images=[{"id": 10, "file_name": "nowhere.png", "width": 40, "height": 30}],
           annotations=[{"id": 1, "image_id": 10, "category_id": 1, "bbox": [0, 0, 1, 1]}]), ImportProblem,
     "nowhere.png.*not in the project"),
    (_coco(categories=[{"id": 1, "name": "cow"}], annotations=[
        {"id": 1, "image_id": 10, "category_id": 1, "bbox": [0, 0, 1, 1]}]),
     ImportProblem, "unknown class 'cow'.*\n.*project.add_classes\\(\\['cow'\\]\\).*add_classes=True"),
    (_coco(annotations=[{"id": 1, "image_id": 10, "category_id": 1, "bbox": [30, 0, 20, 5]}]), ImportProblem,
     "annotations\\[0\\].*outside"),
    (_coco(images=[{"id": 10, "file_name": "img_0.png", "width": 640, "height": 480}], annotations=[]),
     ImportProblem, "640x480 in the file but 40x30"),
])
def test_bad_files_leave_the_project_unchanged(project, tmp_path, doc, error, msg):
    project.add_annotation(image=1, kind="label", label="cat", annotator="ana")
    before = snapshot(project)
    with pytest.raises(error, match=msg) as info:
        project.import_annotations(_write(tmp_path, doc), format="coco", annotator="vendor")
    assert "coco.json" in str(info.value)
    assert snapshot(project) == before


def test_truncated_image_in_images_dir_rejected(project, tmp_path):
    d = tmp_path / "more"
    d.mkdir()
    full = tmp_path / "full.png"
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(full)
    (d / "new.png").write_bytes(full.read_bytes()[:60])
    doc = _coco(images=[{"id": 1, "file_name": "new.png", "width": 40, "height": 30}],
                annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4]}])
    before = snapshot(project)
    with pytest.raises(ImportProblem, match="new.png"):
        project.import_annotations(_write(tmp_path, doc), format="coco", annotator="v", images_dir=d)
    assert snapshot(project) == before


def test_add_classes_option(project, tmp_path):
    doc = _coco(categories=[{"id": 1, "name": "cow"}],
                annotations=[{"id": 1, "image_id": 10, "category_id": 1, "bbox": [0, 0, 1, 1]}])
    project.import_annotations(_write(tmp_path, doc), format="coco", annotator="v", add_classes=True)
    assert project.classes()[-1] == "cow"


def test_aihub_seed_record_roundtrips_through_a_project(location, tmp_path):
    original = json.loads((DATA / "aihub_example.json").read_text())
    name = original["Annotations"]["name"]
    src = tmp_path / "aihub"
    src.mkdir()
    shutil.copy(DATA / "aihub_example.json", src / "record.json")
    imgs = tmp_path / "aihub_images"
    imgs.mkdir()
    Image.fromarray(np.zeros((720, 1280, 3), np.uint8)).save(imgs / name)
    labels = [a["label"] for a in original["Annotations"]["annotations"]]
    p = Project.create(location, classes=sorted(set(labels)), workdir=tmp_path / "w")
    s = p.import_annotations(src, format="aihub", annotator="nia", images_dir=imgs)
    assert s.images_added == 1 and s.annotations_added == 6
    img = p.images().iloc[0]
    assert img["subject"] == "001"
    assert {k: img["attributes"][k] for k in ("inst", "image", "condition", "posture")} == \
        {"inst": "S", "image": "rgb", "condition": "F", "posture": "D"}
    assert img["attributes"]["pose"]["head"] == [-24.6848, 6.2168, -0.4095]
    ann = p.annotations()
    assert ann["kind"].tolist() == ["ellipse", "ellipse", "polygon", "polygon", "point", "point"]
    assert ann.iloc[0]["geometry"] == {"cx": 1021.5, "cy": 292.5, "rx": 12.5, "ry": 10.5, "angle": 0.0}
    out = p.export(tmp_path / "exported", format="aihub")
    files = sorted(out.glob("*.json"))
    assert len(files) == 1
    assert json.loads(files[0].read_text()) == original
    p.close()


def test_labelstudio_annotators_come_from_the_file(project, tmp_path):
    def rect(x, y, label):
        return {"type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": 40,
                "original_height": 30, "value": {"x": x, "y": y, "width": 25, "height": 20, "rotation": 0,
                                                 "rectanglelabels": [label]}}
    tasks = [{"id": 1, "data": {"image": "/data/upload/1/0a1b2c3d-img_0.png"}, "annotations": [
        {"id": 1, "completed_by": 1, "result": [rect(10, 10, "cat"),
                                                {"type": "choices", "from_name": "c", "to_name": "image",
                                                 "value": {"choices": ["dog"]}}]},
        {"id": 2, "completed_by": {"id": 2, "email": "ben@lab"}, "result": [rect(12, 10, "cat")]}]}]
    s = project.import_annotations(_write(tmp_path, tasks, "ls.json"), format="labelstudio")
    assert s.annotations_added == 3
    df = project.annotations()
    assert sorted(set(df["worker"])) == sorted(s.annotators_added) and len(s.annotators_added) == 2
    box = df[df["kind"] == "box"].iloc[0]["geometry"]
    assert box == pytest.approx({"x0": 4.0, "y0": 3.0, "x1": 14.0, "y1": 9.0})
    assert df[df["kind"] == "label"]["label"].tolist() == ["dog"]


def _populate(p):
    mask = _mask()
    p.add_annotation(image=1, kind="box", label="cat", annotator="ana", geometry=[1, 2, 11, 10])
    p.add_annotation(image=1, kind="polygon", label="dog", annotator="ana",
                     geometry=[[2, 2], [20, 2], [20, 20], [2, 20]])
    p.add_annotation(image=2, kind="mask", label="bird", annotator="ana", geometry=mask)
    p.add_annotation(image=2, kind="ellipse", label="cat", annotator="ana",
                     geometry={"cx": 20, "cy": 15, "rx": 6, "ry": 4, "angle": 0})
    p.add_annotation(image=3, kind="point", label="bird", annotator="ana", geometry=[7.5, 8.5])
    p.add_annotation(image=3, kind="label", label="dog", annotator="ana")


def _objects(p):
    df = p.annotations()
    return sorted((int(r.task), r.kind, r.label, json.dumps(r.geometry, sort_keys=True)) for r in df.itertuples())


@pytest.mark.parametrize("fmt, kinds, options", [
    ("coco", {"box", "polygon", "mask", "point"}, {}),
    ("cvat", {"box", "polygon", "mask", "ellipse", "point", "label"}, {}),
    ("labelstudio", {"box", "polygon", "mask", "ellipse", "point", "label"}, {}),
    ("aihub", {"polygon", "ellipse", "point"}, {}),
    ("yolo", {"box"}, {"task": "detect"}),
])
def test_project_roundtrip(project, tmp_path, image_files, fmt, kinds, options):
    _populate(project)
    out = project.export(tmp_path / f"out_{fmt}", format=fmt, kinds=sorted(kinds), **options)
    q = Project.create(tmp_path / "other", classes=project.classes())
    q.add_images(image_files)
    q.import_annotations(out, format=fmt, annotator="ana")
    want = [o for o in _objects(project) if o[1] in kinds]
    got = _objects(q)
    assert [o[:3] for o in got] == [o[:3] for o in want]
    for (_, kind, _, g1), (_, _, _, g2) in zip(got, want):
        a, b = json.loads(g1), json.loads(g2)
        if kind == "mask":
            np.testing.assert_array_equal(decode_rle(a), decode_rle(b))
        elif a is not None:
            np.testing.assert_allclose(np.array(_flat(a)), np.array(_flat(b)), atol=1e-3)


def _flat(g):
    if isinstance(g, dict):
        return [v for k in sorted(g) for v in _flat(g[k])]
    if isinstance(g, list):
        return [v for x in g for v in _flat(x)]
    return [g]
