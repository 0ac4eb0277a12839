"""A digits project with planted label flips: real 8x8 scans from scikit-learn, as 32x32 PNGs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = [str(i) for i in range(10)]


def digits_project(root: Path, *, n: int, flip_rate: float = 0.1, seed: int = 0):
    """A project of ``n`` digits whose ``label`` annotations have ``flip_rate`` planted flips.

    Returns ``(project, truth, flipped)``: the true labels and the flip mask, both
    ``pandas.Series`` indexed by image id. Labels are imported by one annotator,
    ``sklearn-digits``, with source ``import:sklearn-digits`` (as the demo does).
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    from labkit import Project

    digits = load_digits()
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(digits.target), size=n, replace=False))
    # images inside the project folder: stored relative to it, so a copy of the folder is a
    # self-contained project (tests change image bytes in copies, never in the shared one)
    folder = Path(root) / "project" / "images"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in idx:
        gray = (digits.images[i] * (255 / 16)).astype(np.uint8)
        f = folder / f"digit_{i:04d}.png"
        Image.fromarray(gray).resize((32, 32), Image.BILINEAR).convert("RGB").save(f)
        files.append(f)
    truth = digits.target[idx]
    flipped = np.zeros(n, bool)
    flipped[rng.choice(n, size=int(round(flip_rate * n)), replace=False)] = True
    given = truth.copy()
    given[flipped] = (truth[flipped] + rng.integers(1, 10, flipped.sum())) % 10  # another class
    p = Project.create(Path(root) / "project", classes=CLASSES)
    p.add_annotator("sklearn-digits")
    ids = p.add_images(files, progress=False)
    p.add_annotations([dict(image=i, kind="label", label=str(y), annotator="sklearn-digits",
                            source="import:sklearn-digits") for i, y in zip(ids, given)])
    index = pd.Index(ids, name="image")
    return p, pd.Series(truth, index=index, name="truth"), pd.Series(flipped, index=index, name="flipped")


def precision_recall(found: pd.Index, flipped: pd.Series) -> tuple[float, float]:
    """Precision and recall of the candidate image ids ``found`` against the planted flips."""
    hits = int(flipped.reindex(found).fillna(False).sum())
    return hits / max(len(found), 1), hits / max(int(flipped.sum()), 1)
