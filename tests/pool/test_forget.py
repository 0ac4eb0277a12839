"""Erasing images from a trained pool's folds and saved predictions (right to erasure).

On a copy of the session's tiny trained digits project: after ``forget_images`` no file
under ``pool/`` or ``predictions/`` holds the erased hashes (raw bytes, UTF-32 as numpy
stores str arrays, and decoded arrays), the pool reloads, and the other images'
predictions are reused byte for byte under the pool's new id.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from labkit.models.pool import ModelPool, forget_images, pools_trained_on_forgotten
from labkit.models.pool import forget as F

pytestmark = pytest.mark.filterwarnings("ignore:.* trains for only:UserWarning")

PREDICT = dict(num_workers=0, progress=False, batch_size=10, shard_size=10)


class _Without:
    """The project minus some images, as ``Project.forget_subject`` leaves it."""

    def __init__(self, project, ids):
        self._project, self._ids = project, set(ids)

    def images(self, **kw):
        table = self._project.images(**kw)
        return table[~table.index.isin(self._ids)]

    def image_files(self, images=None, *, purpose):
        ids = list(self.images().index) if images is None else images
        return self._project.image_files(ids, purpose=purpose)

    def __getattr__(self, name):
        return getattr(self._project, name)


def _traces(root: Path, hashes) -> list[str]:
    """Files under pool/ and predictions/ that hold any of ``hashes``, and how."""
    found = []
    needles = [(h, h.encode(), h.encode("utf-32-le")) for h in hashes]
    for path in sorted(p for d in ("pool", "predictions") for p in (root / d).rglob("*") if p.is_file()):
        raw = path.read_bytes()
        found += [f"{path}: bytes" for h, a, u in needles if a in raw or u in raw]
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                for name in z.files:
                    text = "\n".join(map(str, z[name].ravel().tolist())) if z[name].dtype.kind in "USO" else ""
                    found += [f"{path}[{name}]" for h, _, _ in needles if h in text]
    return found


@pytest.fixture
def project_copy(digits, trained, tmp_path):
    """A copy of the trained digits project (images, pool, predictions), opened as its creator."""
    from labkit import Project

    shutil.copytree(Path(digits[0].root), tmp_path / "copy")
    p = Project.open(tmp_path / "copy", user=digits[0].user)
    yield p
    p.close()


@pytest.fixture
def erased(project_copy):
    """Predictions saved in 30 shards of 10 images; one shard's 10 images and 2 more are erased."""
    root = Path(project_copy.root)
    pool = ModelPool.load(project_copy)
    for shard in (root / "predictions" / pool.id / "shards").glob("*.npz"):
        shard.unlink()
    before = pool.predict(project_copy, **PREDICT)
    assert before.provenance["computed"] == 300
    shards = sorted((root / "predictions" / pool.id / "shards").glob("*.npz"))
    assert len(shards) == 30
    chosen = []
    for path, rows in ((shards[0], slice(None)), (shards[5], [3]), (shards[20], [7])):
        with np.load(path) as z:
            chosen += z["sha256"][rows].tolist()
    positions = np.flatnonzero(np.isin(before.sha256, chosen)).tolist()
    assert len(positions) == 12  # no two digits share their bytes
    return project_copy, pool, before, positions


def test_forget_removes_every_trace_and_keeps_the_other_predictions(erased):
    project, pool, before, positions = erased
    root = Path(project.root)
    hashes = sorted({str(before.sha256[i]) for i in positions})
    ids = [int(before.images[i]) for i in positions]
    assert len(_traces(root, hashes)) >= 4  # folds.npz and 3 shards, before
    old_id = pool.id

    counts = forget_images(root, hashes)

    assert counts == {"shards_rewritten": 2, "shards_removed": 1, "prediction_rows_removed": 12,
                      "tmp_files_removed": 0, "pools_affected": 1, "fold_rows_removed": 12,
                      "pools_needing_retraining": ["default"]}
    assert not any(h in json.dumps(counts) for h in hashes)
    assert _traces(root, hashes) == []
    # the pool reloads under a new id, its predictions folder followed it
    again = ModelPool.load(project)
    assert again.id != old_id and not (root / "predictions" / old_id).exists()
    assert again.training["forgotten"][0]["images"] == 12
    assert again.training["trained_images"] == 300  # what the weights saw
    saved = json.loads((root / "predictions" / again.id / "pool.json").read_text())
    assert saved["folds_sha256"] == again.manifest()["folds_sha256"]
    assert saved["training"]["forgotten"] == again.training["forgotten"]
    # the other images: reused from disk, byte-identical, same folds
    rest = np.setdiff1d(np.arange(300), positions)
    after = again.predict(_Without(project, ids), **PREDICT)
    assert after.provenance["computed"] == 0 and after.provenance["reused"] == len(rest)
    assert after.provenance["saved_to"] == str(root / "predictions" / again.id)
    assert list(after.images) == list(before.images[rest])
    assert after.probs.tobytes() == np.ascontiguousarray(before.probs[:, rest]).tobytes()
    assert np.array_equal(after.fold, before.fold[rest])
    # the pool no longer claims the erased images as held out: were they re-added, every fold scores them
    assert (again.fold_of(np.array(hashes)) == -1).all()

    listed = pools_trained_on_forgotten(root)
    assert listed == [{"name": "default", "forgotten_images": 12, "first_at": listed[0]["first_at"],
                       "last_at": listed[0]["first_at"]}]
    # idempotent: nothing more to do, no second record, the pool still listed
    assert forget_images(root, hashes) == {
        "shards_rewritten": 0, "shards_removed": 0, "prediction_rows_removed": 0, "tmp_files_removed": 0,
        "pools_affected": 0, "fold_rows_removed": 0, "pools_needing_retraining": ["default"]}
    assert ModelPool.load(project).id == again.id
    assert pools_trained_on_forgotten(root) == listed


