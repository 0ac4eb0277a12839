"""Scale: a COCO-train2017-sized project on SQLite and PostgreSQL, each step next to its peer, in one run.

Run either way:

    .venv/bin/python -m pytest -m bench benchmarks/bench_scale.py -s                    # 1/10 size, minutes
    LABKIT_BENCH_FULL=1 .venv/bin/python -m pytest -m bench benchmarks/bench_scale.py -s
    .venv/bin/python benchmarks/bench_scale.py                                            # full size
    .venv/bin/python benchmarks/bench_scale.py --images 2000 --objects 15000 --backends sqlite

Size: ``--images N --objects M`` (or ``LABKIT_BENCH_IMAGES`` / ``LABKIT_BENCH_OBJECTS``);
the defaults are COCO train2017's 118,287 images and 860,001 objects. The pytest entry
point runs 1/10 of that unless ``LABKIT_BENCH_FULL=1``. ``--data DIR`` keeps the synthetic
data in DIR and reuses it on the next run with the same size and seed; ``--profile STEP``
(e.g. ``import``, ``annotations``; repeatable) writes a cProfile listing of that step to
``profile-<backend>-<step>.txt`` beside the results (its time is then not comparable; with
``--rounds 2`` the second, unprofiled run of a read step is the one reported).

Data (written to a temporary folder, identical for both backends):

- N distinct PNG files of 64x48 (``--image-size``): an 8x6 grid of random colours scaled up,
  so every file has its own sha256 and its own perceptual hash (the audit looks for
  duplicates); written by a 2-process pool;
- a manifest CSV with ``path, width, height, sha256, split``, registered with
  ``project.add_images(manifest=...)``, which does not re-read the files (no peer: images/s);
- ``instances.json``, one COCO file with COCO's 80 categories (skewed frequencies) and M
  objects: ~60% boxes, ~30% polygons (4-20 vertices per part, 15% of them in two parts),
  ~10% RLE masks (compressed counts from ``pycocotools.mask.encode`` of an ellipse at the
  image size), images carrying COCO's ``license``/``coco_url``/``date_captured`` fields;
  imported as one annotator's work (``annotator="coco-vendor"``);
- ``labels.json``, a Label Studio export of image-level labels (``choices``) by 3 annotators
  (``completed_by`` e-mails) on the first N x 20,000 / 118,287 images, each right with
  probability 0.8. This mirrors a real crowd project: the objects come from a vendor, the
  image labels from several people, and alpha (and the audit's agreement clause) is computed
  over those labels, read back with ``project.annotations(kind="label")``.

Protocol: each timed operation runs in a fresh child process (this file with ``--child``), so
its peak memory is its own: the child imports what it needs, opens the project or engine and
warms it with one tiny call, records its resident set (the idle interpreter with its
libraries), runs the operation once under ``time.perf_counter`` and reports its peak
resident set (``VmHWM``: unlike ``ru_maxrss`` it does not carry over the parent's from the
fork) and, for the audit, ``ru_maxrss`` of its children (the notebook kernel; an upper
bound). The labkit operation and its peer run back to back on the same data (reads:
alternated ``--rounds`` times, best of each). PostgreSQL is a throwaway server
(``tests/pg_server.py``, run with ``fsync=off``) started here and stopped at the end; the
server's own memory is not counted. SQLite runs as labkit configures it (WAL,
``synchronous=NORMAL``). If ``add_images(manifest=)`` is missing or refuses the call, the
files are registered by path instead (read and hashed) and the register row fails.

Rows, per backend (peer in brackets):

- register: ``add_images(manifest=csv)`` (none: images/s);
- import: ``import_annotations(instances.json, format="coco")`` [``pycocotools.coco.COCO(file)``];
- import labels: ``import_annotations(labels.json, format="labelstudio")`` [``json.load``];
- ``annotations()`` [``pandas.read_sql("select * from annotations", engine)``];
- one image's annotations, p50 over 200 random images: ``annotations(image=id)``
  [``read_sql("... where image_id = :i")``];
- alpha over the labels: ``krippendorff_alpha(project.annotations(kind="label"))``
  [``read_sql`` of the label rows, pivot, ``krippendorff.alpha``; values must agree to 1e-9];
- export: ``export(out, format="coco")`` [``json.load`` + ``json.dump`` of instances.json];
- audit: ``run_report("quality_audit", project=..., params={"predictions": "none"})``
  (the notebook, its HTML and record; no pool is trained at this size).

Targets (2 cores, ratios in one run): import <= 3x ``COCO()``; export <= 3x the json round
trip; ``annotations()`` <= 2x ``read_sql``; peak RSS of the import <= 3x the file's size
(measured as the increase over the child's idle resident set; the absolute peak is shown
too); one image's annotations p50 <= 20 ms (stated at ~1M objects); the audit <= 5 min at
860k objects (below that size the budget is scaled down with the object count, to 30 s at least:
starting the kernel and rendering the HTML take seconds whatever the size).
Results: printed, and written to ``benchmarks/results/scale.md`` and ``scale.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pytest

FULL_IMAGES = 118_287            # COCO train2017
FULL_OBJECTS = 860_001
LABELLED_IMAGES = 20_000         # image-level labels at full size (scaled with N)
RATERS = ("ana@lab.example", "ben@lab.example", "cy@lab.example")
RATER_ACCURACY = 0.8
SHARES = (0.6, 0.3, 0.1)         # boxes, polygons, RLE masks
MULTIPART = 0.15                 # polygons in two parts
ONE_IMAGE_SAMPLES = 200

IMPORT_TARGET = 3.0              # x pycocotools COCO() on the same file
EXPORT_TARGET = 3.0              # x json.load + json.dump of that file
ANNOTATIONS_TARGET = 2.0         # x pandas.read_sql("select * from annotations")
IMPORT_RSS_TARGET = 3.0          # x the file's size
ONE_IMAGE_TARGET = 0.020         # s, p50
AUDIT_TARGET = 300.0             # s at FULL_OBJECTS; scaled with the object count below it,
AUDIT_FLOOR = 30.0               # but never under this (kernel start, HTML rendering)
STEP_TIMEOUT = 4 * 3600          # s, any one child

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"

COCO_CATEGORIES = [  # (id, name): COCO's 80, with its gaps in the ids
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"), (7, "train"),
    (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"), (13, "stop sign"),
    (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"), (18, "dog"), (19, "horse"), (20, "sheep"),
    (21, "cow"), (22, "elephant"), (23, "bear"), (24, "zebra"), (25, "giraffe"), (27, "backpack"),
    (28, "umbrella"), (31, "handbag"), (32, "tie"), (33, "suitcase"), (34, "frisbee"), (35, "skis"),
    (36, "snowboard"), (37, "sports ball"), (38, "kite"), (39, "baseball bat"), (40, "baseball glove"),
    (41, "skateboard"), (42, "surfboard"), (43, "tennis racket"), (44, "bottle"), (46, "wine glass"),
    (47, "cup"), (48, "fork"), (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"),
    (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"), (59, "pizza"),
    (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"), (64, "potted plant"), (65, "bed"),
    (67, "dining table"), (70, "toilet"), (72, "tv"), (73, "laptop"), (74, "mouse"), (75, "remote"),
    (76, "keyboard"), (77, "cell phone"), (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"),
    (82, "refrigerator"), (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"), (88, "teddy bear"),
    (89, "hair drier"), (90, "toothbrush"),
]
CLASSES = [name for _, name in COCO_CATEGORIES]


# ================================================================== synthetic data ==

def _write_images(folder: str, start: int, stop: int, width: int, height: int, seed: int) -> list[str]:
    """Write images ``start..stop-1`` (an 8x6 grid of random colours, scaled up); return their sha256."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng([seed, start])
    out = []
    for i in range(start, stop):
        small = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
        buf = io.BytesIO()
        small.resize((width, height), Image.Resampling.NEAREST).save(buf, format="PNG")
        data = buf.getvalue()
        with open(os.path.join(folder, f"{i + 1:012d}.png"), "wb") as f:
            f.write(data)
        out.append(hashlib.sha256(data).hexdigest())
    return out


