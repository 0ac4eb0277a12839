"""After forget_subject, nothing of the subject is left in the database, caches or reports.

A project with three subjects gets every kind of derived data through the real code
paths: SAM embeddings (segment_anything's modules, tiny random weights), saved pool
predictions (a timm checkpoint pool), and a papermill audit report. Every file under
the project (and, on PostgreSQL, every row of every table) is scanned for the erased
subject's id and image hashes, in the encodings labkit writes (UTF-8; UTF-32 inside
``.npz`` arrays) and in file names. The same scan must find them before the erasure,
so a scan that cannot see is caught too.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from labkit import Project
from labkit.store import schema as S

SUBJECTS = {"alpha": 2, "beta": 2, "gamma": 1}


def _needles(subject: str, hashes: list[str]) -> list[bytes]:
    out = []
    for text in [subject, *hashes, *(h[:12] for h in hashes)]:  # reports show 12-character prefixes
        out += [text.encode(), text.encode("utf-32-le")]
    return out


def _scan_files(folders: list[Path], needles: list[bytes]) -> list[str]:
    hits = []
    for folder in folders:
        for f in Path(folder).rglob("*"):
            name = str(f.relative_to(folder)).encode()
            if any(n in name for n in needles):
                hits.append(f"file name {f}")
            if f.is_file():
                data = f.read_bytes()
                hits += [f"{f}: {n[:24]!r}" for n in needles if n in data]
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
    yield p, subjects
    p.close()


def test_forget_subject_leaves_nothing_behind(loaded):
    p, subjects = loaded
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
    before = _scan_files([root], needles)
    for where in ("cache/embeddings", "predictions", "reports", "images"):
        assert any(where in h for h in before), f"nothing of the subject found under {where} before erasure"
    if p.backend == "sqlite":
        assert any("project.db" in h for h in before)
    else:
        assert _scan_tables(p, needles)

    erasure = p.forget_subject(gone, by=p.user)

    assert erasure.database["images"] == 2 and erasure.files["image_files_removed"] == 2
    assert erasure.files["embeddings"]["embedding_files_removed"] == 2
    assert erasure.files["reports"]["reports_withdrawn"] == 1
    assert not erasure.warnings
    hits = _scan_files([root], needles)
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
