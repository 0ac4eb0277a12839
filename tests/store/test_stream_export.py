"""Reading the store a batch at a time (``annotations.batches``) and exports that stream to disk."""
from __future__ import annotations

import json
import tracemalloc
import warnings

import pandas as pd
import pytest

from labkit import Project
from labkit.formats import get_writer
from tests.conftest import write_image
from tests.store.test_project import _store_unchecked

BOX = [1, 1, 5, 5]


@pytest.fixture
def busy(location, tmp_path):
    """12 images (3 of a subject who withdraws consent), 3 annotators, boxes, labels, points and polygons
    in an order unrelated to the images', some deleted, one proposal pending and one accepted."""
    p = Project.create(location, classes=["cat", "dog", "bird"], workdir=tmp_path / "work")
    for name in ["ana", "ben"]:
        p.add_annotator(name)
    p.add_annotator("sim", simulated=True)
    files = [write_image(tmp_path / "imgs" / f"i{i}.png", seed=i) for i in range(12)]
    p.add_images(files, subject=[None] * 9 + ["p9"] * 3, consent="given", purpose="tests")
    recs = []
    for n in range(60):
        image, kind = 1 + (n * 7) % 12, ["box", "label", "point", "polygon"][n % 4]
        geometry = {"box": BOX, "label": None, "point": [[2, 3]], "polygon": [[1, 1], [9, 1], [5, 8]]}[kind]
        recs.append({"image": image, "kind": kind, "label": ["cat", "dog", "bird"][n % 3],
                     "annotator": ["ana", "ben", "sim"][n % 3], "geometry": geometry, "score": n / 60})
    ids = p.add_annotations(recs)
    for aid in ids[::9]:
        p.delete_annotation(aid)
    props = p.add_proposals([{"image": 2, "kind": "box", "label": "cat", "annotator": "ana", "geometry": BOX,
                              "source": "sam"} for _ in range(2)])
    p.assign([2], ["ben"])
    p.review(props[0], "accept", by="ben")
    p.withdraw_consent("p9")
    yield p
    p.close()


def gathered(batches) -> pd.DataFrame:
    """The batches as one frame, typed as table() types the whole (a batch of only unscored rows has
    an object ``score`` column)."""
    df = pd.concat(list(batches))
    return df.astype({"score": float, **({"state": "str"} if "state" in df and df["state"].notna().any() else {})})


@pytest.mark.parametrize("rows", [1, 7, 1000])
def test_batches_are_the_table(busy, rows):
    whole = busy.annotations()
    assert len(whole) > 20 and whole["task"].nunique() > 5
    pd.testing.assert_frame_equal(gathered(busy.store.annotations.batches(rows=rows)), whole)
    by_image = list(busy.store.annotations.batches(rows=rows, by_image=True))
    got = pd.concat(by_image)
    pd.testing.assert_frame_equal(got.sort_index(), whole)
    for batch in by_image:  # whole images, in annotation id order inside
        assert batch.index.is_monotonic_increasing
        assert len(batch) <= rows or batch["task"].nunique() == 1
    tasks = [sorted(set(b["task"])) for b in by_image]
    assert [t for ts in tasks for t in ts] == sorted(whole["task"].unique())  # no image in two batches
    for kind in ["box", "point"]:  # a single kind spreads its geometry as table() does
        pd.testing.assert_frame_equal(gathered(busy.store.annotations.batches(rows=rows, kind=kind)),
                                      busy.annotations(kind=kind))
    withdrawn = busy.store.annotations.batches(rows=rows, include_withdrawn=True, include_proposals=True)
    pd.testing.assert_frame_equal(gathered(withdrawn),
                                  busy.annotations(include_withdrawn=True, include_proposals=True))


def test_a_batched_read_is_one_snapshot(busy):
    """Writes that land while a batched read is under way are not half seen."""
    before = busy.annotations()
    batches = busy.store.annotations.batches(rows=5)
    first = next(batches)
    busy.add_annotation(image=1, kind="box", label="cat", annotator="ana", geometry=BOX)
    busy.delete_annotation(int(before.index[-1]))
    busy.update_annotation(int(before.index[-2]), label="bird")
    pd.testing.assert_frame_equal(pd.concat([first, *batches]), before)
    assert len(busy.annotations()) == len(before)  # one added, one deleted: the table did change
    assert not busy.annotations().equals(before)


def test_batches_warn_once_about_bad_stored_rows(busy):
    ana = int(busy.annotators().loc["ana", "id"])
    bad = _store_unchecked(busy, [(1, ana, "box", '{"x0": 0, "y0": 0, "x1": 5}', "human"),
                                  (3, ana, "bogus", None, "human")])
    with pytest.warns(UserWarning, match=r"2 stored annotations are not valid") as caught:
        whole = busy.annotations()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = gathered(busy.store.annotations.batches(rows=3))
    assert [str(w.message) for w in seen] == [str(w.message) for w in caught]
    assert not set(bad) & set(got.index)
    pd.testing.assert_frame_equal(got, whole)


