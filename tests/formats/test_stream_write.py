"""Streamed writing: a dataset given a batch at a time is written exactly as the whole dataset.

``project.export`` hands the writers marked ``streams`` the project's objects a batch at a
time (``Dataset.batches``, ``Dataset.image_batches``); these tests hold every such writer
to the bytes, warnings and errors of the same dataset given whole.
"""
from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.formats import Dataset, ImageRecord, ObjectRecord, get_writer
from labkit.formats._base import image_groups, writer_streams
from labkit.formats._jsonout import Items, json_out
from tests.formats.helpers import datasets

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
IDS = st.one_of(st.none(), st.integers(0, 5), st.sampled_from(["a", "b", 1.5, True]))
KINDS = ("box", "polygon", "mask", "point", "label", "ellipse")
#: format -> (file or folder name, writer options to try)
STREAMING = {"coco": ("c.json", [{}, {"indent": 2}]), "labelstudio": ("l.json", [{}, {"indent": 1}]),
             "yolo": ("y", [{}, {"task": "segment"}]), "aihub": ("a", [{}]), "cvat": ("x.xml", [{}])}


@st.composite
def provenanced(draw):
    """Generated datasets with COCO, CVAT and Label Studio ids in provenance (repeated, missing, odd types),
    objects in any order."""
    ds = draw(datasets(KINDS, parts=True, scores=True, attributes=True, workers=True))
    objs = []
    for o in ds.objects:
        prov = {}
        if draw(st.booleans()):
            prov["coco"] = {k: draw(IDS) for k in ("id", "image_id", "category_id") if draw(st.booleans())}
        if draw(st.booleans()):  # polygon parts of a group, or a fresh group after the largest
            prov["cvat"] = {"attrs": {"group_id": draw(st.sampled_from(["", "0", "3", "12", "x"]))}}
        if draw(st.booleans()):
            prov["labelstudio"] = {k: draw(IDS) for k in ("task_id", "annotation_id") if draw(st.booleans())}
        objs.append(ObjectRecord(o.image_key, o.kind, o.label, o.geometry, o.score, o.worker, prov))
    order = draw(st.permutations(range(len(objs))))
    return Dataset(ds.images, [objs[i] for i in order], ds.classes)


def streamed(ds: Dataset, cuts: list[int]) -> Dataset:
    """``ds`` as a streamed export gives it: objects in batches cut at ``cuts``, and image by image."""
    def split(objs: list[ObjectRecord]) -> list[list[ObjectRecord]]:
        ends = sorted({min(c, len(objs)) for c in cuts} | {len(objs)})
        return [objs[a:b] for a, b in zip([0, *ends], ends) if b > a]
    by_image = [o for _, objs in image_groups(ds) for o in objs]
    runs, batch = [], []
    for _, objs in image_groups(ds):  # runs of whole images, as the store's by_image batches
        batch += objs
        if len(batch) >= (cuts[0] if cuts else 1):
            runs.append(batch)
            batch = []
    runs += [batch] if batch else []
    assert [o for b in runs for o in b] == by_image
    return Dataset(ds.images, [], ds.classes, batches=lambda: iter(split(ds.objects)),
                   image_batches=lambda: iter(runs))


def written(name: str, ds: Dataset, target: str, options: dict) -> tuple[dict, list[str], str | None]:
    """The files a writer wrote (name -> bytes), its warnings and its error."""
    with tempfile.TemporaryDirectory() as d:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            error = None
            try:
                get_writer(name)(ds, Path(d) / target, **options)
            except ValueError as exc:
                error = str(exc).replace(d, "<d>")
        files = {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(Path(d).rglob("*")) if p.is_file()}
        return files, [str(w.message) for w in caught], error


def test_the_streaming_writers_are_marked():
    from labkit.formats import list_formats

    assert {n for n in list_formats() if writer_streams(get_writer(n))} == set(STREAMING)


@SETTINGS
@given(provenanced(), st.lists(st.integers(1, 6), max_size=4))
def test_streamed_writes_the_bytes_of_the_whole(ds, cuts):
    for name, (target, option_sets) in STREAMING.items():
        for options in option_sets:
            whole = written(name, ds, target, options)
            assert whole[0] or whole[2], name  # wrote something, or said why not
            assert written(name, streamed(ds, cuts), target, options) == whole, (name, options)


def test_coco_keeps_each_objects_own_id():
    """An object without a COCO id before one with id 0: each keeps its own, fresh ids follow the largest.

    (The whole-list writer gave the first object the id of the third.)
    """
    im = ImageRecord("a.png", 10, 10)
    box = {"x0": 1.0, "y0": 1.0, "x1": 2.0, "y1": 2.0}
    objs = [ObjectRecord("a.png", "box", "cat", box),
            ObjectRecord("a.png", "box", "cat", box, provenance={"coco": {"id": 7}}),
            ObjectRecord("a.png", "box", "cat", box, provenance={"coco": {"id": 0}}),
            ObjectRecord("a.png", "box", "cat", box, provenance={"coco": {"id": 7}})]
    files, _, error = written("coco", Dataset([im], objs, ["cat"]), "c.json", {})
    assert error is None
    assert [a["id"] for a in json.loads(files["c.json"])["annotations"]] == [8, 7, 0, 9]


