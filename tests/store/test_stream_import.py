"""A file imported as a stream (memory bounded by a batch) gives what the whole-file import gives.

Big COCO and Label Studio files are streamed (``labkit.formats.coco.stream``,
``labkit.formats.labelstudio.stream``; ``interchange.STREAM_BYTES``):
the annotations are read, checked and inserted a batch at a time in one transaction. Here
both paths import the same files into twin projects, the stream in batches of 7 so that
every file spans several, and must agree exactly: the stored rows, or the error and its
message (with nothing stored).
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path

import numpy as np
import psycopg
import pytest

from labkit.formats import FormatError
from tests.store.helpers import snapshot


def _base(names: list[str]) -> dict:
    """A small COCO file: boxes, polygons (one in two parts), RLE masks and keypoints on 40x30 images."""
    from pycocotools import mask as mu

    rng = np.random.default_rng(3)
    anns = []
    for j in range(40):
        x, y = (round(float(v), 2) for v in rng.uniform(0, 20, 2))
        w, h = (round(float(v), 2) for v in rng.uniform(1, 9, 2))
        a = {"id": j + 1, "image_id": j % len(names) + 1, "category_id": j % 3 + 1, "bbox": [x, y, w, h],
             "area": w * h, "iscrowd": 0}
        if j % 4 == 1:
            a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        elif j % 4 == 2:
            a["segmentation"] = [[x, y, x + w, y, x, y + h], [x + w, y + h, x + w, y + 1, x + 1, y + h]]
        elif j % 8 == 3:
            m = np.zeros((30, 40), np.uint8)
            m[int(y):int(y + h), int(x):int(x + w)] = 1
            rle = mu.encode(np.asfortranarray(m))
            a["segmentation"] = {"size": [30, 40], "counts": rle["counts"].decode()}
        elif j % 8 == 7:
            a.pop("bbox")
            a["keypoints"] = [x, y, 2, x + 1, y + 1, 2]
            a["num_keypoints"] = 2
        anns.append(a)
    return {"info": {"year": 2026}, "images": [{"id": i + 1, "file_name": n, "width": 40, "height": 30,
                                                "license": 1} for i, n in enumerate(names)],
            "annotations": anns,
            "categories": [{"id": k + 1, "name": c} for k, c in enumerate(["cat", "dog", "bird"])]}


def _late(d: dict, **fields) -> dict:
    d["annotations"][-4].update(fields)  # annotations[36]: a box
    return d


def _zebra(d: dict) -> dict:
    d["categories"].append({"id": 9, "name": "zebra"})
    d["annotations"][-1]["category_id"] = 9
    return d


def _stranger(d: dict) -> dict:
    d["images"].append({"id": 99, "file_name": "not_here.png", "width": 40, "height": 30})
    return _late(d, bbox=[0, 0, 500, 5])


def _no_points(d: dict) -> dict:
    """Boxes for the keypoint annotations: every batch then takes the reader's column path."""
    for a in d["annotations"]:
        if a.pop("keypoints", None) is not None:
            a.pop("num_keypoints")
            a["bbox"] = [1.0, 2.0, 3.0, 4.0]
    return d


def _first_keys(d: dict) -> dict:  # categories and images after the annotations
    return {"annotations": d["annotations"], "categories": d["categories"], "images": d["images"]}


