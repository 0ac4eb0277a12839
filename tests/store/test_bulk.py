"""The bulk paths give exactly what the row-by-row paths gave, and keep every guarantee.

The row-by-row references live here (they were labkit's code before the bulk paths):
``normalize_geometry`` per row for reads and imports, the COCO reader's record path, the
typed SQLAlchemy select for ``annotations()``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from labkit.geometry import GeometryError, normalize_geometry
from labkit.geometry.bulk import normalize_many
from labkit.store import schema as S
from tests.conftest import write_image
from tests.store.helpers import snapshot

# ----------------------------------------------------------------------------------- geometry --
_number = st.one_of(st.floats(-5, 70, allow_nan=False), st.integers(-3, 70), st.just(float("nan")),
                    st.just(float("inf")), st.booleans(), st.just("3"), st.none())
_coord = st.floats(-3, 68, allow_nan=False)
_pairs = st.lists(st.lists(_coord, min_size=2, max_size=2), min_size=0, max_size=6)


def _rle(seed: int, size: tuple[int, int], damage: str) -> dict:
    """A COCO compressed RLE mask (pycocotools' own string), whole or damaged."""
    from pycocotools import mask as mu

    rng = np.random.default_rng(seed)
    counts = mu.encode(np.asfortranarray(rng.random(size) < rng.random(), np.uint8))["counts"].decode()
    counts = {"": counts, "cut": counts[:-1], "junk": counts + "~", "long": "P" * 14 + "0" + counts}[damage]
    return {"size": list(size), "counts": counts}


def test_many_rle_masks_are_checked_as_pycocotools_reads_them():
    from labkit.geometry._coco import counts_from_string
    from labkit.geometry.bulk import _rle_covers

    masks = [_rle(i, (7 + i % 30, 5 + i % 11), ["", "", "cut", "junk", "long"][i % 5]) for i in range(2000)]
    pixels = np.array([m["size"][0] * m["size"][1] + (i % 13 == 0) for i, m in enumerate(masks)])
    # numbers of more than 12 characters (the "long" damage) are left to the row check
    want = [i % 5 != 4 and (runs := counts_from_string(m["counts"])) is not None and sum(runs) == px
            for i, (m, px) in enumerate(zip(masks, pixels))]
    assert _rle_covers([m["counts"] for m in masks], pixels).tolist() == want
    assert 500 < sum(want) < 2000
    # random strings: negative runs, runs longer than the image, numbers cut at the end
    rng = np.random.default_rng(7)
    alphabet = np.array(list("0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmno"))
    strings = ["".join(rng.choice(alphabet, rng.integers(1, 9))) for _ in range(3000)]
    runs = [counts_from_string(t) for t in strings]

    def raw_sum(t: str) -> int:  # rleFrString's sum without its refusal of negative runs
        out: list[int] = []
        value, shift = 0, 0
        for c in (ord(ch) - 48 for ch in t):
            value |= (c & 0x1F) << shift
            shift += 5
            if not c & 0x20:
                value = (value | (-1 << shift) if c & 0x10 else value) + (out[-2] if len(out) > 2 else 0)
                out.append(value)
                value, shift = 0, 0
        return sum(out)
    # half the sizes are what the runs add up to, negative ones included: only the sign check refuses those
    pixels = np.array([raw_sum(t) if k % 2 else int(rng.integers(1, 100)) for k, t in enumerate(strings)])
    want = [r is not None and len(t) <= 12 and sum(r) == px for t, r, px in zip(strings, runs, pixels)]
    assert _rle_covers(strings, pixels).tolist() == want
    assert 100 < sum(want) < 2900


def _geometries():
    box = st.one_of(st.fixed_dictionaries({k: _number for k in ("x0", "y0", "x1", "y1")}),
                    st.builds(lambda x, y, w, h: {"x0": x, "y0": y, "x1": x + w, "y1": y + h},
                              _coord, _coord, st.floats(0, 30), st.floats(0, 30)),
                    st.lists(_number, min_size=3, max_size=5), st.just({"x0": 1.0}))
    ring = st.one_of(_pairs, st.lists(st.lists(_number, min_size=1, max_size=3), max_size=4),
                     st.lists(_coord, min_size=6, max_size=8))
    polygon = st.one_of(st.builds(lambda r: {"points": r}, ring),
                        st.builds(lambda r, h: {"points": r, "holes": h}, ring, st.lists(ring, max_size=2)),
                        st.builds(lambda a, b: {"parts": [{"points": a}, {"points": b}]}, ring, ring),
                        st.builds(lambda a: {"parts": [{"points": a}]}, ring), ring)
    point = st.one_of(st.builds(lambda r: {"points": r}, _pairs), st.lists(_coord, min_size=2, max_size=2))
    ellipse = st.fixed_dictionaries({"cx": _coord, "cy": _coord, "rx": _number, "ry": st.floats(0, 9),
                                     "angle": st.floats(-90, 90)})
    mask = st.one_of(st.sampled_from([{"size": [48, 64], "counts": [3072]}, {"size": [48, 64], "counts": [1, 2]},
                                      {"size": [10, 10], "counts": [100]}]),
                     st.builds(_rle, st.integers(0, 2 ** 31), st.sampled_from([(48, 64), (10, 10)]),
                               st.sampled_from(["", "cut", "junk", "long"])))
    return st.one_of(st.tuples(st.just("box"), box), st.tuples(st.just("polygon"), polygon),
                     st.tuples(st.just("point"), point), st.tuples(st.just("ellipse"), ellipse),
                     st.tuples(st.just("mask"), mask), st.tuples(st.sampled_from(["label", "bogus"]), st.none()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_geometries(), st.sampled_from([64, None]), st.sampled_from([48, None])),
                min_size=1, max_size=40))
def test_normalize_many_is_normalize_geometry_row_by_row(rows):
    kinds = [k for (k, _), _, _ in rows]
    geoms = [g for (_, g), _, _ in rows]
    out, bad = normalize_many(kinds, geoms, [w for _, w, _ in rows], [h for _, _, h in rows])
    for i, ((kind, g), w, h) in enumerate(rows):
        try:
            want = normalize_geometry(kind, g, width=w, height=h)
        except (GeometryError, ValueError, TypeError) as exc:
            assert bad.get(i) == str(exc)
        else:
            assert i not in bad and repr(out[i]) == repr(want)


