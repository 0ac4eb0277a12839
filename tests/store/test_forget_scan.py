"""After forget_subject, nothing of the subject is left in the database, caches, reports or exports.

A project with three subjects gets every kind of derived data through the real code
paths: SAM embeddings (segment_anything's modules, tiny random weights), saved pool
predictions (a timm checkpoint pool), a papermill audit report, and exports inside the
project folder (plain, with the images, and anonymised) and outside it (with a
recipient). Every file under the project (and, on PostgreSQL, every row of every table)
is scanned for the erased subject's id and image hashes, in the encodings labkit writes
(UTF-8; UTF-32 inside ``.npz`` arrays), in file names, and as the hash of a file's bytes
(a copied image). The same scan must find them before the erasure, so a scan that
cannot see is caught too.

On SQLite the raw bytes of ``project.db`` and ``project.db-wal`` are scanned as well,
with and without another process holding a read transaction open.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from labkit import Project
from labkit.store import schema as S

RECIPIENT = "partner lab (agreement 2026-14)"

SUBJECTS = {"alpha": 2, "beta": 2, "gamma": 1}


def _needles(subject: str, hashes: list[str]) -> list[bytes]:
    out = []
    for text in [subject, *hashes, *(h[:12] for h in hashes)]:  # reports show 12-character prefixes
        out += [text.encode(), text.encode("utf-32-le")]
    return out


def _scan_files(folders: list[Path], needles: list[bytes], contents: Sequence[str] = ()) -> list[str]:
    """Files under ``folders`` whose name or bytes hold a needle, or whose sha256 is in ``contents``."""
    hits = []
    for folder in folders:
        for f in Path(folder).rglob("*"):
            name = str(f.relative_to(folder)).encode()
            if any(n in name for n in needles):
                hits.append(f"file name {f}")
            if f.is_file():
                data = f.read_bytes()
                hits += [f"{f}: {n[:24]!r}" for n in needles if n in data]
                if hashlib.sha256(data).hexdigest() in contents:
                    hits.append(f"{f}: a copy of an erased image")
    return hits


def _scan_tables(project: Project, needles: list[bytes]) -> list[str]:
    """Every row of every table as text (PostgreSQL: the database files are the server's)."""
    texts = [n.decode("utf-32-le") if len(n) % 4 == 0 and b"\0" in n else n.decode() for n in needles]
    hits = []
    with project.store.ctx.engine.connect() as conn:
        for t in S.metadata.sorted_tables:
            for row in conn.execute(sa.select(t)):
                text = repr(tuple(row))
                hits += [f"{t.name}: {n}" for n in texts if n in text]
    return hits


@pytest.fixture
def loaded(location, tmp_path):
    """Subjects with images inside the project, annotations, embeddings, predictions, a report."""
    import timm
    import torch

    from labkit.models import ModelPool, project_cache_dir
    from labkit.models.segmenters.sam import SamSegmenter
    from labkit.models.segmenters.sam_build import build_tiny_sam
    from labkit.reports.runner import ReportError, run_report

    tag = uuid.uuid4().hex[:8]
    subjects = {f"subject-{k}-{tag}": n for k, n in SUBJECTS.items()}
    p = Project.create(location, classes=["cat", "dog"], workdir=tmp_path / "work")
    root = Path(p.root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    files, owners = [], []
    rng = np.random.default_rng(0)
    for s, n in subjects.items():
        for i in range(n):
            f = root / "images" / f"{s}_{i}.png"  # a file name that names the person, as real ones do
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(f)
            files.append(f)
            owners.append(s)
    p.add_annotator("ana")
    p.add_annotator("ben")
    p.add_images(files, subject=owners, consent="given", purpose="tests")
    p.assign(None, ["ana", "ben"], overlap=2)
    for img in p.images().index:
        for who, lab in (("ana", "cat"), ("ben", "dog" if img % 2 else "cat")):
            aid = p.add_annotation(image=img, kind="label", label=lab, annotator=who)
        p.add_annotation(image=img, kind="box", label="cat", annotator="ana", geometry=[2, 2, 30, 20],
                         provenance={"note": f"drawn on {p.images().loc[img, 'path']}"})
        p.update_annotation(aid, by=p.user, label="cat")  # history rows too
    first = owners[0]
    p.set_consent(first, "given", by=p.user, purpose="re-confirmed")  # audit entries naming the subject

    # exports: inside the project folder (plain, its file names name the person; anonymised) and outside
    p.export(root / "exports" / "coco.json", format="coco", images=True, progress=False)
    p.export(root / "exports" / "anon", format="aihub", anonymize="faces", progress=False)
    share = tmp_path / "share"
    p.export(share / "coco.json", format="coco", images=True, recipient=RECIPIENT, progress=False)

    seg = SamSegmenter(build_tiny_sam(0), cache_dir=project_cache_dir(p))
    for img in p.images().index:
        seg.set_image(p.read_image(img), key=p.images().loc[img, "sha256"])

    ckpt = tmp_path / "tiny.pt"
    torch.save(timm.create_model("test_resnet", pretrained=False, num_classes=2).state_dict(), ckpt)
    pool = ModelPool.from_checkpoints([("test_resnet", ckpt)], classes=["cat", "dog"], image_size=32)
    pool.predict(p, num_workers=0, progress=False)

    try:
        run_report("quality_audit", project=location, out_dir=root / "reports" / "audit",
                   params={"title": "lot 1"}, timeout=600, workdir=tmp_path / "work")
    except ReportError:
        pass  # a report that fails still renders its HTML and is registered; both count here
    yield p, subjects, share
    p.close()


@pytest.mark.filterwarnings("ignore:COCO has no image-level labels", "ignore:AI-Hub has only")
def test_forget_subject_leaves_nothing_behind(loaded):
    p, subjects, share = loaded
    root = Path(p.root)
    gone = next(iter(subjects))
    imgs = p.images(subject=gone)
    hashes = list(imgs["sha256"])
    needles = _needles(gone, hashes)
    kept = p.images().query("subject != @gone")
    others_before = {
        "subjects": p.subjects().drop(index=gone)[["images", "consent"]],
        "annotations": p.annotations()[lambda d: ~d["task"].isin(imgs.index)].drop(columns="updated_at"),
        "embeddings": sorted(f.name for f in (root / "cache").rglob("*.npy")
                             if not any(h in f.name for h in hashes)),
    }
    # the scan sees the subject everywhere before the erasure
    before = _scan_files([root], needles, hashes)
    for where in ("cache/embeddings", "predictions", "reports", "images", "exports/images"):
        assert any(f"{root / where}/" in h for h in before), f"nothing of the subject under {where} before erasure"
    assert any("a copy of an erased image" in h and "exports" in h for h in before)
    shared = _scan_files([share], needles, hashes)
    assert shared
    if p.backend == "sqlite":
        assert any("project.db" in h for h in before)
    else:
        assert _scan_tables(p, needles)

    erasure = p.forget_subject(gone, by=p.user)

    assert erasure.database["images"] == 2 and erasure.files["image_files_removed"] == 2
    assert erasure.files["embeddings"]["embedding_files_removed"] == 2
    assert erasure.files["reports"]["reports_withdrawn"] == 1
    # whole exports are withdrawn: coco.json, 5 images, its summary; 5 AI-Hub files, 5 images, its summary
    assert erasure.files["exports"] == {"exports_held": 3, "exports_withdrawn": 2, "files_deleted": 7 + 11,
                                        "exports_outside_project": 1, "exports_unregistered": 0,
                                        "recipients": [RECIPIENT]}
    [warning] = erasure.warnings  # the export outside the project folder: its recipient holds it
    assert RECIPIENT in warning and str(share / "coco.json") in warning and gone not in warning
    assert _scan_files([share], needles, hashes) == shared  # not ours to change
    hits = _scan_files([root], needles, hashes)
    assert not hits, "the erased subject is still in:\n" + "\n".join(hits[:20])
    assert not _scan_tables(p, needles)
    if p.backend == "sqlite":
        assert (root / "project.db-wal").stat().st_size == 0 if (root / "project.db-wal").exists() else True
    if p.backend == "postgresql":  # the report ran with the login's password, which no file may keep
        password = sa.make_url(p.location).password.encode()
        assert not _scan_files([root], [password])
    # the tombstone says who, when and how much, not whom
    tomb = p.audit_log().query("action == 'forget_subject'").iloc[-1]
    assert tomb["actor"] == p.user and tomb["details"]["images"] == 2
    # nothing else changed
    assert p.subjects()[["images", "consent"]].equals(others_before["subjects"])
    assert p.annotations().drop(columns="updated_at").equals(others_before["annotations"])
    assert sorted(f.name for f in (root / "cache").rglob("*.npy")) == others_before["embeddings"]
    assert list(p.images().index) == list(kept.index)
    assert all(p.image_path(i).exists() for i in kept.index)
    # the remaining images' predictions are still saved
    pools = list((root / "predictions").iterdir())
    assert len(pools) == 1 and len(list(pools[0].glob("shards/*.npz"))) >= 1
    # the report now says it was withdrawn and how to re-run it
    html = (root / "reports" / "audit" / "quality_audit.html").read_text()
    assert "withdrawn" in html.lower() and "labkit report quality_audit" in html
    # the exports inside the project folder are gone, each with a notice that says how to export again
    assert not (root / "exports" / "anon").exists() and not (root / "exports" / "images").exists()
    for name in ("coco.json", "anon"):
        notice = (root / "exports" / f"{name}.withdrawn.txt").read_text()
        assert "withdrawn" in notice and "labkit export" in notice


# ----------------------------------------------------------------- SQLite files, exports kept

GONE = "SUBJ-7781"
_READER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN")
con.execute("SELECT count(*) FROM images").fetchall()
print("reading", flush=True)
sys.stdin.read() if sys.argv[2] == "hold" else time.sleep(float(sys.argv[2]))
con.rollback()
"""


@pytest.fixture
def small(tmp_path):
    """A folder project: two subjects, two images each inside the project, one annotation per image."""
    root = tmp_path / "proj"
    p = Project.create(root, classes=["eye"])
    (root / "images").mkdir()
    files, owners = [], []
    rng = np.random.default_rng(1)
    for s in (GONE, "other-42"):
        for i in range(2):
            f = root / "images" / f"{s}_{i}.png"
            Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(f)
            files.append(f)
            owners.append(s)
    p.add_annotator("ana")
    p.add_images(files, subject=owners, consent="given")
    for img, path in p.images()["path"].items():
        p.add_annotation(image=img, kind="box", label="eye", annotator="ana", geometry=[1, 1, 9, 9],
                         provenance={"note": f"on {path}"})
    yield p
    p.close()


def _db_hits(p: Project, hashes: list[str]) -> list[str]:
    """The subject's id or image hashes in the raw bytes of project.db or project.db-wal."""
    return [h for h in _scan_files([Path(p.root)], _needles(GONE, hashes)) if "project.db" in h]


def _wal_empty(p: Project) -> bool:
    wal = Path(p.root) / "project.db-wal"
    return not wal.exists() or wal.stat().st_size == 0


@contextlib.contextmanager
def _reader(p: Project, how: str):
    """Another process with a read transaction open on the project: ``"hold"`` until the block ends, or seconds."""
    proc = subprocess.Popen([sys.executable, "-c", _READER, str(Path(p.root) / "project.db"), how],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "reading"
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)


def test_erasure_truncates_the_write_ahead_log(small):
    hashes = list(small.images(subject=GONE)["sha256"])
    assert _db_hits(small, hashes)  # the scan sees the subject first
    erasure = small.forget_subject(GONE, by=small.user)
    assert not erasure.warnings
    assert _wal_empty(small)
    assert not _db_hits(small, hashes)


def test_a_process_that_keeps_reading_is_named_and_compact_finishes_later(small):
    hashes = list(small.images(subject=GONE)["sha256"])
    assert _db_hits(small, hashes)
    with _reader(small, "hold"):
        start = time.monotonic()
        erasure = small.forget_subject(GONE, by=small.user)
        took = time.monotonic() - start
        assert took < 30, f"forget_subject waited {took:.0f} s for the reader"
        [warning] = erasure.warnings
        assert "project.db-wal" in warning and "project.store.subjects.compact()" in warning
        assert any("project.db-wal" in h for h in _db_hits(small, hashes))  # what the warning says: still there
    assert small.store.subjects.compact(needles=[GONE, *hashes]) == []
    assert _wal_empty(small)
    assert not _db_hits(small, hashes)


def test_a_reader_that_finishes_soon_is_waited_for(small):
    hashes = list(small.images(subject=GONE)["sha256"])
    assert _db_hits(small, hashes)
    with _reader(small, "1.5"):
        erasure = small.forget_subject(GONE, by=small.user)
    assert not erasure.warnings
    assert _wal_empty(small)
    assert not _db_hits(small, hashes)


def test_stale_copies_left_by_another_tool_are_vacuumed(small):
    hashes = list(small.images(subject=GONE)["sha256"])
    con = sqlite3.connect(Path(small.root) / "project.db", isolation_level=None)
    con.execute("PRAGMA secure_delete=OFF")  # a tool that leaves deleted content in free space
    con.execute("INSERT INTO meta (key, value) VALUES ('note', ?)", [json.dumps(f"checked {GONE} {hashes[0]}")])
    con.execute("DELETE FROM meta WHERE key = 'note'")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    assert _db_hits(small, hashes)
    erasure = small.forget_subject(GONE, by=small.user)
    assert not erasure.warnings
    assert _wal_empty(small)
    assert not _db_hits(small, hashes)


def test_exports_are_withdrawn_only_where_they_held_the_subject(small):
    p, root = small, Path(small.root)
    needles = _needles(GONE, list(p.images(subject=GONE)["sha256"]))
    held = p.export(root / "exports" / "all.json", format="coco", images=True, progress=False)
    p.withdraw_consent(GONE, by=p.user)
    kept = p.export(root / "exports" / "others.json", format="coco", images=True, progress=False)  # same images/
    kept_bytes = kept.read_bytes()
    others = sorted(f.name for f in (root / "exports" / "images").iterdir() if GONE not in f.name)
    assert others == ["other-42_0.png", "other-42_1.png"]

    erasure = p.forget_subject(GONE, by=p.user)

    assert erasure.files["exports"] == {"exports_held": 1, "exports_withdrawn": 1, "files_deleted": 1 + 2 + 1,
                                        "exports_outside_project": 0, "exports_unregistered": 0,
                                        "recipients": []}
    assert not held.exists() and "withdrawn" in (root / "exports" / "all.json.withdrawn.txt").read_text()
    assert kept.read_bytes() == kept_bytes  # the later export did not hold them
    assert sorted(f.name for f in (root / "exports" / "images").iterdir()) == others  # and wrote these again
    assert not _scan_files([root], needles)


def test_exports_whose_paths_name_the_subject_leave_no_trace(small):
    p, root = small, Path(small.root)
    needles = _needles(GONE, list(p.images(subject=GONE)["sha256"]))
    p.export(root / "exports" / GONE / "coco.json", format="coco", images=True, progress=False)
    p.export(root / "exports" / f"{GONE.lower()}_yolo", format="yolo", progress=False)
    assert _scan_files([root / "exports"], needles)

    erasure = p.forget_subject(GONE, by=p.user)

    assert erasure.files["exports"]["exports_withdrawn"] == 2 and not erasure.warnings
    assert not _scan_files([root], needles)
    notices = sorted(f.name for f in (root / "exports").glob("*.withdrawn.txt"))
    assert len(notices) == 2 and "erased_yolo.withdrawn.txt" in notices  # the other in exports/, by its id
    assert sorted(f.name for f in (root / "exports").iterdir()) == sorted([*notices, "index.jsonl"])


def test_another_row_naming_the_subject_is_reported(small):
    """Free text in a row that is not the subject's stays; the warning says so instead of a silent leftover."""
    hashes = list(small.images(subject=GONE)["sha256"])
    other = int(small.images(subject="other-42").index[0])
    small.set_image_attributes(other, {"note": f"same session as {GONE}"}, by=small.user)
    erasure = small.forget_subject(GONE, by=small.user)
    [warning] = erasure.warnings
    assert "still names the erased subject" in warning and GONE not in warning
    assert _wal_empty(small)
    hits = _db_hits(small, hashes)
    assert hits and all("project.db:" in h and "SUBJ-7781" in h for h in hits)  # only that note
    assert small.images().loc[other, "attributes"]["note"] == f"same session as {GONE}"