CASES = {
    "clean": lambda d: d,
    "annotations first": _first_keys,
    "geometry outside, late": lambda d: _late(d, bbox=[0, 0, 500, 5]),
    "bad record, late": lambda d: _late(d, bbox="wide"),
    "duplicate id in another batch": lambda d: _late(d, id=1),
    "duplicate id in another batch, on the column path": lambda d: _late(_no_points(d), id=2),
    "unknown image id, late": lambda d: _late(d, image_id=77),
    "unknown class": _zebra,
    "image not in the project and a late geometry problem": _stranger,
    "non-finite score, late": lambda d: _late(d, score=float("nan")),
    "provenance too deep": lambda d: _late(d, note=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
    "no annotations": lambda d: {**d, "annotations": []},
    "annotations missing": lambda d: {k: v for k, v in d.items() if k != "annotations"},
    "annotations not a list": lambda d: {**d, "annotations": {"1": d["annotations"][0]}},
    "a bad category": lambda d: {**d, "categories": d["categories"] + [{"id": 4}]},
}


def _ls_base(names: list[str]) -> list:
    """A small Label Studio export: 3 annotators' boxes and image labels, one model's predictions."""
    rng = np.random.default_rng(5)
    people = [7, "ana@lab.org", {"id": 9, "email": "ben@lab.org"}]
    tasks = []
    for t in range(24):
        name = names[t % len(names)]
        anns = []
        for k, who in enumerate(people[: 1 + t % 3] + (["0@lab.org"] if t >= 18 else [])):  # a late annotator
            # whose name sorts first: a whole file's import creates annotators in sorted order
            x, y = (round(float(v), 2) for v in rng.uniform(0, 60, 2))
            anns.append({"id": 100 * t + k, "completed_by": who, "result": [
                {"id": f"r{t}{k}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                 "original_width": 40, "original_height": 30, "value": {
                     "x": x, "y": y, "width": 20.0, "height": 30.0, "rotation": 0,
                     "rectanglelabels": [["cat", "dog", "bird"][(t + k) % 3]]}},
                {"id": f"c{t}{k}", "type": "choices", "from_name": "kind", "to_name": "image",
                 "value": {"choices": [["cat", "dog"][(t * k) % 2]]}}]})
        tasks.append({"id": t + 1, "data": {"image": f"/data/upload/1/abcdef12-{name}"}, "annotations": anns})
    return tasks


def _ls_late(tasks: list, change) -> list:
    change(tasks[-3])
    return tasks


LS_CASES = {
    "clean": lambda d: d,
    "geometry outside, late": lambda d: _ls_late(
        d, lambda t: t["annotations"][0]["result"][0]["value"].update(x=150.0)),
    "no data, late": lambda d: _ls_late(d, lambda t: t.pop("data")),
    "unknown class": lambda d: _ls_late(
        d, lambda t: t["annotations"][0]["result"][1]["value"].update(choices=["zebra"])),
    "a bad annotator": lambda d: _ls_late(d, lambda t: t["annotations"][0].update(completed_by=[1])),
    "predictions without an annotator": lambda d: _ls_late(d, lambda t: t.update(predictions=[
        {"id": 1, "score": 0.5, "result": [t["annotations"][0]["result"][1]]}])),
    "image not in the project": lambda d: _ls_late(d, lambda t: t["data"].update(image="/x/stranger.png")),
    "unsupported result type": lambda d: _ls_late(d, lambda t: t["annotations"][0]["result"].append(
        {"id": "q", "type": "textarea", "from_name": "t", "to_name": "image", "value": {"text": ["hi"]}})),
    "no tasks": lambda d: [],
    "one task, not a list": lambda d: d[0],
}


def _outcome(project, path: Path, format: str = "coco", **kw):
    """What an import did: ("ok", rows) or (error type, message), with the project unchanged on error."""
    before = snapshot(project)
    if format == "coco":
        kw["annotator"] = "vendor"
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            summary = project.import_annotations(path, format=format, **kw)
    except (ValueError, FormatError) as exc:
        assert snapshot(project) == before
        return type(exc).__name__, str(exc)
    rows = project.annotations().drop(columns=["created_at", "updated_at"], errors="ignore")
    return "ok", (str(summary), project.classes(), rows.to_dict("list"),
                  project.annotators().drop(columns=["created_at"]).reset_index().to_dict("list"),
                  project.images()["attributes"].tolist() if "attributes" in project.images() else None,
                  sorted(str(w.message) for w in said))


# every file without add_classes; the files with a class the project lacks with it too
_ALL = [(f, c, False) for f, cases in (("coco", CASES), ("labelstudio", LS_CASES)) for c in sorted(cases)] \
    + [("coco", "unknown class", True), ("labelstudio", "unknown class", True)]


