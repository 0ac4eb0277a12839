"""A small audit fixture: 24 generated shape images, 3 annotators, planted defects.

Planted (image ids are 1-based, in file order):
- labels: ana is always right, ben wrong on images 2 and 14, cy wrong on 3, 14, 15 and 16
  (so the delivered majority is wrong on image 14);
- image 24 is a byte copy of image 1, and every annotator labels it with another class
  (duplicate_label_conflict);
- image 10 has no annotation at all (missing_annotation); image 5 lacks the "light"
  attribute (missing_attribute);
- after import: image 11's file is deleted (missing_file), 12's is truncated
  (unreadable_file), 13's is re-saved with one pixel changed (hash_changed);
- geometry (annotator ana unless said): a zero-area box on 2, a box 0.9 px past the
  right edge on 3 (ben), a bow-tie polygon on 4, an empty mask on 6 (ben), an ellipse
  with rx = 0 on 7, two overlapping masks on 8; a GrabCut mask and a consensus mask on 9.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ["circle", "square", "triangle"]
SIZE = 48


def _image(path: Path, cls: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (SIZE // 4, SIZE // 4, 3), dtype=np.uint8)
    im = Image.fromarray(base).resize((SIZE, SIZE), Image.BICUBIC)
    d = ImageDraw.Draw(im)
    x, y = rng.integers(8, 20, 2)
    color = tuple(int(c) for c in rng.integers(0, 256, 3))
    if cls == "circle":
        d.ellipse([x, y, x + 20, y + 20], fill=color)
    elif cls == "square":
        d.rectangle([x, y, x + 20, y + 20], fill=color)
    else:
        d.polygon([(x, y + 20), (x + 10, y), (x + 20, y + 20)], fill=color)
    im.save(path)


def truth() -> dict[int, str]:
    return {i: CLASSES[(i - 1) % 3] for i in range(1, 24)}


def build(root: Path):
    """Create the fixture project in ``root/proj``; return the open Project."""
    from labkit import Project

    root = Path(root)
    img_dir = root / "images"
    img_dir.mkdir(parents=True)
    t = truth()
    files = []
    for i in range(1, 24):
        f = img_dir / f"img_{i:02d}.png"
        _image(f, t[i], seed=i)
        files.append(f)
    dup = img_dir / "img_24.png"
    shutil.copyfile(files[0], dup)
    files.append(dup)
    attrs = [{"light": "day" if i % 2 else "night", "view": "top" if i % 3 else "side"} for i in range(1, 25)]
    attrs[4] = {"view": "top"}  # image 5: no "light"
    p = Project.create(root / "proj", classes=CLASSES)
    for name in ("ana", "ben", "cy"):
        p.add_annotator(name)
    ids = p.add_images(files, split="train", attributes=attrs, progress=False)
    assert ids == list(range(1, 25))
    wrong = {"ben": {2, 14}, "cy": {3, 14, 15, 16}}
    other = {c: CLASSES[(CLASSES.index(c) + 1) % 3] for c in CLASSES}
    records = []
    for who in ("ana", "ben", "cy"):
        for i in range(1, 24):
            if i == 10:
                continue
            label = other[t[i]] if i in wrong.get(who, ()) else t[i]
            records.append(dict(image=i, kind="label", label=label, annotator=who))
        records.append(dict(image=24, kind="label", label=other[t[1]], annotator=who))
    p.add_annotations(records)
    m1 = np.zeros((SIZE, SIZE), bool)
    m1[5:25, 5:25] = True
    m2 = np.zeros((SIZE, SIZE), bool)
    m2[15:35, 15:35] = True
    geo = [
        dict(image=2, kind="box", label=t[2], annotator="ana", geometry=[10, 10, 10, 30]),
        dict(image=3, kind="box", label=t[3], annotator="ben", geometry=[20, 5, SIZE + 0.9, 30]),
        dict(image=4, kind="polygon", label=t[4], annotator="ana",
             geometry=[[5, 5], [30, 30], [30, 5], [5, 30]]),
        dict(image=6, kind="mask", label=t[6], annotator="ben", geometry=np.zeros((SIZE, SIZE), bool)),
        dict(image=7, kind="ellipse", label=t[7], annotator="ana",
             geometry={"cx": 20, "cy": 20, "rx": 0, "ry": 5, "angle": 0}),
        dict(image=8, kind="mask", label=t[8], annotator="ana", geometry=m1),
        dict(image=8, kind="mask", label=t[8], annotator="ana", geometry=m2),
        dict(image=9, kind="mask", label=t[9], annotator="ana", geometry=m1, source="grabcut"),
        dict(image=1, kind="box", label=t[1], annotator="ana", geometry=[8, 8, 30, 30]),
        dict(image=1, kind="box", label=t[1], annotator="ben", geometry=[9, 8, 31, 30]),
    ]
    p.add_annotations(geo)
    p.add_annotator("consensus")
    p.add_annotation(image=9, kind="mask", label=t[9], annotator="consensus", source="consensus",
                     geometry=np.pad(m1[:-2, :-2], ((2, 0), (2, 0))))
    (img_dir / "img_11.png").unlink()
    data = (img_dir / "img_12.png").read_bytes()
    (img_dir / "img_12.png").write_bytes(data[: len(data) // 3])
    arr = np.asarray(Image.open(img_dir / "img_13.png")).copy()
    arr[0, 0] = 255 - arr[0, 0]
    Image.fromarray(arr).save(img_dir / "img_13.png")
    return p


def predictions(path: Path) -> Path:
    """A predictions file: 3 models sure of the true class, except on image 14 (its label is wrong)."""
    t = truth()
    t[24] = t[1]
    ids = np.arange(1, 25)
    probs = np.full((3, 24, 3), 0.05, np.float32)
    for k, i in enumerate(ids):
        probs[:, k, CLASSES.index(t[int(i)])] = 0.9
    np.savez(path, probs=probs, images=ids, classes=np.array(CLASSES))
    return path


CONTRACT = """
[contract]
name = "fixture contract"
provider = "shapes lab"
user = "audit tests"

[thresholds]
key_error_rate = 0.04
annotation_error_rate = 0.065
completeness_rate = 0.95
images_per_class = 5
scenario_coverage = 1.0
agreement = 0.3
label_issue_rate = 0.2
duplicate_conflicts = 0
geometry_error_rate = 0.5

[requirements]
annotation_kinds = ["label"]
attributes = ["light", "view"]

[coverage]
min_images = 3

[coverage.scenarios]
light = ["day", "night"]
view = ["top", "side", "oblique"]

[sampling]
seed = 7

[agreement]
n_boot = 200

[validation]
pool_accuracy = 0.9
mask_miou = 0.8
"""