def test_normalize_many_checks_canonical_rows_in_bulk():
    """The common case never reaches the row path (that is what makes it fast)."""
    import labkit.geometry.bulk as bulk

    calls = []
    real = bulk.normalize_geometry
    bulk.normalize_geometry = lambda *a, **k: calls.append(a) or real(*a, **k)
    try:
        out, bad = normalize_many(["box", "polygon", "point"] * 100,
                                  [{"x0": 1.0, "y0": 2.0, "x1": 3.0, "y1": 4.0},
                                   {"points": [[0.0, 0.0], [5.0, 0.0], [5.0, 5.0]]},
                                   {"points": [[1.0, 1.0]]}] * 100, [10] * 300, [10] * 300)
    finally:
        bulk.normalize_geometry = real
    assert not bad and not calls and len(out) == 300


# ---------------------------------------------------------------------------------- COCO reader --
def _coco_variants(rng):
    def bad_value():
        return rng.choice([True, None, "x", float("nan"), 10 ** 400, -3.0])

    def ann(i, clean):
        a = {"id": i, "image_id": rng.choice([1, 2, 3] if clean else [1, 2, 3, 9, "1"]),
             "category_id": rng.choice([1, 2] if clean else [1, 2, 7])}
        r = rng.random()
        if r < 0.4:
            a["bbox"] = [rng.uniform(0, 30), rng.uniform(0, 30), rng.uniform(0, 9), rng.randint(0, 9)]
            if not clean and rng.random() < 0.2:
                a["bbox"][rng.randrange(4)] = bad_value()
        elif r < 0.8:
            sizes = [6, 8, 10] if clean else [6, 8, 7, 4]
            a["segmentation"] = [[rng.uniform(0, 30) for _ in range(rng.choice(sizes))]
                                 for _ in range(rng.choice([1, 1, 2]))]
            if not clean and rng.random() < 0.2:
                a["segmentation"][0][0] = bad_value()
            a["bbox"] = [1, 2, 3, 4]
        elif r < 0.9:
            rle = _rle(rng.randrange(1000), (40, 50), "" if clean else rng.choice(["", "cut", "junk", "long"]))
            a["segmentation"] = {"size": [40, 50], "counts": rng.choice([[1000, 1000], [0, 2000], rle["counts"],
                                                                         rle["counts"]] if clean
                                                                        else ["PPYo1", [0, 2000], rle["counts"]])}
            if not clean and rng.random() < 0.1:
                a["segmentation"]["size"] = rng.choice([[30, 50], [40, 50.0], [40]])
        else:
            a["bbox"] = [1, 2, 3, 4]
            if not clean:
                a["keypoints"] = [1, 2, 2]
        if rng.random() < 0.2:
            a["score"] = rng.random() if clean or rng.random() < 0.5 else bad_value()
        if rng.random() < 0.3:
            a["area"] = rng.random() if clean else bad_value()
        if rng.random() < 0.3:
            a["iscrowd"] = rng.choice([0, 1] if clean else [0, 1, True])
        if not clean and rng.random() < 0.05:
            a["extra"] = 1
        return a

    for trial in range(300):
        clean = trial % 2 == 0
        anns = [ann(i, clean) for i in range(rng.randint(1, 25))]
        if not clean and rng.random() < 0.2:
            anns[-1]["id"] = anns[0]["id"]
        yield clean, {"images": [{"id": k, "file_name": f"f{k}.png", "width": 50, "height": 40} for k in (1, 2, 3)],
                      "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "annotations": anns}


def test_the_coco_bulk_reader_gives_the_record_readers_result(tmp_path, monkeypatch):
    import random

    from labkit.formats import FormatError, coco

    path = tmp_path / "c.json"
    real = coco._fast_annotations
    fast_used = []
    monkeypatch.setattr(coco, "_fast_annotations", lambda *a: fast_used.append(r := real(*a)) or r)
    for _, data in _coco_variants(random.Random(7)):
        path.write_text(json.dumps(data))
        results = []
        for fast in (True, False):
            with monkeypatch.context() as m:
                if not fast:
                    m.setattr(coco, "_fast_annotations", lambda *a: None)
                try:
                    ds = coco.read(path)
                    results.append(repr((ds.images, ds.objects, ds.classes)))
                except FormatError as exc:
                    results.append(f"FormatError {exc}")
        assert results[0] == results[1], data
    assert sum(r is not None for r in fast_used) > 100  # the bulk path did the clean files
    from labkit.formats._columns import JsonTexts, ObjectColumns
    from labkit.geometry.bulk import normalize_many
    from labkit.store.bulk import encode_json

    for batch in fast_used:  # what the import trusts in these columns without checking it again
        if batch is not None:
            assert isinstance(batch, ObjectColumns)
            assert all(set(o.provenance) == {"coco"} and {type(v) for v in o.provenance["coco"].values()} <= {int}
                       for o in batch)  # provenance: integers only
            assert all(o.worker is None and (o.score is None or type(o.score) is float) for o in batch)
            # the geometry is canonical (a mask at its image's size; bounds are the import's to check)
            fixed, bad = normalize_many(batch.kinds, list(batch.geometry))
            assert not bad and fixed == list(batch.geometry)
            # its text is what the store would write for it, byte for byte (the import stores it as it is)
            assert isinstance(batch.geometry, JsonTexts) and batch.geometry.texts == [encode_json(g) for g in fixed]
            assert all(g["size"] == [batch.images[i].height, batch.images[i].width]
                       for g, i, k in zip(batch.geometry, batch.at.tolist(), batch.kinds) if k == "mask")
            # and the extent is its bounding box
            for o, (x0, y0, x1, y1) in zip(batch, batch.extent.tolist()):
                if o.kind == "mask":
                    assert x0 != x0 and x1 != x1
                    continue
                rings = [o.geometry] if "x0" in o.geometry else [
                    r["points"] for part in o.geometry.get("parts", [o.geometry]) for r in [part]]
                xs = [v for r in rings for v in ([r["x0"], r["x1"]] if "x0" in r else [p[0] for p in r])]
                ys = [v for r in rings for v in ([r["y0"], r["y1"]] if "y0" in r else [p[1] for p in r])]
                assert (x0, y0, x1, y1) == (min(xs), min(ys), max(xs), max(ys))


# ---------------------------------------------------------------------------- annotations() read --
def _reference_table(project) -> pd.DataFrame:
    """annotations() the row-by-row way: SQLAlchemy's typed select, normalize_geometry per row."""
    a, c, w, im = S.annotations, S.classes, S.annotators, S.images
    stmt = (sa.select(a.c.id.label("annotation"), a.c.image_id.label("task"), w.c.name.label("worker"),
                      c.c.name.label("label"), a.c.kind, a.c.geometry, a.c.score, a.c.source, w.c.simulated,
                      a.c.provenance, a.c.version, a.c.created_at, a.c.updated_at, a.c.deleted_at,
                      im.c.width, im.c.height)
            .join(c, a.c.class_id == c.c.id).join(w, a.c.annotator_id == w.c.id)
            .outerjoin(im, a.c.image_id == im.c.id).where(a.c.deleted_at.is_(None)).order_by(a.c.id))
    with project.store.ctx.engine.connect() as conn:
        res = conn.execute(stmt)
        df = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
    df["geometry"] = [normalize_geometry(k, g, width=int(wd), height=int(ht))
                      for k, g, wd, ht in zip(df["kind"], df["geometry"], df.pop("width"), df.pop("height"))]
    df["deleted"] = df.pop("deleted_at").notna()
    return df.set_index("annotation")


def test_annotations_reads_what_the_row_path_read(project, tmp_path):
    rng = np.random.default_rng(3)
    ids = [int(i) for i in project.images().index]
    records = []
    for j in range(300):
        kind = ["box", "polygon", "point", "ellipse", "mask", "label"][j % 6]
        x, y = float(rng.uniform(0, 20)), float(rng.uniform(0, 15))
        geometry = {"box": [x, y, x + 5, y + 5], "polygon": [[x, y], [x + 9, y], [x, y + 7]],
                    "point": [x, y], "ellipse": {"cx": 20.0, "cy": 15.0, "rx": 4.0, "ry": 2.0, "angle": 30.0},
                    "mask": np.eye(30, 40, dtype=bool), "label": None}[kind]
        records.append(dict(image=ids[j % 5], kind=kind, label=["cat", "dog", "bird"][j % 3],
                            annotator=["ana", "ben", "cy"][j % 3], geometry=geometry,
                            score=None if j % 4 else 0.5, provenance={"j": j, "nested": {"a": [1, 2]}}))
    project.add_annotations(records)
    project.delete_annotation(int(project.annotations().index[7]))
    got = project.annotations()
    pd.testing.assert_frame_equal(got, _reference_table(project))
    assert len(got) == 299


# ------------------------------------------------------------------------------------ imports --
def _coco_file(path: Path, names: list[str], n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    anns = []
    for j in range(n):
        x, y, w, h = (round(float(v), 2) for v in (*rng.uniform(0, 20, 2), *rng.uniform(0, 9, 2)))
        a = {"id": j + 1, "image_id": int(rng.integers(1, len(names) + 1)), "category_id": int(rng.integers(1, 4)),
             "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0}
        if j % 2:
            a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        anns.append(a)
    data = {"images": [{"id": i + 1, "file_name": n_, "width": 40, "height": 30} for i, n_ in enumerate(names)],
            "categories": [{"id": k + 1, "name": c} for k, c in enumerate(["cat", "dog", "bird"])],
            "annotations": anns}
    path.write_text(json.dumps(data))
    return path


def test_an_import_stores_the_rows_the_api_would_store(project, tmp_path, image_files):
    """Imported rows read back equal to the same objects added one by one through the API."""
    from labkit.formats import coco

    path = _coco_file(tmp_path / "c.json", [f.name for f in image_files], 400)
    project.add_annotator("vendor", role="annotator")
    project.import_annotations(path, format="coco", annotator="vendor")
    imported = project.annotations(annotator="vendor")
    ds = coco.read(path)
    ids = {Path(p).name: int(i) for i, p in project.images()["path"].items()}
    want = [normalize_geometry(o.kind, o.geometry, width=40, height=30) for o in ds.objects]
    assert imported["geometry"].tolist() == want
    assert imported["kind"].tolist() == [o.kind for o in ds.objects]
    assert imported["task"].tolist() == [ids[o.image_key] for o in ds.objects]
    assert imported["provenance"].tolist() == [{**o.provenance, "import": {"format": "coco", "file": str(path)}}
                                               for o in ds.objects]


_KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import labkit
    import labkit.store.annotations as A

    real = A.insert_columns
    done = [0]

    def slow(conn, table, columns, **kw):
        n = len(next(iter(columns.values())))
        for lo in range(0, n, 10_000):
            real(conn, table, {k: v[lo:lo + 10_000] for k, v in columns.items()}, **kw)
            done[0] += min(10_000, n - lo)
            if done[0] >= 50_000:
                indexes = conn.exec_driver_sql(  # the plain indexes, which the import builds at its end
                    "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'annotations' "
                    "AND sql IS NOT NULL" if conn.dialect.name == "sqlite" else "SELECT count(*) FROM pg_indexes "
                    "WHERE tablename = 'annotations' AND indexdef NOT LIKE 'CREATE UNIQUE%%'").scalar()
                Path(sys.argv[3]).write_text(f"half {indexes}")   # half the rows are in the open transaction
                time.sleep(600)
        return n

    A.insert_columns = slow
    p = labkit.Project.open(sys.argv[1], user="admin")
    p.import_annotations(sys.argv[2], format="coco", annotator="vendor")
""")


def test_an_import_killed_half_way_leaves_the_project_untouched(location, tmp_path):
    """SIGKILL of the importing process after 50,000 of 100,000 objects: no row of it is stored."""
    from labkit import Project

    files = [write_image(tmp_path / "imgs" / f"i{k}.png", seed=k) for k in range(20)]
    p = Project.create(location, classes=["cat", "dog", "bird"], user="admin")
    p.add_images(files, progress=False)
    p.add_annotator("vendor")
    p.add_annotations([dict(image=1, kind="label", label="cat", annotator="vendor")])
    before, checks, indexes = snapshot(p), _triggers(p), _indexes(p)
    coco_path = _coco_file(tmp_path / "big.json", [f.name for f in files], 100_000)
    marker = tmp_path / "marker"
    script = tmp_path / "kill.py"
    script.write_text(_KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(script), str(location), str(coco_path), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() or not marker.read_text():
            assert proc.poll() is None, "the import ended before it was half-way"
            assert time.monotonic() < deadline, "the import never got half-way"
            time.sleep(0.05)
        assert marker.read_text() == "half 0"  # the annotations' plain indexes are away in the open transaction
        with p.store.ctx.engine.connect() as conn:  # the half is really there, uncommitted
            if p.store.ctx.backend == "postgresql":
                busy = conn.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE state = "
                                            "'idle in transaction'").scalar()
                assert busy >= 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    p.close()
    again = Project.open(location, user="admin")
    try:
        assert snapshot(again) == before
        assert _triggers(again) == checks  # SQLite: the row checks the import suspended are back
        assert _indexes(again) == indexes  # and the indexes it dropped to build at its end
        if again.store.ctx.backend == "sqlite":
            with again.store.ctx.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        again.import_annotations(coco_path, format="coco", annotator="vendor")  # and it still works
        assert len(again.annotations()) == 100_001
    finally:
        again.close()


_CATALOG = {  # what: (SQLite query, PostgreSQL query), each giving (name, definition) in name order
    "triggers": ("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name",
                 "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname"),
    "indexes": ("SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type = 'index' ORDER BY name",
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname"),
}


def _catalog(project, what: str) -> list[tuple[str, str]]:
    """The database's triggers or indexes (name and definition), on either backend."""
    sqlite, pg = _CATALOG[what]
    with project.store.ctx.engine.connect() as conn:
        query = sqlite if project.store.ctx.backend == "sqlite" else pg
        return [tuple(r) for r in conn.exec_driver_sql(query)]


def _triggers(project) -> list[tuple[str, str]]:
    return _catalog(project, "triggers")


def _indexes(project) -> list[tuple[str, str]]:
    return _catalog(project, "indexes")


def _raw_bad_box(project) -> None:
    """A box far outside its image, inserted with raw SQL by the project's own engine."""
    cast = "CAST(:g AS json)" if project.backend == "postgresql" else ":g"
    with project.store.ctx.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO annotations (image_id, annotator_id, kind, class_id, geometry, source, "
                             f"provenance, version, created_at, updated_at) VALUES (1, 1, 'box', 1, {cast}, "
                             "'human', '{}', 1, :t, :t)"),
                     {"g": '{"x0": 0, "y0": 0, "x1": 1e9, "y1": 5}', "t": "2026-01-01 00:00:00"})


def test_a_large_import_leaves_every_database_check_in_place(project, tmp_path, image_files, monkeypatch):
    """SQLite's row checks are suspended inside a large import's transaction only: after it, and after
    an import that fails while inserting, the same triggers refuse a bad row."""
    import labkit.store.annotations as A
    import labkit.store.bulk as B
    from labkit.store.bulk import CHECKED_MIN

    monkeypatch.setattr(B, "INDEXED_MIN", 1_000)  # the indexes too are built at the end of these imports
    keys = [f.name for f in image_files]
    project.add_annotator("vendor", role="annotator")
    checks, indexes = _triggers(project), _indexes(project)
    assert any("annotations" in sql for _, sql in checks)
    assert any(name.startswith("ix_annotations_") for name, _ in indexes)
    engine = project.store.ctx.engine
    engine.dispose()  # one pooled connection, the one the import will use
    project.import_annotations(_coco_file(tmp_path / "a.json", keys, CHECKED_MIN + 500), format="coco",
                               annotator="vendor")
    assert _triggers(project) == checks
    assert _indexes(project) == indexes
    if project.backend == "sqlite":  # the rebuilt indexes hold every row
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    if project.backend == "sqlite":  # the import's larger page cache is given back
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -2000
    with pytest.raises(sa.exc.DBAPIError, match="labkit: annotation refused"):
        _raw_bad_box(project)

    real = A.insert_columns

    def fails(conn, table, columns, **kw):
        real(conn, table, {k: v[:100] for k, v in columns.items()}, **kw)
        if conn.dialect.name == "sqlite":  # the checks really are away at this point, and the indexes
            assert len(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                            "AND sql LIKE '%BEFORE INSERT ON annotations%'").all()) == 0
            assert len(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index' "
                                            "AND tbl_name = 'annotations' AND sql IS NOT NULL").all()) == 0
        raise OSError("disk full")

    monkeypatch.setattr(A, "insert_columns", fails)
    before = snapshot(project)
    with pytest.raises(OSError, match="disk full"):
        project.import_annotations(_coco_file(tmp_path / "b.json", keys, CHECKED_MIN + 500), format="coco",
                                   annotator="vendor")
    assert snapshot(project) == before
    assert _triggers(project) == checks
    assert _indexes(project) == indexes
    with pytest.raises(sa.exc.DBAPIError, match="labkit: annotation refused"):
        _raw_bad_box(project)