@pytest.mark.parametrize(("format", "case", "add_classes"), _ALL)
def test_a_streamed_import_is_the_whole_file_import(format, case, add_classes, location, tmp_path, image_files,
                                                    monkeypatch, request):
    from labkit import Project
    from labkit.formats import coco, labelstudio
    from labkit.services import interchange

    module = coco if format == "coco" else labelstudio
    path = tmp_path / "in.json"
    names = [f.name for f in image_files]
    path.write_text(json.dumps(CASES[case](copy.deepcopy(_base(names))) if format == "coco"
                               else LS_CASES[case](_ls_base(names))))
    twin = tmp_path / "twin" if isinstance(location, Path) else \
        request.getfixturevalue("pg_server").create_database(f"t_{uuid.uuid4().hex[:12]}")
    seen, real = {}, module.stream
    for mode, loc, threshold in (("whole", location, 1 << 60), ("stream", twin, 0)):
        p = Project.create(loc, classes=["cat", "dog", "bird"], workdir=tmp_path / f"work-{mode}")
        try:
            p.add_images(image_files, progress=False)
            p.add_annotator("vendor")
            monkeypatch.setattr(interchange, "STREAM_BYTES", threshold)
            monkeypatch.setattr(module, "STREAM_BATCH", 7)
            calls: list[int] = []
            monkeypatch.setattr(module, "stream", lambda *a, calls=calls, **k: calls.append(1) or real(*a, **k))
            seen[mode] = _outcome(p, path, format, add_classes=add_classes)
            assert bool(calls) == (mode == "stream")  # the stream really was the path taken
        finally:
            p.close()
    assert seen["stream"] == seen["whole"]
    if case == "clean":
        assert seen["stream"][0] == "ok" and len(seen["stream"][1][2]["kind"]) == (40 if format == "coco" else 108)
    if case == "geometry outside, late":
        assert seen["stream"][0] == "ImportProblem"
        assert ("annotations[36]" if format == "coco" else "tasks[21].annotations[0]") in seen["stream"][1]


_MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys, tracemalloc
    import labkit
    from labkit.formats import coco
    from labkit.services import interchange

    interchange.STREAM_BYTES = int(sys.argv[3])
    coco.STREAM_BATCH = 500  # a batch is 1/30 of this file (of COCO train2017's, 1/34 at the default)
    p = labkit.Project.open(sys.argv[1], user="admin")
    tracemalloc.start()
    p.import_annotations(sys.argv[2], format="coco", annotator="vendor")
    print(json.dumps({"peak": tracemalloc.get_traced_memory()[1], "rows": len(p.annotations())}))