def test_an_annotator_in_blind_mode_reads_only_their_own(tmp_path, busy):
    """Roles and blind mode apply to batches as to table(): the query is the same one."""
    if busy.backend != "sqlite":
        return  # PostgreSQL members log in as themselves: test_access.py; the query is shared
    busy.assign(None, ["ana"])
    ana = Project.open(busy.store.ctx.location, user="ana")
    mine = ana.annotations()
    assert set(mine["worker"]) == {"ana"}
    pd.testing.assert_frame_equal(gathered(ana.store.annotations.batches(rows=2, by_image=True)).sort_index(), mine)
    ana.close()


STREAMED = {"coco": "out.json", "labelstudio": "out.json", "yolo": "out", "aihub": "out", "cvat": "out.xml"}


@pytest.mark.parametrize("fmt", sorted(STREAMED))
def test_a_streamed_export_writes_what_the_whole_writer_writes(busy, fmt, tmp_path, monkeypatch):
    """The export reads the store 4 rows at a time; the files equal the writer's on the whole list."""
    from labkit.formats import Dataset, ObjectRecord
    from labkit.services import export as export_module

    whole_dir, streamed_dir = tmp_path / "whole", tmp_path / "streamed"
    monkeypatch.setattr(export_module, "EXPORT_BATCH", 4)
    reads = []
    real = busy.store.annotations.batches
    monkeypatch.setattr(busy.store.annotations, "batches", lambda **kw: (reads.append(kw), real(**kw))[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        busy.export(streamed_dir / STREAMED[fmt], format=fmt)
        assert reads and all(kw["rows"] == 4 for kw in reads)
        ann, imgs = busy.annotations(), busy.images()
        keys = {i: p.rsplit("/", 1)[-1] for i, p in imgs["path"].items()}
        from labkit.formats import ImageRecord
        ds = Dataset([ImageRecord(keys[i], int(r.width), int(r.height), dict(r.attributes or {}), r.subject,
                                  f"image {i}") for i, r in imgs.iterrows()],
                     [ObjectRecord(keys[r.task], r.kind, r.label, r.geometry, None if pd.isna(r.score) else r.score,
                                   r.worker, dict(r.provenance), f"annotation {aid}") for aid, r in ann.iterrows()],
                     busy.classes())
        get_writer(fmt)(ds, whole_dir / STREAMED[fmt])
    files = {p.relative_to(streamed_dir): p.read_bytes() for p in streamed_dir.rglob("*") if p.is_file()}
    assert files == {p.relative_to(whole_dir): p.read_bytes() for p in whole_dir.rglob("*") if p.is_file()}
    assert len(files) >= 2 if fmt in ("yolo", "aihub") else len(files) == 1
    logged = busy.audit_log().query("action == 'export'")["details"].iloc[-1]
    assert logged["annotations"] == len(ann)


@pytest.mark.parametrize("fmt", ["coco", "labelstudio"])
def test_a_streamed_export_holds_a_batch_not_the_project(tmp_path, fmt, monkeypatch):
    """6,000 polygons: the export's peak memory with batches of 200 is a fraction of reading them whole."""
    from labkit.services import export as export_module

    p = Project.create(tmp_path / "p", classes=["cat"], workdir=tmp_path / "w")
    p.add_annotator("ana")
    p.add_images([write_image(tmp_path / "imgs" / f"i{i}.png", seed=i) for i in range(40)], progress=False)
    ring = [[1 + (k % 7) * 3.25, 1 + (k // 7) * 3.5] for k in range(7)] + [[30, 28], [1, 28]]
    p.add_annotations({"image": 1 + n % 40, "kind": "polygon", "label": "cat", "annotator": "ana",
                       "geometry": ring, "provenance": {"note": "x" * 40}} for n in range(6_000))

    def peak(batch: int) -> int:
        monkeypatch.setattr(export_module, "EXPORT_BATCH", batch)
        tracemalloc.start()
        p.export(tmp_path / f"{fmt}-{batch}.json", format=fmt)
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return top
    whole, streamed = peak(10**9), peak(200)
    assert (tmp_path / f"{fmt}-200.json").read_bytes() == (tmp_path / f"{fmt}-{10**9}.json").read_bytes()
    assert len(json.loads((tmp_path / f"{fmt}-200.json").read_text())["annotations"]
               if fmt == "coco" else json.loads((tmp_path / f"{fmt}-200.json").read_text())) > 0
    assert streamed < whole / 4, (streamed, whole)
    p.close()
