"""labkit.models.pool: cross-fitted training, batched prediction, saved predictions, audits.

The session's tiny pool (conftest.py) is trained on 300 real digits with 30 planted label
flips; these tests check that it finds them, that every labeled image is scored only by
models that never trained on it, that saved predictions reload identically and are
invalidated by changed image bytes, and that training and prediction resume.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from labkit import ImageError
from labkit.models.pool import ModelPool, PoolPredictions, project_label_issues, reference_labels
from labkit.models.pool import _torch as T
from labkit.models.pool.labels import assign_folds, subsample
from labkit.quality.difficulty import difficulty_table

from .conftest import TINY
from .helpers import CLASSES, precision_recall

pytestmark = pytest.mark.filterwarnings("ignore:.* trains for only:UserWarning")

# Measured on this tiny pool over seeds 0-4 (flips and training): default candidates reach
# precision 0.55-0.74 and recall 0.93-1.00; chance precision is 0.10.
PRECISION_FLOOR, RECALL_FLOOR = 0.4, 0.8


def _pixels(images, size=16):
    """uint8 (B, 3, size, size) as the pool sees them: RGB, squashed with bilinear resampling."""
    out = []
    for im in images:
        im = Image.fromarray(im) if isinstance(im, np.ndarray) else Image.open(im).convert("RGB")
        out.append(np.asarray(im.resize((size, size), Image.BILINEAR)).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


def _forward(arch, path, x_uint8, mean, std, K=10):
    model = T.create(arch, K)
    T.load_weights(model, Path(path), what="test")
    model = T.prepare(model, torch.device("cpu"))
    return T.softmax_probs(model, T.normalizer(mean, std, torch.device("cpu"))(x_uint8),
                           torch.device("cpu"))


def test_pool_shape_members_and_provenance(digits, trained):
    project, truth, _ = digits
    pool, pred = trained
    assert isinstance(pred, PoolPredictions)
    assert pred.shape == (4, len(truth), 10) and np.asarray(pred).dtype == np.float32
    assert pred.models == ("test_resnet@0.5", "test_resnet@1", "test_efficientnet@0.5",
                           "test_efficientnet@1")
    assert list(pred.images) == list(project.images().index) and pred.images.name == "image"
    np.testing.assert_allclose(pred.probs.sum(-1), 1, atol=1e-5)
    # usable wherever labkit expects probs
    table = difficulty_table(pred, sample_ids=pred.images, classes=list(pred.classes))
    assert len(table) == len(truth) and table.c_perplexity.between(1, 10).all()
    prov = pred.provenance
    assert prov["models"] == list(pred.models)
    assert all(len(h) == 2 and all(len(x) == 64 for x in h) for h in prov["checkpoints"].values())
    assert prov["sha256"] == project.images()["sha256"].tolist()
    assert prov["computed"] == len(truth) and prov["reused"] == 0 and prov["device"] == "cpu"
    saved = Path(prov["saved_to"])
    assert saved == Path(project.root) / "predictions" / pool.id
    manifest = json.loads((saved / "pool.json").read_text())
    assert [m["name"] for m in manifest["members"]] == list(pred.models)
    assert manifest["members"][0]["sha256"] == prov["checkpoints"]["test_resnet@0.5"]
    assert {"labkit", "torch", "timm"} <= set(manifest)


def test_finds_planted_flips(digits, trained):
    project, truth, flipped = digits
    _, pred = trained
    found = project_label_issues(project, pred)
    precision, recall = precision_recall(found.index, flipped)
    assert precision >= PRECISION_FLOOR and recall >= RECALL_FLOOR, (precision, recall, len(found))
    # most flips found get their true class as the suggestion
    hit = found.index[flipped.reindex(found.index).to_numpy()]
    agree = (found.loc[hit, "suggested_label"].astype(int) == truth[hit]).mean()
    assert agree >= 0.7
    assert found.index.name == "image" and found["path"].str.endswith(".png").all()
    assert found["reason"].str.contains("models vote").all()


def test_every_labeled_image_is_scored_out_of_fold(digits, trained):
    project, truth, _ = digits
    pool, pred = trained
    assert (pred.fold >= 0).all()  # every image is labeled here
    assert set(np.bincount(pred.fold)) <= {len(truth) // 2, len(truth) // 2 + 1}
    # each image's probabilities are exactly its held-out fold's model
    member = pool.members[1]  # test_resnet@1
    images = project.images()
    for f in range(pool.n_folds):
        rows = np.flatnonzero(pred.fold == f)[:16]
        x = _pixels([project.image_path(int(i)) for i in pred.images[rows]])
        expect = _forward(member.arch, member.weights[f], x, member.mean, member.std)
        np.testing.assert_allclose(pred.probs[1, rows], expect, atol=1e-5)
    # and no model of fold f trained on an image of fold f
    with np.load(pool.home / "folds.npz") as z:
        fold, y = z["fold"], z["label"]
    for f in range(pool.n_folds):
        for r in TINY["fractions"]:
            train = subsample(np.flatnonzero(fold != f), y, r, seed=TINY["seed"] * 1000 + f)
            assert not (fold[train] == f).any()
    assert images["sha256"].tolist() == pred.sha256.tolist()


def test_unseen_images_get_the_mean_of_all_folds(trained, digits):
    pool, pred = trained
    project = digits[0]
    arrays = [np.asarray(Image.open(project.image_path(int(i))).convert("RGB"))
              for i in pred.images[:6]]
    arrays[0] = 255 - arrays[0]  # pixels no model has seen
    out = pool.predict(arrays, num_workers=0, progress=False, cache=False)
    assert (out.fold == -1).all() and out.provenance["saved_to"] is None
    x = _pixels(arrays)
    m = pool.members[2]
    expect = np.mean([_forward(m.arch, w, x, m.mean, m.std) for w in m.weights], axis=0)
    np.testing.assert_allclose(out.probs[2], expect, atol=1e-5)


def test_saved_predictions_reload_identically(digits, trained):
    project = digits[0]
    pool, pred = trained
    reloaded = ModelPool.load(project)
    again = reloaded.predict(project, num_workers=0, progress=False)
    assert again.provenance["computed"] == 0 and again.provenance["reused"] == len(pred.images)
    assert np.array_equal(again.probs, pred.probs)
    assert again.provenance["pool_id"] == pred.provenance["pool_id"] == reloaded.id == pool.id
    assert again.provenance["computed_at"] == pred.provenance["computed_at"]
    assert reloaded._models == {}, "a full reload must not even load the models"


def test_changed_image_is_detected_and_recomputed(project_copy, trained):
    pool, pred = trained
    image_id = int(pred.images[5])
    path = project_copy.image_path(image_id)
    original = path.read_bytes()
    pixels = np.asarray(Image.open(path).convert("RGB")).copy()
    pixels[:8] = 255  # a smudge: new bytes under the same path
    Image.fromarray(pixels).save(path)
    pool = ModelPool.load(project_copy)
    with pytest.raises(ImageError, match=rf"(?s)1 image file\(s\) changed since import.*image {image_id}:"):
        pool.predict(project_copy, num_workers=0, progress=False)
    again = pool.predict(project_copy, num_workers=0, progress=False, verify=False)
    # the saved prediction for the old bytes is not used; nothing else is recomputed
    assert again.provenance["computed"] == 1 and again.provenance["reused"] == len(pred.images) - 1
    assert again.sha256[5] != pred.sha256[5] and again.fold[5] == -1  # no model trained on these bytes
    assert not np.allclose(again.probs[:, 5], pred.probs[:, 5])
    unchanged = np.delete(np.arange(len(pred.images)), 5)
    assert np.array_equal(again.probs[:, unchanged], pred.probs[:, unchanged])
    # restoring the original bytes brings back the original, out-of-fold prediction
    path.write_bytes(original)
    restored = pool.predict(project_copy, num_workers=0, progress=False)
    assert restored.provenance["computed"] == 0 and np.array_equal(restored.probs, pred.probs)


def test_changed_file_gets_a_new_prediction(trained, tmp_path):
    """Images given as paths: the prediction follows the bytes, not the path."""
    pool, pred = trained
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for i in range(4):
        files.append(tmp_path / f"noise{i}.png")
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(files[-1])
    first = pool.predict(files, num_workers=0, progress=False, cache_dir=tmp_path / "cache")
    assert first.provenance["computed"] == 4
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(files[2])
    second = pool.predict(files, num_workers=0, progress=False, cache_dir=tmp_path / "cache")
    assert second.provenance["computed"] == 1 and second.provenance["reused"] == 3
    assert not np.array_equal(second.probs[:, 2], first.probs[:, 2])
    keep = [0, 1, 3]
    assert np.array_equal(second.probs[:, keep], first.probs[:, keep])


def test_interrupted_prediction_resumes(project_copy, monkeypatch):
    import labkit.models.pool._torch as torch_side

    pool = ModelPool.load(project_copy)
    for shard in (Path(project_copy.root) / "predictions" / pool.id / "shards").glob("*.npz"):
        shard.unlink()
    real, calls = torch_side.softmax_probs, {"n": 0}

    def crash_on_the_third_batch(model, x, device):
        calls["n"] += 1
        if calls["n"] > 2 * 2 * len(pool):  # 2 batches x (2 folds) x members
            raise KeyboardInterrupt
        return real(model, x, device)

    monkeypatch.setattr(torch_side, "softmax_probs", crash_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        pool.predict(project_copy, num_workers=0, progress=False, batch_size=50, shard_size=50)
    monkeypatch.setattr(torch_side, "softmax_probs", real)
    done = pool.predict(project_copy, num_workers=0, progress=False, batch_size=50)
    assert done.provenance["reused"] == 100 and done.provenance["computed"] == 200


def test_dataloader_workers_give_the_same_result(trained, digits):
    pool, pred = trained
    project = digits[0]
    files = [project.image_path(int(i)) for i in pred.images[:40]]
    zero = pool.predict(files, num_workers=0, progress=False, cache=False, batch_size=20)
    two = pool.predict(files, num_workers=2, progress=False, cache=False, batch_size=20)
    assert np.array_equal(zero.probs, two.probs)
    np.testing.assert_allclose(zero.probs, pred.probs[:, :40], atol=1e-5)  # other batch sizes


def test_training_resumes_and_refuses_other_options(project_copy, trained):
    pool, _ = trained
    victim = Path(project_copy.root) / "pool" / "default" / "weights" / "test_efficientnet@0.5" / "fold1.pt"
    victim.unlink()
    (victim.parents[2] / "pool.json").unlink()
    with pytest.raises(FileNotFoundError, match="no pool named 'default'"):
        ModelPool.load(project_copy)
    resumed = ModelPool.train(project_copy, **TINY)
    for old, new in zip(pool.members, resumed.members):
        if old.name != "test_efficientnet@0.5":
            assert old.sha256 == new.sha256  # kept, not retrained
    assert resumed.members[2].sha256[0] == pool.members[2].sha256[0]
    assert victim.exists()
    with pytest.raises(ValueError, match=r"trained .* with other options or labels \(\{'epochs': '12 -> 1'\}\)"):
        ModelPool.train(project_copy, **{**TINY, "epochs": 1})
    small = ModelPool.train(project_copy, **{**TINY, "epochs": 1, "archs": ("test_resnet",),
                                             "fractions": (1.0,)}, overwrite=True)
    assert small.names == ("test_resnet@1",) and not victim.exists()


def test_labels_argument_and_reference_labels(project_copy):
    ref = reference_labels(project_copy)
    assert len(ref) == 300 and set(ref) <= set(CLASSES)
    project_copy.add_annotator("second")
    project_copy.add_annotator("third")
    first = int(ref.index[0])
    other = str((int(ref.iloc[0]) + 1) % 10)
    project_copy.add_annotations([dict(image=first, kind="label", label=other, annotator=a)
                                  for a in ("second", "third")])
    assert reference_labels(project_copy).loc[first] == other  # 2 votes beat 1
    with pytest.raises(ValueError, match=r"labels names 1 image id\(s\) the project does not have"):
        ModelPool.train(project_copy, labels=pd.Series({9999: "3"}), **TINY)
    with pytest.raises(ValueError, match=r"class names the project does not have: \['cat'\]"):
        ModelPool.train(project_copy, labels=pd.Series({first: "cat"}), **TINY)
    with pytest.raises(ValueError, match=r"cover 1 class\(es\)"):
        ModelPool.train(project_copy, labels=pd.Series({first: "3"}), **TINY)


def test_folds_are_stratified_seeded_and_keep_duplicates_together():
    keys = np.array([f"k{i % 90}" for i in range(100)])  # 10 duplicated images
    y = np.array([int(k[1:]) % 3 for k in keys])
    f = assign_folds(keys, y, 4, seed=1)
    assert np.array_equal(f, assign_folds(keys, y, 4, seed=1))
    assert not np.array_equal(f, assign_folds(keys, y, 4, seed=2))
    for k in np.unique(keys):
        assert len(set(f[keys == k])) == 1
    _, first = np.unique(keys, return_index=True)
    counts = pd.crosstab(y[first], f[first]).to_numpy()  # distinct images per class and fold
    assert (counts.max(axis=1) - counts.min(axis=1) <= 1).all()  # dealt round-robin
    idx = np.flatnonzero(f != 0)
    half, quarter = subsample(idx, y, 0.5, seed=3), subsample(idx, y, 0.25, seed=3)
    assert set(quarter) <= set(half) <= set(idx)
    assert set(y[quarter]) == set(y[idx])


def test_from_checkpoints(tmp_path, digits):
    project = digits[0]
    a = T.create("test_resnet", 10)
    b = T.create("test_vit", 10)
    torch.save(a.state_dict(), tmp_path / "a.pt")
    torch.save({"state_dict": b.state_dict(), "epoch": 3}, tmp_path / "b.pth")  # timm train.py style
    pool = ModelPool.from_checkpoints([("test_resnet", tmp_path / "a.pt"),
                                       {"arch": "test_vit", "checkpoint": tmp_path / "b.pth",
                                        "name": "vit", "mean": (0.5,) * 3, "std": (0.25,) * 3}],
                                      classes=CLASSES, image_size=16)
    files = [project.image_path(int(i)) for i in project.images().index[:10]]
    out = pool.predict(files, num_workers=0, progress=False, cache_dir=tmp_path / "cache")
    assert out.shape == (2, 10, 10) and out.models == ("test_resnet", "vit")
    assert (out.fold == -1).all()
    x = _pixels(files)
    np.testing.assert_allclose(out.probs[1], _forward("test_vit", tmp_path / "b.pth", x,
                                                      (0.5,) * 3, (0.25,) * 3), atol=1e-5)
    assert pool.predict(files, num_workers=0, progress=False,
                        cache_dir=tmp_path / "cache").provenance["reused"] == 10
    # a checkpoint that changes before its models are loaded is refused; new weights, new pool id
    unloaded = ModelPool.from_checkpoints([("test_resnet", tmp_path / "a.pt")], classes=CLASSES,
                                          image_size=16)
    torch.manual_seed(1)  # other random weights (building a model leaves the generator as it was)
    torch.save(T.create("test_resnet", 10).state_dict(), tmp_path / "a.pt")
    with pytest.raises(ValueError, match="changed since the pool was built"):
        unloaded.predict(files[:2], num_workers=0, progress=False, cache=False)
    fresh = ModelPool.from_checkpoints([("test_resnet", tmp_path / "a.pt")], classes=CLASSES,
                                       image_size=16)
    assert fresh.id != unloaded.id


@pytest.mark.parametrize("spec, match", [
    (("resnet19", "x.pt"), r"unknown timm architecture 'resnet19'; did you mean \["),
    (("test_resnet", "missing.pt"), r"checkpoint missing.pt does not exist"),
    ({"arch": "test_resnet"}, r"expected a dict with 'arch' and 'checkpoint'"),
    ({"arch": "test_resnet", "checkpoint": "x.pt", "size": 3}, r"unknown keys \['size'\]"),
])
def test_from_checkpoints_bad_specs(spec, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({}, tmp_path / "x.pt")
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        ModelPool.from_checkpoints([spec], classes=CLASSES, image_size=16)


def test_checkpoint_that_does_not_fit(tmp_path):
    torch.save(T.create("test_resnet", 3).state_dict(), tmp_path / "three.pt")
    pool = ModelPool.from_checkpoints([("test_resnet", tmp_path / "three.pt")], classes=CLASSES,
                                      image_size=16)
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match=r"do not fit the architecture \(wrong arch or number of classes"):
        pool.predict([img], num_workers=0, progress=False)


def test_bad_training_options(digits):
    project = digits[0]
    with pytest.raises(ValueError, match=r"convnext_atto does not accept 16 x 16 inputs"):
        ModelPool.train(project, **{**TINY, "archs": ("convnext_atto",), "name": "x"})
    with pytest.raises(ValueError, match=r"fractions is \[0.0\]"):
        ModelPool.train(project, **{**TINY, "fractions": (0,), "name": "x"})
    with pytest.raises(ValueError, match=r"folds is 1; expected an integer >= 2"):
        ModelPool.train(project, **{**TINY, "folds": 1, "name": "x"})
    with pytest.raises(ValueError, match=r"did you mean"):
        ModelPool.train(project, **{**TINY, "archs": ("test_resnt",), "name": "x"})


def test_device_is_chosen_without_code_change():
    assert T.pick_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here"):
            T.pick_device("cuda")


def test_bad_images_argument(trained):
    pool, _ = trained
    with pytest.raises(ValueError, match=r"images is a single path"):
        pool.predict("a.png")
    with pytest.raises(ValueError, match=r"images\[1\] has shape \(4, 4\), dtype uint8; expected"):
        pool.predict([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8)])
    with pytest.raises(ImageError, match=r"1 image file\(s\) not found"):
        pool.predict(["does-not-exist.png"])


def test_parallel_jobs_train_the_same_models(project_copy):
    """Models trained two at a time in worker processes equal those trained here, bit for bit."""
    small = {**TINY, "archs": ("test_resnet",), "fractions": (1.0,), "epochs": 1}
    here = ModelPool.train(project_copy, **{**small, "jobs": 1}, name="here")
    there = ModelPool.train(project_copy, **{**small, "jobs": 2}, name="there")
    assert here.members[0].sha256 == there.members[0].sha256
    assert here.id == there.id  # same weights, same folds: the same saved predictions
    rng = torch.get_rng_state()
    ModelPool.train(project_copy, **{**small, "jobs": 1}, name="again")
    assert torch.equal(rng, torch.get_rng_state()), "training must not reseed the caller's RNG"


def test_training_and_scoring_reads_are_in_the_privacy_log(digits, trained):
    """The pool reads images only through the store's audited reader: who read what, and why, is on record."""
    project = digits[0]
    log = project.audit_log()
    reads = log[log["action"] == "read_images"]
    by_purpose = {d["purpose"]: d for d in reads["details"]}
    assert {"pool training (default)", "pool scoring"} <= set(by_purpose)
    every = project.images().index
    assert by_purpose["pool scoring"]["count"] == len(every)
    assert by_purpose["pool scoring"]["images"] == [[int(every.min()), int(every.max())]]
    access = project.privacy_report().access
    row = access.loc[(project.user, "read_images")]
    assert row["images"] == len(every)
    assert row["purposes"] == "pool scoring; pool training (default)"
