"""A hostile vendor's file: the findings of the security review, one test each.

1. Names that climb out of ``images_dir`` (``../``, absolute paths, links) are refused.
2. Malformed files raise labkit errors naming the file and record, on the command line too.
3. Importers apply the API's rules: storable JSON, valid class names (one function).
4. Resource limits (points per polygon, image pixels, nesting) are enforced and configurable.
5. Silent quirks (duplicate ids, merged categories, non-string names) are errors.
6. A project with images inside and outside its folder exports.

Every failure leaves the project as it was (``snapshot``).
"""
from __future__ import annotations

import json
import re
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from labkit import ImageError, ImportProblem, Project, ProjectError
from labkit.formats import Dataset, FormatError, ImageRecord, ObjectRecord, get_reader, get_writer, limits
from labkit.geometry import GeometryError
from tests.formats.hostile import base_doc, workspace, write_doc
from tests.store.helpers import snapshot


@pytest.fixture
def ws(tmp_path):
    return workspace(tmp_path)


@pytest.fixture
def proj(ws, tmp_path):
    """A folder project with classes cat/dog and the workspace's five images."""
    p = Project.create(tmp_path / "proj", classes=["cat", "dog"])
    p.add_images(ws.images)
    yield p
    p.close()


def _import(p, ws, fmt, doc, folder, **kw):
    path = write_doc(fmt, doc, folder)
    return p.import_annotations(path, format=fmt, annotator=kw.pop("annotator", "vendor"), images_dir=ws.new, **kw)


def _refused(p, ws, fmt, doc, tmp_path, error, match, **kw):
    """Import ``doc``: it must raise ``error`` matching ``match``, naming the file, and change nothing."""
    before = snapshot(p)
    with pytest.raises(error, match=match) as info:
        _import(p, ws, fmt, doc, tmp_path / "src", **kw)
    assert str(tmp_path / "src") in str(info.value)
    assert snapshot(p) == before
    return info.value


def _image_paths(p):
    return [p.store.ctx.resolve(s).resolve() for s in p.images()["path"]]


# --- 1. path traversal ----------------------------------------------------------------

def _coco_named(name):
    doc = base_doc("coco")
    doc["images"][1]["file_name"] = name
    return doc


def _cvat_named(name):
    return {"annotations.xml": base_doc("cvat")["annotations.xml"].replace('name="new_0.png"', f'name="{name}"')}


def _aihub_named(name):
    doc = base_doc("aihub")
    doc["b.json"]["Annotations"]["name"] = name
    return doc


@pytest.mark.parametrize("fmt, named", [("coco", _coco_named), ("cvat", _cvat_named), ("aihub", _aihub_named)])
@pytest.mark.parametrize("name", ["../secret/secret.png", "{absolute}", "..\\secret\\secret.png",
                                  "sub/../../secret/secret.png", "./../secret/secret.png"])
def test_a_name_outside_images_dir_is_refused(proj, ws, tmp_path, fmt, named, name):
    name = name.format(absolute=ws.secret)
    _refused(proj, ws, fmt, named(name), tmp_path, ImportProblem, r"points outside the images folder")
    assert ws.secret.resolve() not in _image_paths(proj)


@pytest.mark.parametrize("fmt, named", [("coco", _coco_named), ("cvat", _cvat_named), ("aihub", _aihub_named)])
def test_a_link_to_a_file_outside_images_dir_is_refused(proj, ws, tmp_path, fmt, named):
    (ws.new / "innocent.png").symlink_to(ws.secret)
    _refused(proj, ws, fmt, named("innocent.png"), tmp_path, ImportProblem, r"is a link to .*secret\.png, outside")
    assert ws.secret.resolve() not in _image_paths(proj)


def test_labelstudio_names_no_file_outside(proj, ws, tmp_path):
    """Label Studio keys are file names (its own folders are dropped), and ``..`` names no image."""
    doc = base_doc("labelstudio")
    doc[1]["data"]["image"] = "/data/local-files/?d=.."
    _refused(proj, ws, "labelstudio", doc, tmp_path, FormatError, r"tasks\[1\]\.data: image .* names no image file")
    doc[1]["data"]["image"] = "/data/local-files/?d=../../secret/new_0.png"  # the file name only: new/new_0.png
    _import(proj, ws, "labelstudio", doc, tmp_path / "ok")
    assert ws.new.joinpath("new_0.png").resolve() in _image_paths(proj)