@pytest.mark.postgres
def test_postgresql_defers_indexes_only_where_it_may(pg_url, tmp_path, image_files, monkeypatch):
    """PostgreSQL drops the plain indexes of a large import (and builds the same again) only as the
    tables' owner and when no one is reading: with a reader's transaction open, or as an admin
    member's own login, the rows go into the indexes as they are written, and the import works."""
    import labkit.store.annotations as A
    import labkit.store.bulk as B
    from labkit import Project

    monkeypatch.setattr(B, "INDEXED_MIN", 1_000)
    monkeypatch.setattr(B, "INDEX_LOCK_TIMEOUT", "300ms")
    owner = Project.create(pg_url, classes=["cat", "dog", "bird"], workdir=tmp_path / "work")
    owner.add_images(image_files)
    owner.add_annotator("vendor", role="annotator")
    owner.add_annotator("adm", role="admin", password="pw-adm", db_user=f"adm_{tmp_path.name[-8:]}")
    keys = [f.name for f in image_files]
    definitions = "SELECT indexdef FROM pg_indexes WHERE tablename = 'annotations' ORDER BY indexname"
    with owner.store.ctx.connect() as conn:
        before = conn.exec_driver_sql(definitions).scalars().all()
    assert sum(" UNIQUE " not in d for d in before) >= 5
    seen: list[int] = []  # the indexes of annotations before each batch, inside the import's transaction
    real = A.insert_columns

    def counting(conn, table, columns, **kw):
        seen.append(conn.exec_driver_sql("SELECT count(*) FROM pg_indexes WHERE tablename = 'annotations'").scalar())
        real(conn, table, columns, **kw)

    monkeypatch.setattr(A, "insert_columns", counting)
    monkeypatch.setattr(B, "BATCH", 500)
    reader = sa.create_engine(sa.make_url(pg_url).set(drivername="postgresql+psycopg"))

    def imported(project, name, rows=1_500):
        seen.clear()
        project.import_annotations(_coco_file(tmp_path / name, keys, rows), format="coco", annotator="vendor")
        with owner.store.ctx.connect() as conn:
            assert conn.exec_driver_sql(definitions).scalars().all() == before  # the same, all there
            assert conn.exec_driver_sql("SELECT count(*) FROM annotations").scalar() == expected
        return seen[:]

    try:
        expected = 1_500
        assert min(imported(owner, "a.json")) < len(before)  # dropped once the rows written were many
        with monkeypatch.context() as streamed:  # ... also from the worker of a streamed, pipelined import
            from labkit.formats import coco
            from labkit.services import interchange

            streamed.setattr(interchange, "STREAM_BYTES", 0)
            streamed.setattr(coco, "STREAM_BATCH", 400)
            expected += 3_000
            counts = imported(owner, "s.json", 3_000)
            assert len(counts) > 5 and counts[0] == len(before) and min(counts) < len(before)
        with reader.connect() as conn:  # a reader's open transaction holds its lock on annotations
            conn.exec_driver_sql("SELECT count(*) FROM annotations").scalar()
            expected += 3_000
            assert set(imported(owner, "b.json", 3_000)) == {len(before)}
            conn.rollback()
        admin = Project.open(sa.make_url(pg_url).set(username=f"adm_{tmp_path.name[-8:]}", password="pw-adm")
                             .render_as_string(hide_password=False), workdir=tmp_path / "work")
        try:
            expected += 6_000
            assert set(imported(admin, "c.json", 6_000)) == {len(before)}  # not the tables' owner
        finally:
            admin.close()
    finally:
        reader.dispose()
        owner.close()


