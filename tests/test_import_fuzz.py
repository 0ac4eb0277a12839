"""Fuzz every importer with hostile files: a labkit error or a clean import, never anything else.

Each example starts from a valid file of one format (``tests/formats/hostile.py``) and
breaks it the way a careless or hostile vendor would: values of the wrong type, huge
and non-finite numbers, deep nesting, names that climb out of ``images_dir`` or are links
to a file outside it, control characters and lone surrogates, duplicated or deleted
records, truncation and bytes that are not UTF-8. Then ``project.import_annotations``
must either

- raise a labkit error (:class:`~labkit.formats.FormatError` or a
  :class:`~labkit.store.errors.FixableError`: ``ImportProblem``, ``ImageError``,
  ``ProjectError``) and leave every table as it was, or
- import cleanly;

and in both cases no file outside the folders it was given is opened (an audit hook
records every ``open``) and every image of the project lies inside them.

The examples are derandomized so the suite is repeatable; ``LABKIT_FUZZ_EXAMPLES=500``
runs more, with a random seed (``LABKIT_FUZZ_SEED`` fixes it).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from labkit import Project
from labkit.formats import FormatError
from labkit.store.errors import FixableError
from tests.formats.hostile import FORMATS, base_doc, workspace, write_doc
from tests.store.helpers import snapshot

_MORE = int(os.environ.get("LABKIT_FUZZ_EXAMPLES", "0"))
_SEED = os.environ.get("LABKIT_FUZZ_SEED")


def _settings(n: int) -> settings:
    return settings(max_examples=_MORE or n, deadline=None, database=None, derandomize=not _MORE and not _SEED,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


# --- every file opened while an import runs -------------------------------------

_OPENED: list[str] = []
_RECORDING = threading.Event()


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _RECORDING.is_set() and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


_HOOKED: list[bool] = []


def _watch_opens() -> None:
    """Install the audit hook, once: it cannot be removed, and costs a call per audit event while it lives."""
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED.append(True)


# --- hostile values ---------------------------------------------------------------

DEEP = "\ue000deep"          # replaced by thousands of nested brackets once the file is text
DEEPISH = "\ue000nest"       # 900 nested brackets: the parser reads them, labkit must not store them
HUGE_POLYGON = "\ue000huge"  # replaced by a polygon of more points than the limit allows


def _names(ws) -> list[str]:
    return ["../secret/secret.png", "../../secret/secret.png", str(ws.secret), "..", ".", "", "/",
            "..\\secret\\secret.png", "link.png", "sub/../new_0.png", "new_0.png", "img_0.png", "a\x00b.png",
            "C:\\secret.png", "new_0.png/", "%2e%2e/secret.png"]


def hostile_values(ws) -> st.SearchStrategy[Any]:
    benign = st.sampled_from(["cat", "dog", 0, 1, 2, 5.5, 10, "0", "10", "img_1.png", "1,1;5,5;5,1", [1, 2, 3, 4]])
    scalars = st.one_of(
        benign,
        st.sampled_from([None, True, False, 0, -1, 1, 2**31, 2**64, 10**400, -(10**400), 1e308, -1e308, 0.5,
                         float("nan"), float("inf"), float("-inf"), "", " ", "\t", "cat", "dog", "5", "null",
                         "NaN", "1e999", "9" * 5000, "\x00", "a\x01b", "\ud800", "x" * 10_000, "é", "\u202e",
                         "0,0;1,1", "1, 2, 3", DEEP, DEEPISH, HUGE_POLYGON]),
        st.sampled_from(_names(ws)),
        st.integers(), st.floats(), st.text(max_size=12))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                        max_leaves=6)


# --- mutations of each kind of file -------------------------------------------------

def _nodes(doc: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _nodes(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _nodes(v, path + (i,))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


@st.composite
def mutated_json(draw, doc: Any, values) -> Any:
    """``doc`` with 1-3 nodes replaced, deleted, duplicated or renamed."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.sampled_from([1, 1, 2, 3]))):
        path = draw(st.sampled_from(_nodes(doc)))
        op = draw(st.sampled_from(["replace"] * 4 + ["delete", "duplicate", "rename"]))
        if not path and draw(st.integers(0, 9)):  # replacing the whole document: now and then
            continue
        if not path:
            doc = copy.deepcopy(draw(values))
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        if op == "replace":
            parent[key] = copy.deepcopy(draw(values))  # a value drawn twice may be one object
        elif op == "delete":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["id", "name", "file_name", "label", "type", "", "\x00", f"{key}_"]))] = \
                parent.pop(key)
    return doc


_HUGE_JSON = json.dumps([[float(i % 40), float(i % 30)] for i in range(100_001)])