@pytest.mark.parametrize("which", ["labels/img_2.txt", "data.yaml"])
def test_yolo_reads_no_link_out_of_its_folder(proj, ws, tmp_path, which):
    src = write_doc("yolo", base_doc("yolo"), tmp_path / "src")
    (src / which).unlink(missing_ok=True)
    (src / which).symlink_to(ws.secret)
    with pytest.raises(FormatError, match=rf"{which}: is a link to .*secret\.png, outside"):
        proj.import_annotations(src, format="yolo", annotator="v")


def test_aihub_reads_no_link_out_of_its_folder(proj, ws, tmp_path):
    src = write_doc("aihub", base_doc("aihub"), tmp_path / "src")
    (src / "c.json").symlink_to(ws.secret)
    with pytest.raises(FormatError, match=r"c\.json: is a link to .*secret\.png, outside"):
        proj.import_annotations(src, format="aihub", annotator="v", images_dir=ws.new)


# --- 2. raw exceptions become labkit errors --------------------------------------------

def _coco_with(**change):
    doc = base_doc("coco")
    for key, value in change.items():
        record, field = key.split("__")
        kind, i = record.rsplit("_", 1)
        doc[kind][int(i)][field] = value
    return doc


HOSTILE_COCO = [
    pytest.param(_coco_with(images_1__width=int("9" * 400)), r"images\[1\]: width is an integer of 400 digits",
                 id="400-digit width"),
    pytest.param(_coco_with(images_1__file_name={}), r"images\[1\]: file_name is \{\}; expected", id="file_name {}"),
    pytest.param(_coco_with(images_1__file_name=["a.png"]), r"images\[1\]: file_name is \['a.png'\]",
                 id="file_name list"),
    pytest.param('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}", r"nested too deeply", id="100000 brackets"),
    pytest.param(json.dumps(_coco_with(images_1__extra="DEEP")).replace('"DEEP"', "[" * 900 + "]" * 900),
                 r"images\[1\]: image\['extra'\]\[0\].*\.\.\..*\[0\] is nested more than 100 levels deep",
                 id="900 levels"),
    pytest.param(json.dumps(base_doc("coco")).replace('"cat"', '"c\u00e4t"').encode("latin-1"),  # not UTF-8
                 r"not UTF-8 text: byte 0xe4 at offset \d+ \(line 1\)", id="bad UTF-8"),
    pytest.param('{"images": [], "categories": [], "annotations": [{"id": ' + "1" * 5000 + "}]}",
                 r"invalid JSON: Exceeds the limit", id="5000-digit id"),
    pytest.param(_coco_with(annotations_0__bbox=[1, 2, 10 ** 400, 8]), r"annotations\[0\]: bbox\[2\] is an integer",
                 id="huge bbox"),
    pytest.param(_coco_with(annotations_2__segmentation={"size": [10 ** 400, 1], "counts": "0"}),
                 r"annotations\[2\]: segmentation size\[0\] is an integer of 401 digits", id="huge RLE size"),
    pytest.param(_coco_with(annotations_2__segmentation={"size": [70_000, 70_000], "counts": [4_900_000_000]}),
                 r"annotations\[2\]: the image size 70000x70000 has 4,900,000,000 pixels", id="RLE run over uint32"),
    pytest.param(_coco_with(annotations_2__segmentation={"size": [30, 40], "counts": "o" * 200_000 + "0"}),
                 r"annotations\[2\]: segmentation counts is not a COCO compressed RLE", id="RLE quadratic decode"),
]


@pytest.mark.parametrize("doc, match", HOSTILE_COCO)
def test_malformed_coco_is_a_format_error(proj, ws, tmp_path, doc, match):
    t = time.perf_counter()
    _refused(proj, ws, "coco", doc, tmp_path, FormatError, match)
    assert time.perf_counter() - t < 10


def test_malformed_files_on_the_command_line(proj, ws, tmp_path):
    """No traceback: one message naming the file and the record, exit status 1."""
    from labkit.cli import main

    before = snapshot(proj)
    for i, (doc, match) in enumerate([(_coco_with(images_1__width=int("9" * 400)), "width is an integer"),
                                      (_coco_with(images_1__file_name={}), "file_name is"),
                                      ('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply")]):
        path = write_doc("coco", doc, tmp_path / f"src{i}")
        result = CliRunner().invoke(main, ["import", "-P", str(tmp_path / "proj"), str(path), "--format", "coco",
                                           "--annotator", "v"], env={"LABKIT_USER": proj.user})
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        assert str(path) in result.output and match in result.output and "Traceback" not in result.output
    assert snapshot(proj) == before


def test_labelstudio_result_type_or_id_that_is_a_list(proj, ws, tmp_path):
    doc = base_doc("labelstudio")
    doc[0]["annotations"][0]["result"][0]["type"] = ["rectanglelabels"]
    _refused(proj, ws, "labelstudio", doc, tmp_path, FormatError,
             r"tasks\[0\]\.annotations\[0\]\.result\[0\]: type is \['rectanglelabels'\]; expected")
    doc = base_doc("labelstudio")
    doc[0]["annotations"][0]["result"][1]["id"] = ["r2"]
    _refused(proj, ws, "labelstudio", doc, tmp_path, FormatError,
             r"tasks\[0\]\.annotations\[0\]\.result\[1\]: id is \['r2'\]; expected a region id")


def test_cvat_attribute_without_a_name(proj, ws, tmp_path):
    doc = base_doc("cvat")
    doc["annotations.xml"] = doc["annotations.xml"].replace('<attribute name="visible">', "<attribute>")
    _refused(proj, ws, "cvat", doc, tmp_path, FormatError,
             r"image\[0\] \(img_0\.png\)/box\[0\]: attribute\[0\] has no name")


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width x height`` (a few bytes on disk: what a decompression bomb looks like to PIL)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_an_image_error(proj, ws, tmp_path):
    from labkit.cli import main

    bomb = _png_header(tmp_path / "bomb.png", 30_000, 30_000)
    before = snapshot(proj)
    with pytest.raises(ImageError, match=r"bomb\.png: the image has 900,000,000 pixels, more than labkit's limit "
                                         r"of 89,478,485 \(limits\.max_image_pixels\)"):
        proj.add_images([bomb])
    result = CliRunner().invoke(main, ["images", "add", "-P", str(tmp_path / "proj"), str(bomb)],
                                env={"LABKIT_USER": proj.user})
    assert result.exit_code == 1 and "bomb.png" in result.output and "Traceback" not in result.output
    assert snapshot(proj) == before


# --- 3. the API's validation, for every entry point ------------------------------------

@pytest.mark.parametrize("where", ["annotation", "image"])
def test_nan_in_attributes_or_provenance_is_refused(project, ws, tmp_path, where):
    """``NaN`` is not JSON: stored, it would make the COCO export write a file no JSON parser reads."""
    doc = base_doc("coco")
    doc["annotations" if where == "annotation" else "images"][1]["foo"] = float("nan")
    record = r"annotations\[1\]: annotation" if where == "annotation" else r"images\[1\]: image"
    project.add_images([ws.new / "new_0.png"])
    before = snapshot(project)
    with pytest.raises(FormatError, match=rf"{record}\['foo'\] is nan"):
        _import(project, ws, "coco", doc, tmp_path / "src")
    assert snapshot(project) == before


@pytest.mark.parametrize("name, why", [
    ("", "is blank"), ("   ", "is blank"), ("a\x00b", "holds control character U\\+0000"),
    ("a\x01b", "holds control character U\\+0001"), ("line\nbreak", "holds control character U\\+000A"),
    ("x" * 10_000, "has 10000 characters; the limit is 256"), ("\ud800", "holds a lone surrogate"),
])
def test_bad_class_names_are_refused_everywhere(project, ws, tmp_path, name, why):
    """One rule for ``Project.create``, ``add_classes`` and an import with ``add_classes=True``, on both backends."""
    before = snapshot(project)
    with pytest.raises(ProjectError, match=why):
        project.add_classes([name])
    with pytest.raises(ProjectError, match=why):
        Project.create(tmp_path / "other", classes=["cat", name])
    for fmt, doc in _named_class(name):
        with pytest.raises((FormatError, ImportProblem), match=why):
            _import(project, ws, fmt, doc, tmp_path / f"src_{fmt}", add_classes=True)
    assert snapshot(project) == before
    assert project.classes() == ["cat", "dog", "bird"]


def _named_class(name):
    coco = base_doc("coco")
    coco["categories"][1]["name"] = name
    ls = base_doc("labelstudio")
    ls[0]["annotations"][0]["result"][1]["value"]["polygonlabels"] = [name]
    aihub = base_doc("aihub")
    aihub["a.json"]["Annotations"]["annotations"][1]["label"] = name
    out = [("coco", coco), ("labelstudio", ls), ("aihub", aihub)]
    if all(c >= " " for c in name) and not any(0xD800 <= ord(c) <= 0xDFFF for c in name):  # XML can hold it
        cvat = base_doc("cvat")["annotations.xml"].replace("<name>dog</name>", f"<name>{name}</name>")
        out.append(("cvat", {"annotations.xml": cvat.replace('label="dog"', f'label="{name}"')}))
    return out


def test_importer_checks_new_classes_with_the_store_rule(proj, ws, tmp_path):
    """A reader that lets a name through (none does today) still meets the store's rule at import."""
    from labkit._util.checks import name_problem
    from labkit.services.interchange import import_annotations

    def reader(path):
        return Dataset(images=[ImageRecord(key="img_0.png")],
                       objects=[ObjectRecord(image_key="img_0.png", kind="label", label="a\x07b", geometry=None)],
                       classes=[])

    from labkit.formats import FORMATS

    FORMATS["_test"] = (reader, None)
    try:
        before = snapshot(proj)
        with pytest.raises(ImportProblem, match="cannot add class: " + re.escape(name_problem("a\x07b"))):
            import_annotations(proj, tmp_path, format="_test", annotator="v", add_classes=True)
        assert snapshot(proj) == before
    finally:
        del FORMATS["_test"]


def test_names_the_file_gives_annotators_and_subjects_follow_the_rules(proj, ws, tmp_path):
    ls = base_doc("labelstudio")
    ls[0]["annotations"][0]["completed_by"] = {"email": "x" * 300}
    _refused(proj, ws, "labelstudio", ls, tmp_path, FormatError, r"completed_by 'x+\.\.\. has 300 characters",
             annotator=None)
    aihub = base_doc("aihub")
    aihub["a.json"]["Annotations"]["metaid"] = "00\x001"
    _refused(proj, ws, "aihub", aihub, tmp_path, FormatError, r"metaid \(the subject id\) '00\\x001' holds control")


def test_writers_refuse_what_their_format_cannot_hold(tmp_path):
    """Data stored before these checks: the writers say what is wrong instead of writing a broken file."""
    im = ImageRecord(key="a.png", width=10, height=10)
    box = {"x0": 1.0, "y0": 1.0, "x1": 2.0, "y1": 2.0}
    nan = Dataset([im], [ObjectRecord("a.png", "box", "cat", box, provenance={"coco": {"extra": {"f": float("nan")}}})],
                  ["cat"])
    with pytest.raises(ValueError, match=r"cannot write .*coco\.json: .*\['f'\] is nan"):
        get_writer("coco")(nan, tmp_path / "coco.json")
    ctrl = Dataset([im], [ObjectRecord("a.png", "box", "a\x01b", box)], ["a\x01b"])
    with pytest.raises(ValueError, match=r"cannot write .*: <name> text holds U\+0001, a character XML cannot hold"):
        get_writer("cvat")(ctrl, tmp_path / "cvat.xml")


@pytest.mark.postgres
def test_postgresql_gets_labkit_errors_not_data_errors(pg_url, ws, tmp_path):
    """The files that ended in a raw DataError on PostgreSQL (NUL, 10,000 characters, NaN)."""
    p = Project.create(pg_url, classes=["cat", "dog"], workdir=tmp_path / "w")
    p.add_images(ws.images)
    before = snapshot(p)
    for i, name in enumerate(["a\x00b", "x" * 10_000]):
        doc = base_doc("coco")
        doc["categories"][1]["name"] = name
        with pytest.raises(FormatError, match="categories\\[1\\]: name"):
            _import(p, ws, "coco", doc, tmp_path / f"src{i}", add_classes=True)
    doc = base_doc("coco")
    doc["annotations"][0]["foo"] = float("nan")
    with pytest.raises(FormatError, match="is nan"):
        _import(p, ws, "coco", doc, tmp_path / "nan", add_classes=True)
    assert snapshot(p) == before
    p.close()


# --- 4. resource limits ---------------------------------------------------------------

def test_a_million_point_polygon_is_refused_fast(proj, ws, tmp_path):
    flat = [v for i in range(1_000_000) for v in (float(i % 40), float(i % 30))]
    doc = _coco_with(annotations_1__segmentation=[flat])
    t = time.perf_counter()
    _refused(proj, ws, "coco", doc, tmp_path, FormatError,
             r"annotations\[1\]: segmentation has 1,000,000 points, more than labkit's limit of 100,000 "
             r"\(limits\.max_polygon_points\)")
    assert time.perf_counter() - t < 8  # it was 12.8 s and 670 MB; most of what is left is writing the file


@pytest.mark.parametrize("fmt", ["coco", "labelstudio", "cvat", "aihub", "yolo"])
def test_polygon_point_limit_holds_for_every_format_and_the_api(proj, ws, tmp_path, fmt):
    with limits.override(max_polygon_points=2):
        _refused(proj, ws, fmt, base_doc(fmt), tmp_path, FormatError, r"more than labkit's limit of 2")
        with pytest.raises(GeometryError, match=r"polygon has 4 points, more than labkit's limit of 2"):
            proj.add_annotation(image=1, kind="polygon", label="cat", annotator=proj.user,
                                geometry=[[1, 1], [5, 1], [5, 5], [1, 5]])
    assert limits.max_polygon_points == 100_000


def test_image_pixel_limit(proj, ws, tmp_path, monkeypatch):
    from labkit.cli import main

    big = tmp_path / "big.png"
    Image.new("1", (12_000, 12_000)).save(big)  # 144 Mpx: 1.66 GB to read as RGB
    before = snapshot(proj)
    with pytest.raises(ImageError, match=r"big\.png: the image is 12000x12000 = 144,000,000 pixels, more than "
                                         r"labkit's limit of 89,478,485"):
        proj.add_images([big])
    assert snapshot(proj) == before
    doc = base_doc("coco")
    del doc["annotations"][2]  # its 40x30 mask would be refused by the reader first
    with limits.override(max_image_pixels=1000):  # the limit also holds for an import's images_dir
        _refused(proj, ws, "coco", doc, tmp_path, ImportProblem, r"new_0\.png: the image is 40x30")
    monkeypatch.setenv("LABKIT_MAX_IMAGE_PIXELS", "1000")  # the command line's knob
    result = CliRunner().invoke(main, ["images", "add", "-P", str(tmp_path / "proj"), str(ws.new / "new_0.png")],
                                env={"LABKIT_USER": proj.user})
    assert result.exit_code == 1 and "limits.max_image_pixels" in result.output
    monkeypatch.delenv("LABKIT_MAX_IMAGE_PIXELS")
    assert proj.add_images([big], max_pixels=None) == [6]  # a genuine large image, allowed for this call


@pytest.mark.parametrize("fmt, change", [
    ("cvat", lambda d: {"annotations.xml": d["annotations.xml"].replace(
        'name="img_0.png" width="40" height="30"', 'name="img_0.png" width="100000" height="100000"')}),
    ("labelstudio", lambda d: [dict(t, annotations=[dict(a, result=[dict(r, original_width=100_000,
                                                                         original_height=100_000)
                                                                    for r in a["result"]])
                                                    for a in t["annotations"]]) for t in d]),
])
def test_declared_image_sizes_obey_the_pixel_limit(proj, ws, tmp_path, fmt, change):
    """A mask is decoded at the image size the file declares: 10^10 pixels would be 10 GB."""
    _refused(proj, ws, fmt, change(base_doc(fmt)), tmp_path, FormatError,
             r"image size 100000x100000 has 10,000,000,000 pixels, more than labkit's limit")


def test_limits_are_validated_and_read_from_the_environment(monkeypatch):
    with pytest.raises(ValueError, match=r"limits\.max_polygon_points is -1; expected a positive integer or None"):
        limits.max_polygon_points = -1
    with pytest.raises(ValueError, match=r"unknown limit 'max_points'.*did you mean 'max_polygon_points'"):
        with limits.override(max_points=5):
            pass
    monkeypatch.setenv("LABKIT_MAX_JSON_DEPTH", "none")
    assert limits.max_json_depth is None
    monkeypatch.setenv("LABKIT_MAX_JSON_DEPTH", "lots")
    with pytest.raises(ValueError, match="environment variable LABKIT_MAX_JSON_DEPTH='lots'"):
        limits.as_dict()


# --- 5. silent quirks --------------------------------------------------------------------

@pytest.mark.parametrize("fmt, change, match", [
    ("coco", lambda d: d["annotations"].append(dict(d["annotations"][0])),
     r"annotations\[4\]: duplicate annotation id 1 \(also annotations\[0\]\); COCO annotation ids must be unique"),
    ("coco", lambda d: d["categories"].append({"id": 3, "name": "cat"}),
     r"categories\[2\]: name 'cat' is also the name of categories\[0\] \(id 1\)"),
    ("coco", lambda d: d["categories"].append({"id": 3, "name": 5}),
     r"categories\[2\]: name 5 is int; expected a string"),
    ("coco", lambda d: d["categories"].append({"id": 3, "name": None}),
     r"categories\[2\]: name None is NoneType; expected a string"),
    ("yolo", lambda d: d.update({"data.yaml": "names: [cat, null]\n"}), r"data\.yaml names\[1\]: class name None is"),
    ("yolo", lambda d: d.update({"data.yaml": "names: [cat, cat]\n"}),
     r"data\.yaml names\[1\]: class name 'cat' is also names\[0\]"),
    ("cvat", lambda d: d.update({"annotations.xml": d["annotations.xml"].replace('name="new_0.png"',
                                                                                  'name="img_0.png"')}),
     r"image\[1\]: duplicate image name 'img_0.png' \(also image\[0\]\)"),
])
def test_quirks_are_errors(proj, ws, tmp_path, fmt, change, match):
    doc = base_doc(fmt)
    change(doc)
    _refused(proj, ws, fmt, doc, tmp_path, FormatError, match)


def test_yolo_integer_names_are_names_as_in_ultralytics(tmp_path):
    src = write_doc("yolo", dict(base_doc("yolo"), **{"data.yaml": "names: {0: 5, 1: dog}\n"}), tmp_path / "src")
    ds = get_reader("yolo")(src, image_sizes={"img_0.png": (40, 30), "img_1.png": (40, 30)})
    assert ds.classes == ["5", "dog"]


# --- 6. export of images inside and outside the project folder --------------------------

def test_export_with_images_inside_and_outside_the_project_folder(tmp_path):
    root = tmp_path / "proj"
    p = Project.create(root, classes=["cat"])
    inside, outside = root / "data" / "a.png", tmp_path / "elsewhere" / "a.png"
    for i, f in enumerate([inside, outside]):
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((30, 40, 3), i * 50, np.uint8)).save(f)
    p.add_images([inside, outside])
    assert sorted(p.images()["path"].map(lambda s: Path(s).is_absolute())) == [False, True]
    p.add_annotation(image=1, kind="box", label="cat", annotator=p.user, geometry=[1, 1, 5, 5])
    out = p.export(tmp_path / "out.json", format="coco", images=True)
    names = sorted(im["file_name"] for im in json.loads(out.read_text())["images"])
    assert len(set(names)) == 2 and all(n.endswith("a.png") for n in names)
    assert sorted(f.relative_to(tmp_path / "images").as_posix() for f in (tmp_path / "images").rglob("*.png")) == names
    p.close()


@pytest.mark.parametrize("geometry, kind", [([10**400, 0, 1, 1], "box"), ([[0, 0], [10**400, 0], [1, 1]], "polygon")])
def test_huge_numbers_through_the_api_are_geometry_errors(project, geometry, kind):
    state = snapshot(project)
    with pytest.raises(GeometryError, match="too large to be a pixel coordinate"):
        project.add_annotation(image=1, kind=kind, label="cat", annotator="ana", geometry=geometry)
    assert snapshot(project) == state


@pytest.mark.parametrize("name", ["bad\x00name", "x" * 300, "   "])
def test_bad_annotator_names_are_project_errors(project, name):
    with pytest.raises(ProjectError, match="annotator name"):
        project.add_annotator(name)