def test_deferred_indexes_drop_only_plain_indexes_of_a_large_write_and_build_them_again():
    """The indexes come back as they were (on an error too); unique ones and writes smaller than
    the table never lose theirs."""
    from labkit.store import bulk as B

    engine = sa.create_engine("sqlite://")
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.Integer),
                     sa.Column("b", sa.Integer), sa.Index("ix_t_a", "a"), sa.Index("ux_t_b", "b", unique=True))

    def indexes(conn) -> list[tuple[str, str]]:
        return conn.exec_driver_sql("SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type = 'index' "
                                    "ORDER BY name").all()

    with engine.begin() as conn:
        table.create(conn)
        before = indexes(conn)
        assert ("ix_t_a", "CREATE INDEX ix_t_a ON t (a)") in before and len(before) == 2
        with B.deferred_indexes(conn, table) as expect:
            expect(B.INDEXED_MIN - 1)
            assert indexes(conn) == before  # not yet large
            expect(1)
            assert indexes(conn) == [r for r in before if r[0] != "ix_t_a"]  # the unique one stays
            conn.execute(table.insert(), [{"a": i % 7, "b": i} for i in range(100)])
            with pytest.raises(sa.exc.IntegrityError):  # still refused while the plain index is away
                conn.execute(table.insert(), [{"a": 1, "b": 5}])
        assert indexes(conn) == before
        with pytest.raises(OSError), B.deferred_indexes(conn, table) as expect:
            expect(B.INDEXED_MIN)
            raise OSError("disk full")
        assert indexes(conn) == before
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        conn.execute(table.insert(), [{"a": 0, "b": B.INDEXED_MIN + i} for i in range(2 * B.INDEXED_MIN)])
        with B.deferred_indexes(conn, table) as expect:  # fewer rows than the table holds: rebuilding costs more
            expect(B.INDEXED_MIN)
            assert indexes(conn) == before


