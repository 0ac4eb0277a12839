"""Finding planted label errors in scikit-learn's digits with a cross-fitted model pool.

Run either way (3-6 minutes on 2 CPU cores, depending on what else runs):

    .venv/bin/python -m pytest -m bench benchmarks/bench_label_errors.py -s
    .venv/bin/python benchmarks/bench_label_errors.py

Data: all 1,797 real 8x8 digit scans of ``sklearn.datasets.load_digits``, written as
32x32 PNGs into a labkit project, with 10% of the labels flipped to another class
(uniformly, seeded) and imported as the project's ``label`` annotations.

Pool: ``ModelPool.train`` with 3 timm architectures x 3 training fractions = 9 members,
3-fold cross-fitting, 16 px inputs, 8 epochs, two models at a time (``jobs=2``, one
thread each; prediction with ``threads=1``), on the CPU. Every image's probabilities
come from models that never trained on it.

Rows: ``labkit.quality.issues.label_issues`` on the whole pool with its default rule
(cleanlab's flags on the pool's mean probabilities, or X-perplexity >= 0.8) and with each
part alone; then cleanlab alone (``find_label_issues``) on a single model's out-of-fold
probabilities, the usual setup: resnet18 trained on the same 3 folds, and each pool
architecture's full-data member. Precision = share of candidates that are planted flips;
recall = share of the flips found. Chance precision is 10%.

Targets (asserted): the default candidates reach precision >= 0.85 and recall >= 0.9,
the run takes <= 10 minutes, and the saved predictions reload identically.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ARCHS = ("resnet10t", "test_resnet", "test_efficientnet")
BASELINE = "resnet18"  # the single-model baseline, cross-fitted on the same folds
FRACTIONS = (0.25, 0.5, 1.0)
FOLDS = 3
IMAGE_SIZE = 16
EPOCHS = 8
BATCH_SIZE = 64
LR = 5e-3
FLIP_RATE = 0.10
SEED = 0
JOBS = 2
TARGET_P, TARGET_R, TARGET_S = 0.85, 0.9, 600.0


def digits_project(root: Path, flip_rate: float, seed: int):
    """All digits as a project with planted flips; returns (project, flipped Series by image id)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from labkit import Project

    digits = load_digits()
    folder = root / "images"
    folder.mkdir(parents=True)
    files = []
    for i, img in enumerate(digits.images):
        f = folder / f"digit_{i:04d}.png"
        gray = (img * (255 / 16)).astype(np.uint8)
        Image.fromarray(gray).resize((32, 32), Image.BILINEAR).convert("RGB").save(f)
        files.append(f)
    rng = np.random.default_rng(seed)
    n = len(files)
    flipped = np.zeros(n, bool)
    flipped[rng.choice(n, size=int(round(flip_rate * n)), replace=False)] = True
    given = digits.target.copy()
    given[flipped] = (given[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    p = Project.create(root / "project", classes=[str(k) for k in range(10)], user="bench")
    p.add_annotator("sklearn-digits")
    ids = p.add_images(files, progress=False)
    p.add_annotations([dict(image=i, kind="label", label=str(y), annotator="sklearn-digits",
                            source="import:sklearn-digits") for i, y in zip(ids, given)])
    return p, pd.Series(flipped, index=pd.Index(ids, name="image"))


def _pr(found: pd.Index, flipped: pd.Series) -> tuple[float, float]:
    hits = int(flipped.reindex(found).fillna(False).sum())
    return hits / max(len(found), 1), hits / int(flipped.sum())


def run(root: Path) -> dict:
    from cleanlab.filter import find_label_issues

    from labkit.models.pool import ModelPool, project_label_issues, reference_labels

    t0 = time.perf_counter()
    project, flipped = digits_project(root, FLIP_RATE, SEED)
    t_build = time.perf_counter() - t0
    common = dict(folds=FOLDS, image_size=IMAGE_SIZE, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR,
                  seed=SEED, num_workers=2, jobs=JOBS, progress=True)
    t0 = time.perf_counter()
    pool = ModelPool.train(project, archs=ARCHS, fractions=FRACTIONS, **common)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = ModelPool.train(project, archs=(BASELINE,), fractions=(1.0,), name="single", **common)
    single_pred = single.predict(project, threads=1, progress=False)
    t_single = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = pool.predict(project, num_workers=2, threads=1, progress=True)
    t_predict = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = ModelPool.load(project).predict(project, progress=False)
    t_reload = time.perf_counter() - t0
    reload_identical = bool(np.array_equal(pred.probs, again.probs)) and again.provenance["computed"] == 0

    labels = reference_labels(project)
    given = labels.astype(int).to_numpy()
    at = pred.images.get_indexer(labels.index)
    acc = (pred.probs[:, at].argmax(-1) == given).mean(axis=1)  # against the noisy labels
    rows = []
    for rule in ("either", "both", "cleanlab", "x_perplexity"):
        t0 = time.perf_counter()
        found = project_label_issues(project, pred, candidates=rule)
        dt = time.perf_counter() - t0
        p, r = _pr(found.index, flipped)
        name = {"either": "default: cleanlab or X >= 0.8", "both": "cleanlab and X >= 0.8",
                "cleanlab": "cleanlab flags only", "x_perplexity": "X >= 0.8 only"}[rule]
        rows.append({"method": f"labkit pool, {name}",
                     "models": len(pool), "candidates": len(found), "precision": p, "recall": r,
                     "seconds": dt})
    singles = [(f"{BASELINE}@1", single_pred.probs[:, at])]
    singles += [(f"{a}@1", pred.probs[[pred.models.index(f"{a}@1")]][:, at]) for a in ARCHS]
    for name, probs in singles:  # cleanlab itself, on one model's out-of-fold probabilities
        found = labels.index[find_label_issues(given, probs[0].astype(np.float64), n_jobs=1)]
        p, r = _pr(found, flipped)
        rows.append({"method": f"cleanlab alone, single model {name} (out-of-fold)",
                     "models": 1, "candidates": len(found), "precision": p, "recall": r,
                     "seconds": float("nan")})
    table = pd.DataFrame(rows)
    table["f1"] = 2 * table.precision * table.recall / (table.precision + table.recall)
    total = t_build + t_train + t_single + t_predict + t_reload
    project.close()
    return {"table": table, "member_accuracy": dict(zip(pred.models, acc.round(3))),
            "times": {"build": t_build, "train": t_train, "single": t_single, "predict": t_predict,
                      "reload": t_reload, "total": total},
            "reload_identical": reload_identical, "n_flips": int(flipped.sum()), "n": len(flipped)}


def report(res: dict) -> str:
    t = res["times"]
    w = max(len(m) for m in res["table"].method)
    lines = [
        f"digits: {res['n']} images, {res['n_flips']} planted flips ({FLIP_RATE:.0%}); pool "
        f"{len(ARCHS)} archs x {len(FRACTIONS)} fractions = {len(ARCHS) * len(FRACTIONS)} members, "
        f"{FOLDS}-fold cross-fitting, {IMAGE_SIZE} px, {EPOCHS} epochs, CPU ({JOBS} jobs)",
        "",
        f"| {'method':<{w}} | models | candidates | precision | recall |   F1  |",
        f"|{'-' * (w + 2)}|-------:|-----------:|----------:|-------:|------:|",
    ]
    for r in res["table"].itertuples():
        lines.append(f"| {r.method:<{w}} | {r.models:>6} | {r.candidates:>10} | {r.precision:>9.3f} | "
                     f"{r.recall:>6.3f} | {r.f1:.3f} |")
    lines += ["",
              "member accuracy vs the given (noisy) labels: " + ", ".join(
                  f"{k} {v:.3f}" for k, v in res["member_accuracy"].items()),
              f"time: build {t['build']:.0f} s, train pool {t['train']:.0f} s, train+predict {BASELINE} "
              f"{t['single']:.0f} s, predict pool {t['predict']:.1f} s, "
              f"reload saved predictions {t['reload']:.2f} s (identical: {res['reload_identical']}); "
              f"total {t['total']:.0f} s"]
    return "\n".join(lines)


@pytest.mark.bench
def test_label_errors_on_digits(tmp_path):
    res = run(tmp_path)
    print("\n" + report(res))
    default = res["table"].iloc[0]
    assert res["reload_identical"]
    assert default.precision >= TARGET_P and default.recall >= TARGET_R, default
    assert res["times"]["total"] <= TARGET_S, res["times"]


if __name__ == "__main__":
    folder = Path(tempfile.mkdtemp(prefix="labkit-bench-"))
    try:
        print(report(run(folder)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        sys.stdout.flush()