def json_text(doc: Any) -> str:
    text = json.dumps(doc)  # NaN and Infinity as Python writes them (not JSON, but files have them)
    if "\\ue000" in text:
        for marker, replacement in ((DEEP, "[" * 5000 + "]" * 5000), (DEEPISH, "[" * 900 + "]" * 900),
                                    (HUGE_POLYGON, _HUGE_JSON)):
            text = text.replace(json.dumps(marker), replacement)
    return text


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """Sometimes truncate the bytes or splice in bytes that are not UTF-8."""
    op = draw(st.sampled_from(["none"] * 10 + ["truncate", "bytes"]))
    if op == "truncate" and data:
        return data[:draw(st.integers(0, len(data) - 1))]
    if op == "bytes":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.sampled_from([b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x00"])) + data[at:]
    return data


_XML_ATTRS = ["name", "width", "height", "label", "points", "xtl", "ytl", "xbr", "ybr", "rotation", "rle", "left",
              "top", "cx", "cy", "rx", "ry", "group_id", "id"]


@st.composite
def mutated_xml(draw, text: str, values) -> bytes:
    root = ET.fromstring(text.encode())
    for _ in range(draw(st.sampled_from([1, 1, 2, 3]))):
        elements = list(root.iter())
        el = draw(st.sampled_from(elements))
        op = draw(st.sampled_from(["attr"] * 4 + ["delattr", "text", "dup", "remove", "nameless", "deep"]))
        value = draw(values)
        value = value if isinstance(value, str) else json.dumps(value)
        if op == "attr":
            el.set(draw(st.sampled_from(_XML_ATTRS)), value)
        elif op == "delattr" and el.attrib:
            del el.attrib[draw(st.sampled_from(sorted(el.attrib)))]
        elif op == "text":
            el.text = value
        elif op in ("dup", "remove") and el is not root:
            parent = next(p for p in root.iter() if el in list(p))
            if op == "dup":
                parent.append(copy.deepcopy(el))
            else:
                parent.remove(el)
        elif op == "nameless":
            ET.SubElement(el, "attribute").text = value
        elif op == "deep":
            ET.SubElement(el, "deep")
    data = (ET.tostring(root, encoding="unicode").replace(DEEP, "")
            .replace("<deep />", "<x>" * 50_000 + "</x>" * 50_000).replace(HUGE_POLYGON, ";".join(["1,1"] * 100_001)))
    return draw(damaged(data.encode("utf-8", "surrogatepass")))


@st.composite
def mutated_yolo(draw, doc: dict[str, str], values) -> dict[str, bytes]:
    import yaml

    files = dict(doc)
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):
        target = draw(st.sampled_from(sorted(files)))
        if target == "data.yaml":
            names = draw(mutated_json(["cat", "dog"], values) | mutated_json({0: "cat", 1: "dog"}, values))
            try:
                body = yaml.safe_dump({"nc": 2, "names": names}, allow_unicode=True)
            except yaml.YAMLError:  # what YAML cannot write (a lone surrogate)
                body = "names: [cat, dog"
            files[target] = body.replace(DEEP, "[" * 3000 + "]" * 3000)
        else:
            lines = files[target].splitlines() or [""]
            i = draw(st.integers(0, len(lines) - 1))
            tokens = lines[i].split() or ["0"]
            op = draw(st.sampled_from(["token", "token", "add", "huge", "line"]))
            value = draw(values)
            value = (value if isinstance(value, str) else json.dumps(value)).replace(DEEP, "[[[").replace(
                HUGE_POLYGON, " ".join(["0.5"] * 200_002))
            if op == "token":
                tokens[draw(st.integers(0, len(tokens) - 1))] = value
            elif op == "add":
                tokens.append(value)
            elif op == "huge":
                tokens = ["0"] + ["0.5"] * 200_002
            else:
                tokens = [value]
            lines[i] = " ".join(tokens)
            files[target] = "\n".join(lines) + "\n"
    extra = draw(st.sampled_from([None] * 6 + ["labels/sub/img_0.txt", "labels/nothing.txt", "labels/ghost.txt"]))
    if extra:
        files[extra] = "0 0.5 0.5 0.1 0.1\n"
    out = {name: draw(damaged(text.encode("utf-8", "surrogatepass"))) for name, text in files.items()}
    return out


@st.composite
def hostile_file(draw, fmt: str, ws) -> tuple[Any, dict[str, Any]]:
    """``(content, options)``: what to write for ``fmt`` and how to import it."""
    values = hostile_values(ws)
    doc = base_doc(fmt)
    if draw(st.integers(0, 3)) == 0:  # an image named to reach outside images_dir (or a link inside it)
        doc = _renamed(fmt, doc, draw(st.sampled_from(_names(ws))), draw(st.integers(0, 1)))
    if fmt in ("coco", "labelstudio"):
        content: Any = draw(damaged(json_text(draw(mutated_json(doc, values))).encode("utf-8", "surrogatepass")))
    elif fmt == "aihub":
        content = {}
        for name, record in doc.items():
            mutate = draw(st.booleans())
            text = json_text(draw(mutated_json(record, values))) if mutate else json.dumps(record)
            content[name] = draw(damaged(text.encode("utf-8", "surrogatepass")))
    elif fmt == "cvat":
        content = {"annotations.xml": draw(mutated_xml(doc["annotations.xml"], values))}
    else:
        content = draw(mutated_yolo(doc, values))
    link = draw(st.sampled_from([None] * 4 + ["aihub", "yolo-labels", "yolo-yaml"]))
    options = {"annotator": draw(st.sampled_from(["v"] * 4 + [None])), "add_classes": draw(st.booleans()),
               "link": link}
    return content, options


def _renamed(fmt: str, doc: Any, name: str, i: int) -> Any:
    """``doc`` with its ``i``-th image named ``name``."""
    if fmt == "coco":
        doc["images"][i]["file_name"] = name
    elif fmt == "labelstudio":
        doc[i]["data"]["image"] = name
    elif fmt == "aihub":
        doc["ab"[i] + ".json"]["Annotations"]["name"] = name
    elif fmt == "cvat":
        old = ('name="img_0.png"', 'name="new_0.png"')[i]
        doc = {"annotations.xml": doc["annotations.xml"].replace(old, f'name="{_xml_attr(name)}"')}
    return doc


def _xml_attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace("\x00", "")


# --- the property ---------------------------------------------------------------------

def _write(fmt: str, content: Any, folder: Path, ws, link: str | None) -> Path:
    if fmt in ("coco", "labelstudio"):
        folder.mkdir(parents=True)
        path = folder / f"{fmt}.json"
        path.write_bytes(content)
    else:
        path = write_doc(fmt, content, folder)
    # a link under the folder a folder format reads, to a file outside it
    if link == "aihub" and fmt == "aihub":
        (folder / "c.json").symlink_to(ws.secret)
    elif link == "yolo-labels" and fmt == "yolo":
        (folder / "labels" / "img_2.txt").symlink_to(ws.secret)
    elif link == "yolo-yaml" and fmt == "yolo":
        (folder / "data.yaml").unlink(missing_ok=True)
        (folder / "data.yaml").symlink_to(ws.secret)
    return path


def _outside(path: str, ws) -> bool:
    p = Path(path)
    p = (p if p.is_absolute() else Path.cwd() / p).resolve()
    return p == ws.secret_dir.resolve() or ws.secret_dir.resolve() in p.parents


def check_import(project: Project, fmt: str, content: Any, options: dict[str, Any], ws, folder: Path) -> str:
    """Import one hostile file and check the property; return the outcome (``imported`` or the error's type)."""
    path = _write(fmt, content, folder, ws, options["link"])
    before = snapshot(project)
    _OPENED.clear()
    _RECORDING.set()
    try:
        project.import_annotations(path, format=fmt, annotator=options["annotator"], images_dir=ws.new,
                                   add_classes=options["add_classes"])
        outcome = "imported"
    except (FormatError, FixableError) as exc:
        outcome = type(exc).__name__
        assert snapshot(project) == before, f"a failed import changed the project: {exc}"
        assert str(exc)
    finally:
        _RECORDING.clear()
        shutil.rmtree(folder, ignore_errors=True)
    read = [p for p in _OPENED if _outside(p, ws)]
    assert not read, f"the import opened files outside the folders it was given: {read}"
    allowed = [(ws.root / "imgs").resolve(), ws.new.resolve()]
    for stored in project.images()["path"]:
        real = project.store.ctx.resolve(stored).resolve()
        assert any(d in real.parents for d in allowed), f"image {real} outside images_dir was added"
    event(outcome)
    return outcome


def _project(location, ws, tmp: Path) -> Project:
    p = Project.create(location, classes=["cat", "dog"], workdir=tmp / "work")
    p.add_images(ws.images)
    return p


@pytest.fixture
def ws(tmp_path):
    w = workspace(tmp_path)
    (w.new / "link.png").symlink_to(w.secret)  # a link inside images_dir to a file outside it
    return w


def _fuzz(fmt: str, location, ws, tmp_path, n: int) -> None:
    _watch_opens()
    project = _project(location, ws, tmp_path)
    outcomes: Counter[str] = Counter()

    @_settings(n)
    @given(case=hostile_file(fmt, ws))
    def run(case):
        content, options = case
        folder = tmp_path / "cases" / str(sum(outcomes.values()))
        outcomes[check_import(project, fmt, content, options, ws, folder)] += 1

    try:
        run()
    finally:
        project.close()
    print(f"{fmt}: {dict(outcomes)}")
    if n >= 50:  # the mutations reach both ends: files that still import, and files each reader refuses
        assert outcomes["imported"] and outcomes["FormatError"], outcomes


_QUIET = pytest.mark.filterwarnings("ignore:skipped .* with no labkit kind")  # readers say what they skip


@_QUIET
@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzz_importer_sqlite(fmt, ws, tmp_path):
    _fuzz(fmt, tmp_path / "proj", ws, tmp_path, 60)


@_QUIET
@pytest.mark.postgres
@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzz_importer_postgresql(fmt, ws, tmp_path, pg_url):
    _fuzz(fmt, pg_url, ws, tmp_path, 20)