def test_an_import_refuses_an_unknown_source(project, tmp_path, image_files):
    """The database used to be what refused source='bogus'; with its checks suspended the API must."""
    project.add_annotator("vendor", role="annotator")
    before = snapshot(project)
    path = _coco_file(tmp_path / "a.json", [f.name for f in image_files], 10)
    with pytest.raises(ValueError, match="source='bogus' is not a provenance source"):
        project.import_annotations(path, format="coco", annotator="vendor", source="bogus")
    assert snapshot(project) == before
    project.import_annotations(path, format="coco", annotator="vendor", source="import:vendor-x")
    assert set(project.annotations()["source"]) == {"import:vendor-x"}


# --------------------------------------------------------------------------------- add_images --
def _manifest(files: list[Path]) -> pd.DataFrame:
    from labkit._util.hashing import sha256_file

    return pd.DataFrame({"path": [str(f) for f in files], "width": 40, "height": 30,
                         "sha256": [sha256_file(f) for f in files]})


def test_a_manifest_registers_what_reading_the_files_would(location, tmp_path, image_files):
    from labkit import Project

    read = Project.create(tmp_path / "read", classes=["cat"], user="admin")
    read.add_images(image_files, split="train")
    listed = Project.create(location, classes=["cat"], user="admin")
    m = _manifest(image_files)
    m["split"] = "train"
    m.to_csv(tmp_path / "m.csv", index=False)
    ids = listed.add_images(manifest=tmp_path / "m.csv")
    cols = ["path", "sha256", "width", "height", "split"]
    a, b = read.images(), listed.images()
    b["path"] = [str(Path(x)) for x in b["path"]]
    a["path"] = [str(read.store.ctx.resolve(x)) for x in a["path"]]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))
    assert ids == list(b.index)
    assert listed.verify(progress=False).attrs["summary"]["changed"] == 0


def test_a_bad_manifest_names_its_rows_and_adds_nothing(project, tmp_path, image_files):
    from labkit import ImageError

    m = _manifest(image_files)
    m.loc[1, "sha256"] = "xyz"
    m.loc[3, "width"] = -4
    before = snapshot(project)
    with pytest.raises(ImageError) as err:
        project.add_images(manifest=m.assign(path=[str(tmp_path / "other" / f"{i}.png") for i in range(5)]))
    assert "rows [1] (1): sha256 is not 64 hexadecimal digits" in str(err.value)
    assert "rows [3] (1): width is not a positive integer" in str(err.value)
    ok = _manifest(image_files).assign(path=[str(tmp_path / "gone.png")] + [str(f) for f in image_files[1:]])
    with pytest.raises(ImageError, match=r"gone.png: file not found"):
        project.add_images(manifest=ok)
    with pytest.raises(ImageError, match="already in the project"):
        project.add_images(manifest=_manifest(image_files))
    assert snapshot(project) == before


def _empty_files(folder: Path, n: int) -> pd.DataFrame:
    """``n`` empty files and a manifest for them (64x48, distinct made-up hashes): registered, never read."""
    folder.mkdir()
    for i in range(n):
        (folder / f"{i}.png").touch()
    return pd.DataFrame({"path": [str(folder / f"{i}.png") for i in range(n)], "width": 64, "height": 48,
                         "sha256": [f"{i:064x}" for i in range(n)]})


def test_tens_of_thousands_of_images_in_one_call(tmp_path):
    """More paths than SQLite binds in one statement (32,766): the bulk path batches its lookups."""
    from labkit import Project

    n = 40_000
    m = _empty_files(tmp_path / "many", n).assign(subject=[f"s{i % 50_000}" for i in range(n)])
    p = Project.create(tmp_path / "proj", classes=["cat"], user="admin")
    t = time.perf_counter()
    ids = p.add_images(manifest=m)
    elapsed = time.perf_counter() - t
    assert ids == list(range(1, n + 1))
    assert len(p.subjects()) == n
    assert elapsed < 60, elapsed
    with pytest.raises(Exception, match="already in the project"):
        p.add_images(manifest=m)