def test_an_interrupted_forget_is_completed_by_the_next(erased, monkeypatch):
    project, pool, before, positions = erased
    root = Path(project.root)
    hashes = [str(before.sha256[i]) for i in positions]
    real = F._save_npz

    def crash_on_folds(path, **arrays):
        if path.name == "folds.npz":
            raise KeyboardInterrupt
        real(path, **arrays)

    monkeypatch.setattr(F, "_save_npz", crash_on_folds)
    with pytest.raises(KeyboardInterrupt):
        forget_images(root, hashes)
    monkeypatch.setattr(F, "_save_npz", real)
    with pytest.raises(ValueError, match="does not match"):  # pool.json is ahead of folds.npz
        ModelPool.load(project)
    counts = forget_images(root, hashes)
    assert counts["fold_rows_removed"] == 12 and counts["prediction_rows_removed"] == 0
    assert _traces(root, hashes) == []
    again = ModelPool.load(project)
    assert len(again.training["forgotten"]) == 1
    after = again.predict(_Without(project, [int(before.images[i]) for i in positions]), **PREDICT)
    assert after.provenance["computed"] == 0


def test_leftovers_of_killed_runs_are_removed(erased):
    project, pool, before, positions = erased
    root = Path(project.root)
    hashes = [str(before.sha256[i]) for i in positions]
    shards = root / "predictions" / pool.id / "shards"
    # a shard write in progress holding an erased image, and a dead training's decoded pixels
    np.savez(shards / ".20250101T000000-deadbeef.tmp.npz", sha256=np.array(hashes[:1], dtype="U64"))
    np.save(root / "pool" / "default" / "decoded.npy", np.zeros((2, 3, 16, 16), np.uint8))
    counts = forget_images(root, hashes)
    assert counts["tmp_files_removed"] == 1
    assert not (root / "pool" / "default" / "decoded.npy").exists()
    assert not list(shards.glob(".*"))


def test_unfinished_training_has_its_folds_cleaned(erased):
    project, pool, before, positions = erased
    root = Path(project.root)
    (root / "pool" / "default" / "pool.json").unlink()  # as while training runs
    hashes = [str(before.sha256[i]) for i in positions]
    counts = forget_images(root, hashes)
    assert counts["pools_affected"] == 1 and counts["pools_needing_retraining"] == ["default"]
    assert _traces(root, hashes) == []
    assert pools_trained_on_forgotten(root) == []  # no usable pool to list


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="single string; pass a list"):
        forget_images(tmp_path, "ab" * 32)
    with pytest.raises(ValueError, match=r"holds 'ABC'; expected sha256 hex digests"):
        forget_images(tmp_path, ["ABC"])
    with pytest.raises(ValueError, match="is not a folder; expected a project folder"):
        forget_images(tmp_path / "nope", [])
    assert forget_images(tmp_path, ["0" * 64])["pools_needing_retraining"] == []


def test_predictions_merge_into_a_folder_of_the_new_id(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for folder, shards in ((old, ["a", "b"]), (new, ["c"])):
        (folder / "shards").mkdir(parents=True)
        (folder / "pool.json").write_text(json.dumps({"folds_sha256": "x", "classes": ["0", "1"]}))
        for s in shards:
            np.savez(folder / "shards" / f"{s}.npz", sha256=np.array(["0" * 64], dtype="U64"))
    np.savez(old / "shards" / ".dead.tmp.npz", sha256=np.array(["1" * 64], dtype="U64"))
    F._move_predictions(old, new, {"folds_sha256": "y"})
    assert not old.exists()
    assert sorted(p.name for p in (new / "shards").iterdir()) == ["a.npz", "b.npz", "c.npz"]
    assert json.loads((new / "pool.json").read_text()) == {"folds_sha256": "y", "classes": ["0", "1"]}