def make_images(folder: Path, n: int, width: int, height: int, seed: int, workers: int = 2) -> Any:
    """The image files and their manifest (a DataFrame: path, width, height, sha256, split)."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    chunk = 2_000
    starts = list(range(0, n, chunk))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        parts = pool.map(_write_images, [str(folder)] * len(starts), starts,
                         [min(s + chunk, n) for s in starts], [width] * len(starts), [height] * len(starts),
                         [seed] * len(starts))
        hashes = [h for part in parts for h in part]
    if len(set(hashes)) != n:
        raise AssertionError("two synthetic images have the same bytes; change the seed")
    return pd.DataFrame({"path": [str(folder / f"{i + 1:012d}.png") for i in range(n)],
                         "width": width, "height": height, "sha256": hashes, "split": "train"})


def _polygon(rng: Any, width: int, height: int) -> tuple[list[list[float]], float, list[float]]:
    """A star-shaped polygon (one or two parts): COCO segmentation, area, bbox."""
    import numpy as np

    parts = 2 if rng.random() < MULTIPART else 1
    rings, area = [], 0.0
    xs_all, ys_all = [], []
    for p in range(parts):
        lo, hi = (0.0, float(width)) if parts == 1 else ((0.0, width / 2) if p == 0 else (width / 2, float(width)))
        r = rng.uniform(1.5, max(1.6, min(hi - lo, height) / 2))
        cx, cy = rng.uniform(lo + r, hi - r) if hi - lo > 2 * r else (lo + hi) / 2, rng.uniform(r, height - r)
        k = int(rng.integers(4, 21))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = r * rng.uniform(0.4, 1.0, k)
        xs = np.round(np.clip(cx + rad * np.cos(ang), 0, width), 2)
        ys = np.round(np.clip(cy + rad * np.sin(ang), 0, height), 2)
        area += 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))
        rings.append(np.column_stack([xs, ys]).ravel().tolist())
        xs_all.append(xs)
        ys_all.append(ys)
    x, y = np.concatenate(xs_all), np.concatenate(ys_all)
    x0, y0 = float(x.min()), float(y.min())
    return rings, round(area, 2), [x0, y0, round(float(x.max()) - x0, 2), round(float(y.max()) - y0, 2)]


def _masks(rng: Any, n: int, width: int, height: int) -> list[tuple[dict, float, list[float]]]:
    """``n`` ellipse masks at the image size as COCO compressed RLE, with area and bbox."""
    import numpy as np
    from pycocotools import mask as mu

    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    out: list[tuple[dict, float, list[float]]] = []
    for start in range(0, n, 1000):
        m = min(1000, n - start)
        cx, cy = rng.uniform(0, width, m), rng.uniform(0, height, m)
        rx, ry = rng.uniform(1.5, width / 3, m), rng.uniform(1.5, height / 3, m)
        stack = (((xx[..., None] - cx) / rx) ** 2 + ((yy[..., None] - cy) / ry) ** 2 <= 1).astype(np.uint8)
        stack[(np.clip(cy, 0, height - 1)).astype(int), (np.clip(cx, 0, width - 1)).astype(int),
              np.arange(m)] = 1  # never empty
        rles = mu.encode(np.asfortranarray(stack))
        # area and bbox as mu.area / mu.toBbox give them (mu.area overflows past 255 masks with numpy 2)
        areas = stack.sum(axis=(0, 1))
        cols, rows = stack.any(axis=0), stack.any(axis=1)  # (W, m), (H, m)
        x0, y0 = cols.argmax(axis=0), rows.argmax(axis=0)
        x1, y1 = width - cols[::-1].argmax(axis=0), height - rows[::-1].argmax(axis=0)
        boxes = np.column_stack([x0, y0, x1 - x0, y1 - y0]).astype(float).tolist()
        out += [({"size": [height, width], "counts": r["counts"].decode("ascii")}, float(a), b)
                for r, a, b in zip(rles, areas, boxes)]
    return out


def make_coco(path: Path, n_images: int, n_objects: int, width: int, height: int, seed: int
              ) -> tuple[dict, dict[int, str]]:
    """Write the COCO instances file; return counts per kind and the class of each image's first object."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(COCO_CATEGORIES) + 1) ** 0.9
    cats = rng.choice(len(COCO_CATEGORIES), n_objects, p=weights / weights.sum())
    kinds = rng.choice(3, n_objects, p=SHARES)
    img_of = np.sort(rng.integers(0, n_images, n_objects))
    n_box = int((kinds == 0).sum())
    bw, bh = rng.uniform(1, width, n_box), rng.uniform(1, height, n_box)
    bx, by = rng.uniform(0, 1, n_box) * (width - bw), rng.uniform(0, 1, n_box) * (height - bh)
    boxes = np.round(np.column_stack([bx, by, bw, bh]), 2).tolist()
    masks = iter(_masks(rng, int((kinds == 2).sum()), width, height))
    boxes_it = iter(boxes)
    annotations = []
    for j in range(n_objects):
        ann: dict[str, Any] = {"id": j + 1, "image_id": int(img_of[j]) + 1,
                               "category_id": COCO_CATEGORIES[cats[j]][0], "iscrowd": 0}
        if kinds[j] == 0:
            b = next(boxes_it)
            ann.update(area=round(b[2] * b[3], 2), bbox=b)
        elif kinds[j] == 1:
            seg, area, bbox = _polygon(rng, width, height)
            ann.update(segmentation=seg, area=area, bbox=bbox)
        else:
            rle, area, bbox = next(masks)
            ann.update(segmentation=rle, area=area, bbox=bbox, iscrowd=1)
        annotations.append(ann)
    images = [{"license": int(i % 8) + 1, "file_name": f"{i + 1:012d}.png",
               "coco_url": f"http://images.cocodataset.org/train2017/{i + 1:012d}.png",
               "height": height, "width": width, "date_captured": "2013-11-14 11:18:45",
               "flickr_url": f"http://farm4.staticflickr.com/{i + 1}.jpg", "id": i + 1} for i in range(n_images)]
    data = {"info": {"description": "labkit synthetic COCO-sized dataset", "year": 2026, "version": "1.0"},
            "licenses": [{"id": k, "name": f"license {k}", "url": ""} for k in range(1, 9)],
            "images": images, "annotations": annotations,
            "categories": [{"supercategory": "thing", "id": cid, "name": name} for cid, name in COCO_CATEGORIES]}
    with open(path, "w") as f:
        json.dump(data, f)
    names, first = dict(COCO_CATEGORIES), {}
    for ann in annotations:
        first.setdefault(ann["image_id"], names[ann["category_id"]])
    kinds_n = {"box": n_box, "polygon": int((kinds == 1).sum()), "mask": int((kinds == 2).sum()),
               "images_without_objects": int(n_images - len(np.unique(img_of)))}
    return kinds_n, first