def test_images_add_manifest_on_the_command_line(tmp_path, image_files):
    from click.testing import CliRunner

    from labkit import Project
    from labkit.cli import main

    Project.create(tmp_path / "proj", classes=["cat"], user="admin").close()
    _manifest(image_files).to_parquet(tmp_path / "m.parquet")
    res = CliRunner(env={"LABKIT_USER": "admin"}).invoke(main, ["images", "add", "-P", str(tmp_path / "proj"),
                                                                "--manifest", str(tmp_path / "m.parquet")])
    assert res.exit_code == 0 and "added 5 images" in res.output, res.output
    res = CliRunner(env={"LABKIT_USER": "admin"}).invoke(main, ["images", "add", "-P", str(tmp_path / "proj")])
    assert res.exit_code == 2 and "--manifest FILE" in res.output, res.output
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(Project.open(tmp_path / "proj", user="admin").images()) == 5


def test_seventy_thousand_images_in_one_call_on_each_backend(location, tmp_path):
    """More ids than PostgreSQL binds in one statement (65,535): every IN list of a call is batched.

    The audit of a COCO-sized project failed here on PostgreSQL (image_files of 118k ids).
    """
    from labkit import Project

    n = 70_000
    m = _empty_files(tmp_path / "many", n)
    p = Project.create(location, classes=["cat", "dog"], user="admin")
    try:
        ids = p.add_images(manifest=m)
        p.add_annotator("ana")
        new = p.add_annotations([dict(image=i, kind="label", label="cat", annotator="ana") for i in ids])
        assert len(new) == n and new == sorted(new)
        got = p.annotations()
        assert got["task"].tolist() == ids and got.index.tolist() == new
        with p.store.ctx.connect() as conn:
            assert len(p.store.images.find(conn, ids)) == n
            assert len(p.store.ctx.policy.image_facts(conn, ids, p.store.ctx.policy.actor(conn))) == n
    finally:
        p.close()


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="ab./\\", max_size=14))
def test_an_image_key_s_file_name_is_pure_posix_path_s(path):
    """The import matches keys by file name without building a PurePosixPath for every image."""
    from pathlib import PurePosixPath

    from labkit.services.interchange import _name

    assert _name(path) == PurePosixPath(path).name


def test_annotations_checks_again_only_what_the_database_could_not(project, monkeypatch):
    """Rows the database checked exactly when they were stored (boxes, polygons, points, labels of a
    project that always had its checks) are not checked again; masks (the database does not decode
    RLE) are, so a corrupt one written with raw SQL is skipped with a warning."""
    import labkit.store.rows as A  # where a read screens its rows

    project.add_annotations([dict(image=1, kind="box", label="cat", annotator="ana", geometry=[1, 2, 9, 9]),
                             dict(image=1, kind="label", label="dog", annotator="ana"),
                             dict(image=2, kind="polygon", label="cat", annotator="ben",
                                  geometry=[[1, 1], [9, 1], [5, 8]])])
    cast = "CAST(:g AS json)" if project.backend == "postgresql" else ":g"
    with project.store.ctx.engine.begin() as conn:  # counts the database cannot decode: 0 pixels of 1,200
        conn.execute(sa.text("INSERT INTO annotations (image_id, annotator_id, kind, class_id, geometry, source, "
                             f"provenance, version, created_at, updated_at) VALUES (1, 1, 'mask', 1, {cast}, "
                             "'human', '{}', 1, :t, :t)"), {"g": '{"size": [30, 40], "counts": "0"}',
                                                            "t": "2026-01-01 00:00:00"})
    seen: list[str] = []
    real = A.normalize_many
    monkeypatch.setattr(A, "normalize_many", lambda kinds, *a, **k: seen.extend(kinds) or real(kinds, *a, **k))
    with pytest.warns(UserWarning, match=r"annotation 4: .*mask"):
        got = project.annotations()
    assert sorted(got["kind"]) == ["box", "label", "polygon"]
    assert seen == ["mask"]


@pytest.mark.parametrize("depth", [1, 3])
def test_writes_behind_overlaps_in_order_and_waits(location, tmp_path, depth):
    """The writes run in a worker thread, one at a time and in order, their errors reach the caller,
    the writes after a failed one do not run, and the block is not left while one is under way."""
    import threading

    from labkit import Project
    from labkit.store.bulk import writes_behind

    p = Project.create(location, classes=["cat"])
    pg = p.store.ctx.backend == "postgresql"
    ran: list[tuple[int, int]] = []
    started = threading.Event()

    def write(k: int, slow: bool = False):
        def run():
            started.set()
            if slow:  # a write that takes the server a while
                conn.exec_driver_sql("SELECT pg_sleep(0.3)" if pg else "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL "
                                     "SELECT i + 1 FROM c WHERE i < 2000000) SELECT count(*) FROM c")
            ran.append((k, threading.get_ident()))
        return run
    with p.store.ctx.engine.connect() as conn:
        with writes_behind(conn, depth=depth) as submit:
            for k in range(5):
                submit(write(k))
        assert [k for k, _ in ran] == list(range(5))
        assert {t != threading.get_ident() for _, t in ran} == {True}

        ran.clear()
        started.clear()
        with pytest.raises(KeyError, match="stop"):
            with writes_behind(conn, depth=depth) as submit:
                submit(write(0, slow=True))
                assert started.wait(10)
                raise KeyError("stop")  # the caller fails while the write is under way
        assert [k for k, _ in ran] == [0]  # ... and the write had finished when the block was left

        gate = threading.Event()

        def failing():
            assert gate.wait(10)  # the later writes are queued (depth 3) before this one fails
            raise ValueError("batch 1 refused")
        ran.clear()
        with pytest.raises(ValueError, match="batch 1 refused"):
            with writes_behind(conn, depth=depth) as submit:
                submit(write(0))
                submit(failing)
                if depth > 1:
                    submit(write(2))  # waits its turn: the failed write's successors never run
                gate.set()
                submit(write(3))  # raises batch 1's error (or the block's end does)
                submit(write(4))
        assert [k for k, _ in ran] == [0]
    with pytest.raises(ValueError, match="depth=0"):
        with writes_behind(conn, depth=0):
            pass
    p.close()