""")


def test_a_streamed_import_holds_a_batch_not_the_file(tmp_path):
    """Python's allocations during the import of a 4 MB COCO file: under twice the file's size when streamed
    in batches of 500, while the whole-file import holds many times the file (tracemalloc in a child)."""
    from labkit import Project
    from tests.conftest import write_image

    files = [write_image(tmp_path / "imgs" / f"i{k}.png", width=64, height=48, seed=k) for k in range(50)]
    rng = np.random.default_rng(0)
    n = 15_000
    xy = rng.uniform(1, 40, (n, 2)).round(2)
    anns = [{"id": j + 1, "image_id": j % 50 + 1, "category_id": 1, "iscrowd": 0, "area": 10.0,
             "bbox": [x, y, 8.0, 6.0],
             "segmentation": [[v for k in range(12) for v in (round(x + 8 * (k % 3) / 2, 2), round(y + k / 2, 2))]]}
            for j, (x, y) in enumerate(xy.tolist())]
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"images": [{"id": k + 1, "file_name": f.name, "width": 64, "height": 48}
                                           for k, f in enumerate(files)],
                                "categories": [{"id": 1, "name": "cat"}], "annotations": anns}))
    del anns
    size = path.stat().st_size
    script = tmp_path / "mem.py"
    script.write_text(_MEMORY_SCRIPT)
    peaks = {}
    for mode, threshold in (("stream", 0), ("whole", 1 << 60)):
        loc = tmp_path / mode
        p = Project.create(loc, classes=["cat"], user="admin")
        p.add_images(files, progress=False)
        p.add_annotator("vendor")
        p.close()
        out = subprocess.run([sys.executable, str(script), str(loc), str(path), str(threshold)], check=True,
                             capture_output=True, text=True, timeout=600)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert got["rows"] == n
        peaks[mode] = got["peak"] / size
    assert peaks["stream"] < 2.0, peaks
    assert peaks["whole"] > 5, peaks  # what the stream saves: the test would pass without it otherwise


@pytest.mark.parametrize("streamed", [False, True])
def test_an_import_checks_the_references_sqlite_no_longer_checks_row_by_row(streamed, tmp_path, image_files,
                                                                               monkeypatch):
    """A SQLite import writes with the connection's foreign keys off (~1.4 us a row) and checks the rows'
    images, annotators and classes itself: an image deleted while the import runs fails it, whole."""
    from labkit import Project
    from labkit.services import interchange
    from labkit.store import bulk
    from labkit.store.images import ImageRepository

    monkeypatch.setattr(bulk, "CHECKED_MIN", 0)  # SQLite's row triggers suspended, as for a large import
    p = Project.create(tmp_path / "proj", classes=["cat", "dog", "bird"], workdir=tmp_path / "work")
    p.add_images(image_files, progress=False)
    path = tmp_path / "in.json"
    path.write_text(json.dumps(_base([f.name for f in image_files])))
    monkeypatch.setattr(interchange, "STREAM_BYTES", 0 if streamed else 1 << 60)
    seen = []
    real = ImageRepository.fill_in

    def fill_in(self, conn, *a, **k):  # inside the import's transaction (after its rows are written)
        seen.append(conn.exec_driver_sql("PRAGMA foreign_keys").scalar())
        if len(seen) == 1:
            gone = conn.exec_driver_sql("DELETE FROM images WHERE id = 3").rowcount
            assert gone == 1
        return real(self, conn, *a, **k)

    monkeypatch.setattr(ImageRepository, "fill_in", fill_in)
    before = len(p.images())
    with pytest.raises(interchange.ImportProblem, match=r"deleted while it ran \(images with ids \[3\]\)"):
        p.import_annotations(path, format="coco", annotator="vendor")
    assert seen == [0], seen  # the foreign keys were off in the import's transaction
    assert len(p.images()) == before and p.annotations().empty  # and the project is unchanged
    s = p.import_annotations(path, format="coco", annotator="vendor")  # the second time nothing is deleted
    assert s.annotations_added == 40 and seen == [0, 0]
    engine = p.store.ctx.engine
    conns = [engine.connect() for _ in range(engine.pool.size() + 1)]  # the pooled connections: keys back on
    try:
        assert [c.exec_driver_sql("PRAGMA foreign_keys").scalar() for c in conns] == [1] * len(conns)
    finally:
        for c in conns:
            c.close()
    p.close()


@pytest.mark.postgres
def test_a_pipelined_import_fails_whole_with_the_servers_error(pg_url, tmp_path, image_files, monkeypatch):
    """PostgreSQL: a streamed import sends its batches in pipeline mode (``bulk.writes_behind``), without
    waiting for each one's result. A batch the database refuses, with later batches already on their way,
    fails the import with the database's own error; nothing of it is stored, and the next import works."""
    from labkit import Project
    from labkit.formats import coco
    from labkit.services import interchange

    p = Project.create(pg_url, classes=["cat", "dog", "bird"], workdir=tmp_path / "work")
    p.add_images(image_files, progress=False)
    path = tmp_path / "in.json"
    path.write_text(json.dumps(_base([f.name for f in image_files])))
    monkeypatch.setattr(interchange, "STREAM_BYTES", 0)
    monkeypatch.setattr(coco, "STREAM_BATCH", 7)  # 40 objects: six batches
    with p.store.ctx.engine.begin() as conn:  # the database refuses the third batch (rows 15 to 21)
        conn.exec_driver_sql(
            "CREATE FUNCTION t_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF (SELECT count(*) FROM annotations) > 14 THEN "
            "RAISE EXCEPTION 'refused after 14 rows' USING ERRCODE = 'check_violation'; END IF; RETURN NULL; END $$")
        conn.exec_driver_sql("CREATE TRIGGER t_refuse AFTER INSERT ON annotations FOR EACH STATEMENT "
                             "EXECUTE FUNCTION t_refuse()")
    sent = []
    from labkit.store import bulk, pipeline

    real_execute = bulk.pg_execute

    def counting(conn, sql, params=()):
        if sql.startswith('INSERT INTO "annotations"'):
            sent.append(conn.info.get(pipeline._PIPELINE) is not None)
        return real_execute(conn, sql, params)
    monkeypatch.setattr(bulk, "pg_execute", counting)
    with pytest.raises(psycopg.errors.CheckViolation, match="refused after 14 rows"):
        p.import_annotations(path, format="coco", annotator="vendor")
    assert sent and all(sent)  # the batches went in pipeline mode
    assert p.annotations().empty
    with p.store.ctx.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER t_refuse ON annotations")
    s = p.import_annotations(path, format="coco", annotator="vendor")
    assert s.annotations_added == 40 and len(p.annotations()) == 40
    p.close()