def test_cvat_checks_the_whole_file_in_its_order(tmp_path):
    """A character XML cannot hold in an image and in a class name: the class (in the header) is named,
    as the whole tree's check names it, and nothing is written."""
    tag = ObjectRecord("a\x02.png", "label", "c\x01t", None)
    ds = Dataset([ImageRecord("a\x02.png", 10, 10)], [], ["c\x01t"], image_batches=lambda: iter([[tag]]))
    with pytest.raises(ValueError, match=r"<name> text holds U\+0001"):
        get_writer("cvat")(ds, tmp_path / "x.xml")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_stream_leaves_the_old_file(tmp_path):
    """An error after half the annotations were written: the file there before is untouched, no temp file left."""
    target = tmp_path / "c.json"
    target.write_text("before")
    im = ImageRecord("a.png", 10, 10)
    good = ObjectRecord("a.png", "box", "cat", {"x0": 1.0, "y0": 1.0, "x1": 2.0, "y1": 2.0})
    bad = ObjectRecord("a.png", "box", "cat", good.geometry, provenance={"coco": {"extra": {"f": float("nan")}}})
    ds = Dataset([im], [], ["cat"], batches=lambda: iter([[good] * 5, [bad]]))
    with pytest.raises(ValueError, match=r"cannot write .*c\.json: .*data\['annotations'\]\[5\]\['f'\] is nan"):
        get_writer("coco")(ds, target)
    ls = Dataset([ImageRecord("a.png", 10, 10), ImageRecord("b.png")], [], ["cat"],
                 image_batches=lambda: iter([[good], [ObjectRecord("b.png", "box", "cat", good.geometry)]]))
    with pytest.raises(ValueError, match=r"1 image\(s\) with regions have no width/height, e.g. \['b.png'\]"):
        get_writer("labelstudio")(ls, target)
    assert target.read_text() == "before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


def test_image_groups_refuse_objects_out_of_image_order():
    ims = [ImageRecord("a.png", 10, 10), ImageRecord("b.png", 10, 10)]
    o = {k: ObjectRecord(k, "label", "cat", None) for k in ("a.png", "b.png")}
    ok = Dataset(ims, [], ["cat"], image_batches=lambda: iter([[o["a.png"]], [o["b.png"]]]))
    assert [(im.key, len(objs)) for im, objs in image_groups(ok)] == [("a.png", 1), ("b.png", 1)]
    late = Dataset(ims, [], ["cat"], image_batches=lambda: iter([[o["b.png"]], [o["a.png"]]]))
    with pytest.raises(ValueError, match="object for image 'a.png' which is not in dataset.images"):
        list(image_groups(late))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), JSON, max_size=3), st.lists(JSON, max_size=4), st.sampled_from([None, 0, 1, 3]))
def test_json_out_writes_what_json_dumps_writes(head, items, indent):
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "doc.json"
        with json_out(target, indent=indent) as out:
            out.object([*head.items(), ("zz_items", Items(out.encode(v, 2) for v in items))])
        doc = {**head, "zz_items": items}
        assert target.read_bytes() == json.dumps(doc, indent=indent, ensure_ascii=False).encode()


def test_cvat_fresh_groups_follow_the_largest(tmp_path):
    """Multi-part polygons without a group get the numbers after the largest group id of any object."""
    import xml.etree.ElementTree as ET

    two = {"parts": [{"points": [[1, 1], [4, 1], [1, 4]]}, {"points": [[6, 6], [9, 6], [6, 9]]}]}
    objs = [ObjectRecord("b.png", "polygon", "cat", two),
            ObjectRecord("a.png", "box", "cat", {"x0": 1.0, "y0": 1.0, "x1": 2.0, "y1": 2.0},
                         provenance={"cvat": {"attrs": {"group_id": "5"}}}),
            ObjectRecord("b.png", "polygon", "cat", two)]
    ims = [ImageRecord("a.png", 10, 10), ImageRecord("b.png", 10, 10)]
    for ds in [Dataset(ims, objs, ["cat"]), streamed(Dataset(ims, objs, ["cat"]), [1])]:
        get_writer("cvat")(ds, tmp_path / "x.xml")
        groups = [el.get("group_id") for el in ET.parse(tmp_path / "x.xml").iter("polygon")]
        assert groups == ["6", "6", "7", "7"]
        assert [el.get("group_id") for el in ET.parse(tmp_path / "x.xml").iter("box")] == ["5"]