def test_check_constraints_name_their_values_without_in_lists():
    """SQLite builds a temporary index for a CHECK's ``IN`` list on every row an executemany
    inserts (~1 us each); ``one_of`` writes the same condition as ``=`` comparisons."""
    import sqlite3

    checks = [str(c.sqltext) for t in S.metadata.tables.values() for c in t.constraints
              if isinstance(c, sa.CheckConstraint)]
    assert len(checks) >= 10 and not [c for c in checks if " IN (" in c.upper()]
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (v)")
    tried = (None, "box", "mask", "BOX", "box ", "", "poly", 1, 0.5, b"box")
    con.executemany("INSERT INTO t VALUES (?)", [(v,) for v in tried])
    values = ("box", "polygon", "mask")
    got = con.execute(f"SELECT v IN {values}, {S.one_of('v', values)} FROM t").fetchall()
    assert [a for a, _ in got] == [None, 1, 1, 0, 0, 0, 0, 0, 0, 0]  # what IN says
    assert [b for _, b in got] == [a for a, _ in got]


def test_int_fields_write_the_json_encode_json_writes():
    """IntFields.json_with (a % template over integer columns) gives encode_json's text of each item
    with the key added: the stored provenance of the import's column path is byte for byte the
    record path's (the hash chain seals the text)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from labkit.formats._columns import IntFields
    from labkit.store.bulk import encode_json

    ints = st.integers(min_value=-(2**70), max_value=2**70)
    text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
    note = st.dictionaries(text, st.one_of(text, ints, st.floats(allow_nan=False, allow_infinity=False)),
                           max_size=3)

    @settings(max_examples=200, deadline=None)
    @given(st.integers(0, 6).flatmap(lambda n: st.lists(st.tuples(ints, ints, ints), min_size=n, max_size=n)),
           note)
    def check(rows, value):
        fields = IntFields("coco", {"id": [r[0] for r in rows], "image_id": [r[1] for r in rows],
                                    "iscrowd": [r[2] for r in rows]})
        got = fields.json_with("import", value)
        if got is None:  # beyond orjson's 64 bits: encode_json falls back to json, the caller encodes dicts
            big = [v for r in rows for v in r] + [v for v in value.values() if type(v) is int]
            assert any(not -(2**63) <= v < 2**64 for v in big)
        else:
            assert got == [encode_json({**item, "import": value}) for item in fields]
        assert list(fields) == [{"coco": {"id": a, "image_id": b, "iscrowd": c}} for a, b, c in rows]
        assert list(fields.take(list(range(len(rows)))[::-1])) == list(fields)[::-1]

    check()
    assert IntFields("a b", {"id": [1]}).json_with("import", 1) is None  # a key to escape: the caller encodes
    with pytest.raises(ValueError, match="integers"):
        IntFields("coco", {"id": [1], "iscrowd": [True]})


def test_insert_columns_stores_the_rows_executemany_stores():
    """SQLite's one-statement batches (integers and text offsets as fixed-width fields, texts as
    blobs) store what executemany stores, value for value and type for type, in order; batches it
    cannot carry exactly (floats, NULs, varying NULL integers, beyond 64 bits) take executemany."""
    from labkit.store.bulk import _sqlite_payload, insert_columns

    ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
    text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
    value = st.one_of(ints, text, st.none(), st.floats(allow_nan=False), st.just(2**64), st.just(True))
    column = st.one_of(st.lists(ints, min_size=1, max_size=1), st.lists(st.one_of(text, st.none())),
                       st.lists(value), st.lists(st.sampled_from([7, 7, 7])), st.lists(st.just("same")))
    engine = sa.create_engine("sqlite://")
    meta = sa.MetaData()
    t = sa.Table("t", meta, *(sa.Column(f"c{i}") for i in range(4)), sa.Column("k", sa.Text))
    with engine.begin() as con:  # no declared types: typeof() shows what was stored
        con.exec_driver_sql("CREATE TABLE t (c0, c1, c2, c3, k)")

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.integers(1, 30).flatmap(lambda n: st.lists(column.map(lambda c: (c * n)[:n] if c else []),
                                                         min_size=4, max_size=4)), st.integers(1, 7))
    def check(cols, batch):
        n = min(map(len, cols))
        if n == 0:
            return
        cols = [c[:n] for c in cols]
        read = "SELECT c0, c1, c2, c3, k, typeof(c0), typeof(c1), typeof(c2), typeof(c3) FROM t ORDER BY rowid"
        with engine.begin() as con:
            con.exec_driver_sql("DELETE FROM t")
            try:
                con.exec_driver_sql("INSERT INTO t (c0, c1, c2, c3, k) VALUES (?, ?, ?, ?, 'z')", list(zip(*cols)))
            except OverflowError:  # beyond 64 bits: insert_columns refuses it as executemany does
                with pytest.raises(OverflowError):
                    insert_columns(con, t, {f"c{i}": c for i, c in enumerate(cols)}, batch=batch)
                return
            want = con.exec_driver_sql(read).all()
            con.exec_driver_sql("DELETE FROM t")
            assert insert_columns(con, t, {f"c{i}": c for i, c in enumerate(cols)}, constants={"k": "z"},
                                  batch=batch) == n
            assert con.exec_driver_sql(read).all() == want

    check()
    # what the one-statement path takes, and what goes to executemany
    assert _sqlite_payload([[1, -(2**63), 2**63 - 1], ["a", None, "\u00e9\u4e2d"], ["k"] * 3]) is not None
    assert _sqlite_payload([[1.5, 2.5]]) is None and _sqlite_payload([["a\0", "b"]]) is None
    assert _sqlite_payload([[1, None]]) is None and _sqlite_payload([[1, 2**64]]) is None


@pytest.mark.postgres
def test_pg_insert_columns_stores_the_rows_insert_many_stores(pg_url):
    """PostgreSQL's column batches (varying columns as arrays, equal ones as one scalar) store
    what the row path stores, in order: equal-looking values of other types (1 and 1.0, 0.0 and
    -0.0, a column of NULLs) stay what they were."""
    from datetime import datetime, timezone

    from labkit.store.bulk import insert_columns, insert_many

    engine = sa.create_engine(pg_url)
    t = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.BigInteger),
                 sa.Column("b", sa.Text), sa.Column("c", sa.Float), sa.Column("d", sa.JSON),
                 sa.Column("k", sa.Text), sa.Column("at", sa.DateTime(timezone=True)))
    t.create(engine)
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    ints = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.none())
    texts = st.one_of(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\0"),
                              max_size=6), st.none())
    floats = st.one_of(st.floats(allow_nan=False), st.sampled_from([0.0, -0.0]), st.none())

    def col(values):  # varying, or one value repeated (the scalar path)
        return st.one_of(st.lists(values, min_size=30, max_size=30), values.map(lambda v: [v] * 30))
    read = "SELECT a, b, c, c::text, d::text, k, at FROM t ORDER BY id"

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(col(ints), col(texts), col(floats), col(st.sampled_from(['{"x": 1}', '[1, 2]', 'null'])),
           st.integers(1, 31))
    @example([7] * 30, [None] * 30, [0.0] + [-0.0] * 29, ["null"] * 30, 31)  # equal, not the same
    def check(a, b, c, d, batch):
        with engine.begin() as con:
            con.exec_driver_sql("TRUNCATE t RESTART IDENTITY")
            insert_many(con, t, ("a", "b", "c", "d", "k", "at"), [(*r, "z", at) for r in zip(a, b, c, d)])
            want = con.exec_driver_sql(read).all()
            con.exec_driver_sql("TRUNCATE t RESTART IDENTITY")
            assert insert_columns(con, t, {"a": a, "b": b, "c": c, "d": d}, constants={"k": "z", "at": at},
                                  batch=batch) == 30
            assert con.exec_driver_sql(read).all() == want
    try:
        check()
    finally:
        engine.dispose()


def test_the_column_path_writes_the_geometry_text_encode_json_writes():
    """The COCO column path writes boxes' and polygons' JSON from one orjson call over a batch's
    numbers, cut apart: each text must be encode_json's of the canonical dict, byte for byte,
    for any finite float (the hash chain seals the text; the record path encodes dicts)."""
    from labkit.formats import coco_columns as cc
    from labkit.formats._columns import JsonTexts
    from labkit.store.bulk import encode_json

    finite = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                       st.sampled_from([0.0, -0.0, 5e-324, 1e16, 1e-5, 123.0, 1.7976931348623157e308]))

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(finite, finite, finite, finite), max_size=5),
           st.lists(st.lists(st.tuples(finite, finite), min_size=1, max_size=5), min_size=1, max_size=4))
    def check(boxes, rings):
        texts = [cc._BOX % tuple(r.split(",")) for r in cc._row_texts(np.array(boxes, dtype=float).reshape(-1, 4))]
        assert texts == [encode_json({"x0": a, "y0": b, "x1": c, "y1": d}) for a, b, c, d in boxes]
        xy = np.array([p for r in rings for p in r], dtype=float)
        got = cc._ring_texts(xy, [len(r) for r in rings])
        assert ["[" + t + "]" for t in got] == [encode_json([list(p) for p in r]) for r in rings]

    check()
    g = JsonTexts([encode_json({"points": [[1.5, 2.0]]}), encode_json({"x0": 0.0, "y0": 1.0, "x1": 2.0, "y1": 3.0})])
    assert list(g) == [{"points": [[1.5, 2.0]]}, {"x0": 0.0, "y0": 1.0, "x1": 2.0, "y1": 3.0}] == g
    assert g.take([1]).texts == g.texts[1:] and g.replaced({0: {"points": [[-0.0, 1e300]]}}).texts[0] == \
        encode_json({"points": [[-0.0, 1e300]]})


@pytest.mark.parametrize("field", ["score", "id", "iscrowd", "area"])
def test_the_coco_column_path_tells_a_null_from_an_absent_field(field, tmp_path):
    """A null is a value: the column path must not take it for a missing field (a null score is an
    error, a null iscrowd is kept in provenance), while a null area is as good as none, as before."""
    from labkit.formats import FormatError, coco

    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 2.0, "bbox": [1, 2, 3, 4]}
            for i in range(5)]
    anns[3][field] = None
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 50, "height": 40}],
                                "categories": [{"id": 1, "name": "a"}], "annotations": anns}))
    if field in ("score", "id"):
        with pytest.raises(FormatError, match=rf"annotations\[3\]: {field} is (NoneType )?None"):
            coco.read(path)
        return
    objects = list(coco.read(path).objects)
    assert len(objects) == 5
    assert objects[3].provenance["coco"]["iscrowd"] is (None if field == "iscrowd" else 0)


_TIMES = st.one_of(st.none(), st.datetimes(min_value=pd.Timestamp("1900-01-01").to_pydatetime(),
                                           max_value=pd.Timestamp("2200-01-01").to_pydatetime())
                   .map(lambda t: t.isoformat(sep=" ")))


@settings(max_examples=200, deadline=None)
@given(st.lists(_TIMES, max_size=30), st.integers(1, 4))
def test_parse_times_parses_as_to_datetime_of_every_row(texts, repeats):
    from labkit.store.bulk import parse_times

    values = texts * repeats  # repeated texts: each distinct one is parsed once
    expected = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601")
    got = parse_times(values)
    assert got.dtype == expected.dtype
    pd.testing.assert_series_equal(got, expected, check_index_type=False)


def test_no_gc_hands_what_it_built_to_the_oldest_generation_unwalked():
    import gc

    from labkit.store.bulk import no_gc

    assert gc.isenabled()
    with no_gc():
        assert not gc.isenabled()
        built = [[i] for i in range(1000)]
    assert gc.isenabled()
    young = {id(o) for o in gc.get_objects(0)} | {id(o) for o in gc.get_objects(1)}
    assert not young & {id(o) for o in built}  # none left for a young collection to walk
    oldest = {id(o) for o in gc.get_objects(2)}
    assert {id(o) for o in built} <= oldest  # still tracked: a full collection sees them
    # a program's own frozen objects are left frozen; checked in a fresh interpreter, where no
    # other thread's no_gc can freeze and unfreeze between the two counts (the suite's can)
    code = textwrap.dedent("""
        import gc
        from labkit.store.bulk import no_gc
        gc.freeze()
        n = gc.get_freeze_count()
        with no_gc():
            more = [[i] for i in range(10)]
        assert gc.get_freeze_count() == n and more
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_the_read_of_delivered_labels_follows_the_id_order_without_sorting(tmp_path, image_files):
    """``annotations()`` reads the table in id order: the delivered-label filter must not send SQLite
    through the ``state`` index, which returns rows out of order and sorts them all afterwards.
    (SQLite's query plan: PostgreSQL plans by its own statistics.)"""
    from labkit import Project

    project = Project.create(tmp_path / "proj", classes=["cat"], workdir=tmp_path / "work")
    project.add_images(image_files[:2])
    project.add_annotator("ana")
    project.add_annotations([dict(image=1 + i % 2, kind="box", label="cat", annotator="ana",
                                  geometry=[1, 2, 9, 9 + i % 5]) for i in range(300)])
    repo = project.store.annotations
    query = repo._query(kind=None, image=None, annotator=None, source=None, label=None, include_deleted=False,
                        include_withdrawn=False, include_proposals=False)
    with project.store.ctx.engine.connect() as conn:
        sql = str(query(conn).compile(conn, compile_kwargs={"literal_binds": True}))
        plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
    assert "SCAN annotations" in plan and not any("TEMP B-TREE" in step for step in plan), plan
    ids = project.annotations().index.tolist()
    assert len(ids) == 300 and ids == sorted(ids)
    project.close()