def make_labels(path: Path, first: dict[int, str], n_labelled: int, seed: int) -> int:
    """Write the Label Studio export of image-level labels by the raters; return how many labels.

    An image's true class is that of its first object (``first``), else a random one.
    """
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    tasks, n = [], 0
    for i in range(1, n_labelled + 1):
        truth = first.get(i) or CLASSES[int(rng.integers(len(CLASSES)))]
        entries = []
        for r, email in enumerate(RATERS):
            label = truth if rng.random() < RATER_ACCURACY else CLASSES[int(rng.integers(len(CLASSES)))]
            entries.append({"id": i * 10 + r, "completed_by": {"email": email, "id": r + 1},
                            "result": [{"id": f"c{i}-{r}", "type": "choices", "from_name": "class",
                                        "to_name": "image", "value": {"choices": [label]}}]})
            n += 1
        tasks.append({"id": i, "data": {"image": f"/data/local-files/?d=train2017/{i:012d}.png"},
                      "annotations": entries})
    with open(path, "w") as f:
        json.dump(tasks, f)
    return n


def make_data(folder: Path, *, images: int, objects: int, width: int, height: int, seed: int) -> dict:
    """Everything both backends import; reused when ``folder`` already holds it for the same parameters."""
    params = {"images": images, "objects": objects, "width": width, "height": height, "seed": seed, "v": 3}
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("params") == params:
            meta["reused"] = True
            return meta
    folder.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"params": params, "seconds": {}}
    t0 = time.perf_counter()
    manifest = make_images(folder / "train2017", images, width, height, seed)
    manifest_path = folder / "manifest.csv"
    manifest.to_csv(manifest_path, index=False)
    meta["seconds"]["images"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    coco_path = folder / "instances.json"
    meta["kinds"], first = make_coco(coco_path, images, objects, width, height, seed)
    meta["seconds"]["coco"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    labels_path = folder / "labels.json"
    labelled = min(images, max(2, round(images * LABELLED_IMAGES / FULL_IMAGES)))
    meta["n_labels"] = make_labels(labels_path, first, labelled, seed)
    meta["labelled_images"] = labelled
    meta["seconds"]["labels"] = time.perf_counter() - t0
    meta.update(manifest=str(manifest_path), coco=str(coco_path), labels=str(labels_path),
                coco_bytes=coco_path.stat().st_size, labels_bytes=labels_path.stat().st_size,
                image_bytes=sum(f.stat().st_size for f in (folder / "train2017").iterdir()))
    meta_path.write_text(json.dumps(meta, indent=2))
    meta["reused"] = False
    return meta


# ======================================================= the child: one operation ==

def _status(key: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak) of this process, in bytes.

    ``VmHWM`` belongs to the process's own address space: unlike ``ru_maxrss``, it does not
    carry over the parent's resident set from the fork before ``exec``.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _rss_now() -> int:
    return _status("VmRSS")


def _measure(spec: dict, step: str, op: Any) -> tuple[float, int, Any]:
    """Run ``op()`` once: (seconds, resident bytes before it, its result); cProfile it when asked."""
    import gc

    gc.collect()
    base = _rss_now()
    prof = None
    if step in spec.get("profile", []):
        import cProfile

        prof = cProfile.Profile()
    t0 = time.perf_counter()
    if prof is not None:
        prof.enable()
    out = op()
    if prof is not None:
        prof.disable()
    seconds = time.perf_counter() - t0
    if prof is not None:
        import pstats

        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(40)
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
        dest = Path(spec["profile_dir"]) / f"profile-{spec['backend']}-{step}.txt"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text.getvalue())
    return seconds, base, out


def _open(spec: dict) -> Any:
    from labkit import Project

    return Project.open(spec["location"], workdir=spec["workdir"])


def _engine(spec: dict) -> Any:
    import sqlalchemy as sa

    return sa.create_engine(spec["db_url"])


def step_register(spec: dict) -> dict:
    import pandas as pd

    p = _open(spec)
    try:
        p.images()
        try:
            s, base, ids = _measure(spec, "register", lambda: p.add_images(manifest=spec["manifest"]))
            how = "manifest"
        except TypeError as exc:  # the manifest API is not there yet: register the files themselves
            if "manifest" not in str(exc):
                raise
            paths = pd.read_csv(spec["manifest"])["path"].tolist()
            s, base, ids = _measure(spec, "register", lambda: p.add_images(paths, progress=False))
            how = f"files: add_images(manifest=) failed ({exc})"
        return {"seconds": s, "base_rss": base, "extra": {"images": len(ids), "how": how}}
    finally:
        p.close()


def step_import(spec: dict) -> dict:
    import labkit.formats.coco  # noqa: F401  (what the import loads on first use, as the peer's import is done)
    import labkit.services.interchange  # noqa: F401

    p = _open(spec)
    try:
        p.annotations(image=1)
        s, base, summary = _measure(spec, "import", lambda: p.import_annotations(
            spec["coco"], format="coco", annotator="coco-vendor"))
        return {"seconds": s, "base_rss": base, "extra": {"annotations": summary.annotations_added,
                                                          "images_updated": summary.images_updated}}
    finally:
        p.close()


def step_coco_load(spec: dict) -> dict:
    from pycocotools.coco import COCO

    def load() -> Any:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(spec["coco"])
    s, base, coco = _measure(spec, "coco_load", load)
    return {"seconds": s, "base_rss": base, "extra": {"annotations": len(coco.anns)}}


def step_import_labels(spec: dict) -> dict:
    import labkit.formats.labelstudio  # noqa: F401

    p = _open(spec)
    try:
        p.annotations(image=1)
        s, base, summary = _measure(spec, "import_labels", lambda: p.import_annotations(
            spec["labels"], format="labelstudio"))
        return {"seconds": s, "base_rss": base, "extra": {"annotations": summary.annotations_added}}
    finally:
        p.close()


def step_json_load(spec: dict) -> dict:
    def load() -> Any:
        with open(spec["labels"]) as f:
            return json.load(f)
    s, base, data = _measure(spec, "json_load", load)
    return {"seconds": s, "base_rss": base, "extra": {"tasks": len(data)}}


def step_annotations(spec: dict) -> dict:
    p = _open(spec)
    try:
        p.annotations(image=1)  # warm: imports, connection
        s, base, df = _measure(spec, "annotations", lambda: p.annotations())
        return {"seconds": s, "base_rss": base, "extra": {"rows": len(df)}}
    finally:
        p.close()


def step_read_sql(spec: dict) -> dict:
    import pandas as pd

    eng = _engine(spec)
    pd.read_sql("select * from annotations limit 1", eng)
    s, base, df = _measure(spec, "read_sql", lambda: pd.read_sql("select * from annotations", eng))
    eng.dispose()
    return {"seconds": s, "base_rss": base, "extra": {"rows": len(df)}}


def _p50(times: list[float]) -> dict:
    ordered = sorted(times)
    return {"p50": statistics.median(times), "p90": ordered[int(0.9 * (len(ordered) - 1))], "max": ordered[-1]}


def step_one_image(spec: dict) -> dict:
    import numpy as np

    p = _open(spec)
    try:
        ids = np.random.default_rng(7).choice(np.asarray(p.images().index), size=min(ONE_IMAGE_SAMPLES,
                                              spec["images"]), replace=False).tolist()
        for i in ids[:5]:
            p.annotations(image=i)
        base, times, rows = _rss_now(), [], 0
        for i in ids:
            t0 = time.perf_counter()
            rows += len(p.annotations(image=i))
            times.append(time.perf_counter() - t0)
        q = _p50(times)
        return {"seconds": q["p50"], "base_rss": base, "extra": {**q, "ids": ids, "rows": rows}}
    finally:
        p.close()


def step_one_image_sql(spec: dict) -> dict:
    import pandas as pd
    import sqlalchemy as sa

    eng = _engine(spec)
    q = sa.text("select * from annotations where image_id = :i")
    with eng.connect() as conn:
        for i in spec["ids"][:5]:
            pd.read_sql(q, conn, params={"i": i})
        base, times, rows = _rss_now(), [], 0
        for i in spec["ids"]:
            t0 = time.perf_counter()
            rows += len(pd.read_sql(q, conn, params={"i": i}))
            times.append(time.perf_counter() - t0)
    eng.dispose()
    stats = _p50(times)
    return {"seconds": stats["p50"], "base_rss": base, "extra": {**stats, "rows": rows}}


def step_alpha(spec: dict) -> dict:
    from labkit.quality import krippendorff_alpha

    p = _open(spec)
    try:
        p.annotations(image=1)
        krippendorff_alpha([[0, 1, 1], [0, 1, 0]])
        parts = {}

        def op() -> float:
            t0 = time.perf_counter()
            df = p.annotations(kind="label")
            parts["read_s"] = time.perf_counter() - t0
            a = krippendorff_alpha(df[["task", "worker", "label"]], level="nominal")
            parts["alpha_s"] = time.perf_counter() - t0 - parts["read_s"]
            parts["labels"] = len(df)
            return a
        s, base, a = _measure(spec, "alpha", op)
        return {"seconds": s, "base_rss": base, "extra": {"alpha": a, **parts}}
    finally:
        p.close()


def step_alpha_peer(spec: dict) -> dict:
    import krippendorff
    import pandas as pd

    eng = _engine(spec)
    pd.read_sql("select * from annotations limit 1", eng)
    parts = {}

    def op() -> float:
        t0 = time.perf_counter()
        df = pd.read_sql("select image_id, annotator_id, class_id from annotations "
                         "where kind = 'label' and deleted_at is null", eng)
        data = df.pivot(index="annotator_id", columns="image_id", values="class_id").to_numpy(dtype=float)
        parts["read_s"] = time.perf_counter() - t0
        a = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
        parts["alpha_s"] = time.perf_counter() - t0 - parts["read_s"]
        parts["labels"] = len(df)
        return a
    s, base, a = _measure(spec, "alpha_peer", op)
    eng.dispose()
    return {"seconds": s, "base_rss": base, "extra": {"alpha": a, **parts}}


def step_export(spec: dict) -> dict:
    out = Path(spec["out_dir"]) / "export.json"
    p = _open(spec)
    try:
        p.annotations(image=1)
        s, base, _ = _measure(spec, "export", lambda: p.export(out, format="coco", kinds=["box", "polygon", "mask"],
                                                                progress=False))
        return {"seconds": s, "base_rss": base, "extra": {"bytes": out.stat().st_size}}
    finally:
        p.close()


def step_json_roundtrip(spec: dict) -> dict:
    out = Path(spec["out_dir"]) / "roundtrip.json"

    def op() -> None:
        with open(spec["coco"]) as f:
            data = json.load(f)
        with open(out, "w") as f:
            json.dump(data, f)
    s, base, _ = _measure(spec, "json_roundtrip", op)
    return {"seconds": s, "base_rss": base, "extra": {"bytes": out.stat().st_size}}


def step_audit(spec: dict) -> dict:
    from labkit.reports import run_report

    s, base, res = _measure(spec, "audit", lambda: run_report(
        "quality_audit", project=spec["location"], out_dir=Path(spec["out_dir"]) / "audit",
        params={"predictions": "none"}, workdir=spec["workdir"], timeout=STEP_TIMEOUT))
    record = json.loads(Path(res.record).read_text())
    return {"seconds": s, "base_rss": base, "extra": {"ok": res.ok, "html": str(res.html),
                                                      "status": record.get("status")}}


STEPS = {name[5:]: fn for name, fn in globals().items() if name.startswith("step_")}


def child_main(step: str, spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    out: dict[str, Any] = {"step": step}
    try:
        out.update(STEPS[step](spec))
    except BaseException as exc:  # reported by the parent, which carries on with the other steps
        out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
        out["traceback"] = traceback.format_exc()
    out["peak_rss"] = _status("VmHWM")
    # the notebook kernel of the audit (an upper bound: ru_maxrss counts this process's resident set
    # at the kernel's fork too)
    out["children_peak_rss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    Path(out_path).write_text(json.dumps(out, default=str))


# ============================================================== the parent: a run ==

def run_child(step: str, spec: dict, scratch: Path) -> dict:
    """Run one step in a fresh interpreter (its own process group, killed on timeout)."""
    scratch.mkdir(parents=True, exist_ok=True)
    n = len(list(scratch.glob("*.spec.json")))
    spec_path, out_path = scratch / f"{n:02d}-{step}.spec.json", scratch / f"{n:02d}-{step}.out.json"
    spec_path.write_text(json.dumps(spec, default=str))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", step, str(spec_path),
                             str(out_path)], cwd=str(ROOT), start_new_session=True)
    try:
        proc.wait(timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return {"step": step, "error": f"timed out after {STEP_TIMEOUT} s", "wall": time.perf_counter() - t0}
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if not out_path.is_file():
        return {"step": step, "error": f"the child exited with {proc.returncode} and no result",
                "wall": time.perf_counter() - t0}
    out = json.loads(out_path.read_text())
    out["wall"] = time.perf_counter() - t0
    if out.get("error"):
        print(f"  {step}: {out['error']}\n{out.get('traceback', '')}", file=sys.stderr, flush=True)
    else:
        print(f"  {step}: {out['seconds']:.3f} s, peak RSS {out['peak_rss'] / 2**20:.0f} MB", flush=True)
    return out


@contextlib.contextmanager
def _postgres():
    sys.path.insert(0, str(ROOT))
    from tests.pg_server import PostgresServer

    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


def run_backend(backend: str, location: str, db_url: str, workdir: Path, data: dict, *, rounds: int,
                profile: list[str], profile_dir: Path, scratch: Path) -> dict:
    from labkit import Project

    Project.create(location, classes=CLASSES, workdir=workdir).close()
    out_dir = workdir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = {"backend": backend, "location": location, "workdir": str(workdir), "db_url": db_url,
            "manifest": data["manifest"], "coco": data["coco"], "labels": data["labels"],
            "images": data["params"]["images"], "out_dir": str(out_dir), "profile": profile,
            "profile_dir": str(profile_dir)}
    r: dict[str, Any] = {}
    print(f"{backend}:", flush=True)
    for step in ("register", "import", "coco_load", "import_labels", "json_load"):
        r[step] = run_child(step, spec, scratch)
    for pair in (("annotations", "read_sql"), ("alpha", "alpha_peer")):
        for k in range(rounds):
            for step in pair:
                got = run_child(step, {**spec, "profile": profile if k == 0 else []}, scratch)
                if step not in r or ("error" not in got and ("error" in r[step] or
                                                             got["seconds"] < r[step]["seconds"])):
                    r[step] = got
    r["one_image"] = run_child("one_image", spec, scratch)
    ids = r["one_image"].get("extra", {}).get("ids") or list(range(1, min(ONE_IMAGE_SAMPLES, spec["images"]) + 1))
    r["one_image_sql"] = run_child("one_image_sql", {**spec, "ids": ids}, scratch)
    r["export"] = run_child("export", spec, scratch)
    r["json_roundtrip"] = run_child("json_roundtrip", spec, scratch)
    r["audit"] = run_child("audit", spec, scratch)
    return r


def run(root: Path, *, images: int = FULL_IMAGES, objects: int = FULL_OBJECTS,
        backends: tuple[str, ...] = ("sqlite", "postgresql"), rounds: int = 2, seed: int = 0,
        width: int = 64, height: int = 48, data_dir: Path | None = None, profile: tuple[str, ...] = (),
        profile_dir: Path = RESULTS) -> dict:
    t0 = time.perf_counter()
    print(f"data: {images:,} images, {objects:,} objects ...", flush=True)
    data = make_data(data_dir or root / "data", images=images, objects=objects, width=width, height=height,
                     seed=seed)
    print(f"data ready in {time.perf_counter() - t0:.0f} s ({'reused' if data['reused'] else 'written'}): "
          f"instances.json {data['coco_bytes'] / 1e6:.1f} MB, labels.json {data['labels_bytes'] / 1e6:.1f} MB",
          flush=True)
    result: dict[str, Any] = {"config": {"images": images, "objects": objects, "width": width, "height": height,
                                         "seed": seed, "rounds": rounds, "profile": list(profile),
                                         "cpus": os.cpu_count()},
                              "data": data, "backends": {}}
    for backend in backends:
        home = root / backend
        scratch = home / "steps"
        if backend == "sqlite":
            loc = str(home / "project")
            result["backends"][backend] = run_backend(backend, loc, f"sqlite:///{home / 'project' / 'project.db'}",
                                                      home / "work", data, rounds=rounds, profile=list(profile),
                                                      profile_dir=profile_dir, scratch=scratch)
        elif backend == "postgresql":
            with _postgres() as pg:
                url = pg.create_database("labkit_scale")
                result["backends"][backend] = run_backend(
                    backend, url, url.replace("postgresql://", "postgresql+psycopg://"), home / "work", data,
                    rounds=rounds, profile=list(profile), profile_dir=profile_dir, scratch=scratch)
        else:
            raise ValueError(f"unknown backend {backend!r}; expected sqlite or postgresql")
    result["seconds"] = time.perf_counter() - t0
    return result


# ================================================================= the report ==

def _audit_budget(objects: int) -> float:
    return max(AUDIT_FLOOR, AUDIT_TARGET * min(1.0, objects / FULL_OBJECTS))


def _mb(b: float) -> str:
    return f"{b / 2**20:,.0f} MB"


def rows(r: dict, backend: str) -> list[dict]:
    """The table's rows for one backend: name, labkit, peer, ratio, target, passed (None: no target)."""
    b, cfg, data = r["backends"][backend], r["config"], r["data"]
    out: list[dict] = []

    def ok(step: str) -> bool:
        return step in b and "error" not in b[step]

    def err(step: str) -> str:
        return f"error: {b[step]['error']}" if step in b else "not run"

    def timed(name: str, step: str, peer: str | None, peer_name: str, target: float | None, *,
              unit: str = "s", absolute: bool = False) -> None:
        fmt = (lambda v: f"{v * 1000:.1f} ms") if unit == "ms" else (lambda v: f"{v:.2f} s")
        lab = fmt(b[step]["seconds"]) if ok(step) else err(step)
        pv = fmt(b[peer]["seconds"]) if peer and ok(peer) else (err(peer) if peer else "")
        ratio = b[step]["seconds"] / b[peer]["seconds"] if peer and ok(step) and ok(peer) else None
        if target is None:
            passed, tgt = None, ""
        elif absolute:
            tgt = f"<= {fmt(target)}"
            passed = ok(step) and b[step]["seconds"] <= target
        else:
            tgt = f"<= {target:g}x"
            passed = ratio is not None and ratio <= target
        out.append({"name": name, "labkit": lab, "peer": f"{peer_name} {pv}".strip() if peer else "—",
                    "ratio": "" if ratio is None else f"{ratio:.2f}x", "target": tgt, "passed": passed})

    via_manifest = ok("register") and b["register"]["extra"]["how"] == "manifest"
    if ok("register"):
        reg = b["register"]
        lab = f"{reg['seconds']:.2f} s ({reg['extra']['images'] / reg['seconds']:,.0f} images/s)"
        if not via_manifest:
            lab += " **add_images(manifest=) failed: the files were read and hashed instead**"
    else:
        lab = err("register")
    out.append({"name": f"register {cfg['images']:,} images from a manifest", "labkit": lab, "peer": "—",
                "ratio": "", "target": "" if via_manifest else "add_images(manifest=)",
                "passed": None if via_manifest else False})
    kinds = data["kinds"]
    timed(f"import COCO, {cfg['objects']:,} objects ({kinds['box']:,} boxes, {kinds['polygon']:,} polygons, "
          f"{kinds['mask']:,} RLE masks)", "import", "coco_load", "`COCO(file)`", IMPORT_TARGET)
    size = data["coco_bytes"]
    if ok("import"):
        grow = b["import"]["peak_rss"] - b["import"]["base_rss"]
        peer = (f"file {_mb(size)}; `COCO()` +{_mb(b['coco_load']['peak_rss'] - b['coco_load']['base_rss'])}"
                if ok("coco_load") else f"file {_mb(size)}")
        out.append({"name": "peak RSS of the import, over the idle process", "labkit":
                    f"+{_mb(grow)} (peak {_mb(b['import']['peak_rss'])})", "peer": peer,
                    "ratio": f"{grow / size:.2f}x file", "target": f"<= {IMPORT_RSS_TARGET:g}x file",
                    "passed": grow <= IMPORT_RSS_TARGET * size})
    else:
        out.append({"name": "peak RSS of the import", "labkit": err("import"), "peer": f"file {_mb(size)}",
                    "ratio": "", "target": f"<= {IMPORT_RSS_TARGET:g}x file", "passed": False})
    timed(f"import labels (Label Studio, {data['n_labels']:,} labels by {len(RATERS)} annotators)", "import_labels",
          "json_load", "`json.load`", None)
    rows_n = b["annotations"]["extra"]["rows"] if ok("annotations") else 0
    timed(f"`annotations()`, {rows_n:,} rows", "annotations", "read_sql", "`read_sql(select *)`", ANNOTATIONS_TARGET)
    timed(f"one image's annotations, p50 of {ONE_IMAGE_SAMPLES}", "one_image", "one_image_sql",
          "`read_sql(where image_id)`", ONE_IMAGE_TARGET, unit="ms", absolute=True)
    timed("alpha over the labels (read + nominal alpha)", "alpha", "alpha_peer",
          "`read_sql` + pivot + `krippendorff.alpha`", None)
    if ok("alpha") and ok("alpha_peer"):
        same = abs(b["alpha"]["extra"]["alpha"] - b["alpha_peer"]["extra"]["alpha"]) <= 1e-9
        out[-1]["target"], out[-1]["passed"] = "equal alpha", same
        out[-1]["labkit"] += f" (alpha {b['alpha']['extra']['alpha']:.4f})"
    timed("export COCO", "export", "json_roundtrip", "`json.load` + `json.dump`", EXPORT_TARGET)
    budget = _audit_budget(cfg["objects"])
    timed("audit report (`run_report(\"quality_audit\")`)", "audit", None, "", budget, absolute=True)
    return out


def report(r: dict) -> str:
    cfg, data = r["config"], r["data"]
    lines = [f"## Scale: {cfg['images']:,} images, {cfg['objects']:,} objects "
             f"({cfg['width']}x{cfg['height']} PNGs; instances.json {_mb(data['coco_bytes'])}; "
             f"{data['n_labels']:,} image labels by {len(RATERS)} annotators on {data['labelled_images']:,} images)",
             "", f"Each row in its own process, labkit next to its peer in one run ({cfg['cpus']} cores; reads: "
             f"best of {cfg['rounds']}). Total {r['seconds'] / 60:.1f} min."]
    if cfg["profile"]:
        lines.append(f"Profiled steps (times not comparable): {', '.join(cfg['profile'])}.")
    for backend, steps in r["backends"].items():
        lines += ["", f"### {'SQLite' if backend == 'sqlite' else 'PostgreSQL'}", "",
                  "| operation | labkit | peer | ratio | target | pass |", "|---|---|---|---|---|---|"]
        for row in rows(r, backend):
            mark = "" if row["passed"] is None else ("yes" if row["passed"] else "**no**")
            lines.append(f"| {row['name']} | {row['labkit']} | {row['peer']} | {row['ratio']} | {row['target']} "
                         f"| {mark} |")
        lines += ["", "Peak RSS per step (the child process; the audit: its notebook kernel):", "",
                  "| step | seconds | peak RSS | over idle |", "|---|---|---|---|"]
        for name, s in steps.items():
            if "error" in s:
                lines.append(f"| {name} | error | | |")
                continue
            peak = max(s["peak_rss"], s.get("children_peak_rss", 0))
            lines.append(f"| {name} | {s['seconds']:.3f} | {_mb(peak)} | +{_mb(s['peak_rss'] - s['base_rss'])} |")
    return "\n".join(lines)


def missed(r: dict) -> list[str]:
    out = []
    for backend in r["backends"]:
        for row in rows(r, backend):
            if row["passed"] is False:
                out.append(f"{backend}: {row['name']}: labkit {row['labkit']}, peer {row['peer']} {row['ratio']} "
                           f"(target {row['target']})")
    return out


def save(r: dict, text: str, folder: Path = RESULTS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scale.md").write_text(text + "\n")
    (folder / "scale.json").write_text(json.dumps(r, indent=2, default=str) + "\n")


def _size_from_env(full: bool) -> tuple[int, int]:
    div = 1 if full else 10
    images = int(os.environ.get("LABKIT_BENCH_IMAGES") or FULL_IMAGES // div)
    objects = int(os.environ.get("LABKIT_BENCH_OBJECTS") or FULL_OBJECTS // div)
    return images, objects


@pytest.mark.bench
@pytest.mark.timeout(12 * 3600)
def test_scale():
    sys.path.insert(0, str(ROOT))
    from tests.pg_server import PostgresUnavailable, find_bindir

    images, objects = _size_from_env(os.environ.get("LABKIT_BENCH_FULL") == "1")
    backends: tuple[str, ...] = ("sqlite", "postgresql")
    try:
        find_bindir()
    except PostgresUnavailable as exc:
        if os.environ.get("REQUIRE_POSTGRES_TESTS"):
            raise
        print(f"\nPostgreSQL skipped: {exc}")
        backends = ("sqlite",)
    with tempfile.TemporaryDirectory(prefix="labkit-scale-") as tmp:  # GBs at full size: not kept
        r = run(Path(tmp), images=images, objects=objects, backends=backends)
    save(r, "(the report failed; the raw numbers are in scale.json)")
    text = report(r)
    save(r, text)
    print("\n" + text)
    assert not missed(r), "\n".join(missed(r))


def main(argv: list[str] | None = None) -> int:
    full_images, full_objects = _size_from_env(True)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=full_images)
    ap.add_argument("--objects", type=int, default=full_objects)
    ap.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    ap.add_argument("--rounds", type=int, default=2, help="alternated rounds of the read steps (best counts)")
    ap.add_argument("--image-size", default="64x48", help="WIDTHxHEIGHT of the synthetic images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, help="keep the synthetic data here and reuse it on later runs")
    ap.add_argument("--profile", action="append", default=[], choices=sorted(STEPS),
                    help="cProfile this step into OUT/profile-<backend>-<step>.txt")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for scale.md and scale.json")
    ap.add_argument("--keep", type=Path, help="build the projects in this (new) folder and keep them")
    ap.add_argument("--from-json", type=Path, help="only print the report of a saved scale.json")
    args = ap.parse_args(argv)
    if args.from_json:
        r = json.loads(args.from_json.read_text())
        print(report(r))
        return 1 if missed(r) else 0
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True)
            tmp = str(args.keep)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="labkit-scale-"))
        r = run(Path(tmp), images=args.images, objects=args.objects,
                backends=tuple(b.strip() for b in args.backends.split(",") if b.strip()), rounds=args.rounds,
                seed=args.seed, width=width, height=height, data_dir=args.data, profile=tuple(args.profile),
                profile_dir=args.out)
    save(r, "(the report failed; the raw numbers are in scale.json)", args.out)
    text = report(r)
    save(r, text, args.out)
    print("\n" + text)
    problems = missed(r)
    if problems:
        print("\nmissed targets:\n  " + "\n  ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(*sys.argv[2:5])
    else:
        raise SystemExit(main())
