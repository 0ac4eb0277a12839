"""The demo project: real images and labels that ship with installed packages.

- 300 handwritten digits from scikit-learn (``load_digits``: real 8x8 scans, upscaled to
  32x32 PNGs) with their dataset labels, imported as ``import:sklearn-digits``;
- four scikit-image sample photographs (astronaut, coffee, chelsea, rocket) with
  reference boxes drawn by hand for this demo (approximate);
- four **simulated** annotators (recorded as such: ``simulated=True``, every annotation
  ``source="simulated"``) of different reliability, each digit labeled by three of them
  (balanced assignment) and each photo boxed by two.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit.services.project import Project
from labkit.services.summary import project_summary
from labkit.store.errors import ProjectError

DIGIT_CLASSES = [str(i) for i in range(10)]
PHOTO_CLASSES = ["person", "cup", "cat", "rocket"]
# (skimage name, [(class, XYXY reference box), ...]); hand-drawn, approximate.
PHOTOS = [
    ("astronaut", [("person", (20, 15, 375, 512)), ("rocket", (350, 0, 460, 285))]),
    ("coffee", [("cup", (165, 15, 425, 305))]),
    ("chelsea", [("cat", (30, 0, 420, 300))]),
    ("rocket", [("rocket", (305, 125, 345, 400))]),
]


@dataclass(frozen=True)
class SimulatedAnnotator:
    """A program standing in for a person: right with probability ``accuracy``."""
    name: str
    accuracy: float
    box_jitter: float  # box edge noise, as a fraction of the box size


SIMULATED = [SimulatedAnnotator("sim-ada", 0.97, 0.02), SimulatedAnnotator("sim-ben", 0.90, 0.04),
             SimulatedAnnotator("sim-cai", 0.82, 0.06), SimulatedAnnotator("sim-dee", 0.65, 0.10)]


def _write_images(root: Path, n_digits: int, rng: np.random.Generator):
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_digits

    digits = load_digits()
    idx = np.sort(rng.choice(len(digits.target), size=n_digits, replace=False))
    (root / "digits").mkdir(parents=True, exist_ok=True)
    (root / "photos").mkdir(parents=True, exist_ok=True)
    digit_files = []
    for i in idx:
        gray = (digits.images[i] * (255 / 16)).astype(np.uint8)
        f = root / "digits" / f"digit_{i:04d}.png"
        Image.fromarray(gray).resize((32, 32), Image.Resampling.BILINEAR).convert("RGB").save(f)
        digit_files.append(f)
    photo_files = []
    for name, _ in PHOTOS:
        f = root / "photos" / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(f)
        photo_files.append(f)
    return digit_files, digits.target[idx], photo_files


def _jitter_box(box, frac, w, h, rng):
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    d = rng.normal(0, frac, 4) * np.array([bw, bh, bw, bh])
    x0, y0, x1, y1 = np.array(box, float) + d
    x0, x1 = np.clip(sorted((x0, x1)), 0, w)
    y0, y1 = np.clip(sorted((y0, y1)), 0, h)
    return [float(x0), float(y0), float(x1), float(y1)]


def build_demo(out: str | Path, *, n_digits: int = 300, seed: int = 0, force: bool = False,
               progress: bool = True):
    """Build the demo project in ``out`` and return it (a :class:`labkit.Project`).

    ``force`` replaces an existing demo project there (only one that labkit's demo made).
    """
    from labkit._util.progress import progress_bar

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ProjectError(f"{out} exists and is not empty; choose another folder or pass force=True "
                               "(--force) to rebuild the demo there")
        if not (out / ".labkit-demo").exists():
            raise ProjectError(f"{out} is not a labkit demo folder (no .labkit-demo marker); refusing to "
                               "delete it. Choose another folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / ".labkit-demo").write_text("made by `labkit demo`; safe to delete\n")
    rng = np.random.default_rng(seed)
    digit_files, digit_labels, photo_files = _write_images(out / "images", n_digits, rng)

    p = Project.create(out, classes=DIGIT_CLASSES + PHOTO_CLASSES)  # whoever builds it is its admin
    p.add_annotator("demo-admin", role="admin")
    p.add_annotator("viewer", role="viewer")
    p.add_annotator("sklearn-digits")  # the dataset's own labels, imported
    for s in SIMULATED:
        p.add_annotator(s.name, simulated=True)
    digit_ids = p.add_images(digit_files, split="digits", attributes={"source": "sklearn.datasets.load_digits"},
                             progress=progress)
    # The astronaut photograph shows a person (Eileen Collins, NASA, public domain): she is
    # registered as a data subject, so the privacy report and anonymised export have one.
    photo_ids = p.add_images(photo_files, split="photos", attributes={"source": "skimage.data"},
                             subject=["nasa-astronaut" if name == "astronaut" else None for name, _ in PHOTOS],
                             consent="given", purpose="labkit demo (public-domain NASA photograph)",
                             progress=progress)
    p.add_annotations([dict(image=i, kind="label", label=str(y), annotator="sklearn-digits",
                            source="import:sklearn-digits") for i, y in zip(digit_ids, digit_labels)])

    names = [s.name for s in SIMULATED]
    p.assign(digit_ids, names, overlap=3)
    p.assign(photo_ids, names, overlap=2)
    truth = dict(zip(digit_ids, digit_labels))
    refs = dict(zip(photo_ids, PHOTOS))
    sizes = p.images()[["width", "height"]]
    for s in progress_bar(SIMULATED, desc="simulated annotators", disable=not progress):
        records = []
        queue = p.queue(s.name)
        for img in queue:
            if img in truth:
                y = int(truth[img])
                if rng.random() > s.accuracy:
                    y = int(rng.choice([c for c in range(10) if c != y]))
                records.append(dict(image=img, kind="label", label=str(y), annotator=s.name,
                                    provenance={"simulation": {"accuracy": s.accuracy, "seed": seed}}))
            else:
                w, h = sizes.loc[img]
                for cls, box in refs[img][1]:
                    records.append(dict(image=img, kind="box", label=cls, annotator=s.name,
                                        geometry=_jitter_box(box, s.box_jitter, w, h, rng),
                                        provenance={"simulation": {"box_jitter": s.box_jitter, "seed": seed}}))
        p.add_annotations(records)
        for img in queue:
            p.submit(img, annotator=s.name)
    return p


def summary(project: Project) -> str:
    """:func:`~labkit.services.summary.project_summary`, plus how the simulated annotators did."""
    lines = [project_summary(project)]
    ann = project.annotations(kind="label")
    ref = ann[ann["source"] == "import:sklearn-digits"].set_index("task")["label"]
    sim = ann[ann["simulated"]]
    if len(ref) and len(sim):
        lines.append("  simulated annotators vs the dataset's labels (digits):")
        for name, g in sim.groupby("worker"):
            acc = (g["label"].to_numpy() == ref.reindex(g["task"]).to_numpy()).mean()
            lines.append(f"    {name:<16} accuracy {acc:6.1%} on {len(g)} images")
        labels_per_task = sim.groupby("task")["label"].nunique()
        lines.append(f"  digits where all assigned annotators agree: {(labels_per_task == 1).mean():.1%}")
    return "\n".join(lines)
