"""Per-item costs of labkit's heavy jobs on this machine: the inputs of the capacity plan in docs/scale.md.

Run either way (about 2 minutes on 2 cores):

    .venv/bin/python -m pytest -m bench benchmarks/bench_unit_costs.py -s
    .venv/bin/python benchmarks/bench_unit_costs.py [--json out.json]

What one item costs, in CPU core-seconds (a job's CPU-hours are these times the items):

- ``hash``: sha256 of one image file (``sha256_file``; the page cache is warm, so disk
  reads are not in it);
- ``decode_full``: read and decode one image to RGB (what SAM's encoder gets);
- ``sam_vit_b_encode``: ``SamSegmenter.precompute`` of one image with a random-weight
  SAM ViT-B (timing does not depend on weight values), on 2 threads, counted as 2 cores;
  with the entry's size on disk. And the ViT-B and ViT-H encoders' FLOPs (counted by
  ``torch.utils.flop_counter`` on the meta device), for scaling a published GPU time;
- ``pool_predict``: ``ModelPool.predict`` of one image file by a pool of the default
  shape (the 3 default architectures x 3 fractions = 9 members, each image through one
  model per member, as a cross-fitted pool scores its labeled images) at 32 px, one
  thread: hashing, decoding and squashing included; and the models alone, on arrays;
- ``pool_train``: one image through one training step of each default architecture at
  32 px, batch 32, one thread (``jobs=2`` on 2 cores runs two of these at once);
- ``store_image`` / ``store_object``: ``project.add_images`` per image and
  ``project.add_annotations`` per object (seed 004's six: 2 ellipses, 2 polygons of 16
  points, 2 points per image) on SQLite, batches of 600, with the database's bytes per
  image and per object.

Images: seed 004's are PNG (its metadata table) and, from the example record's
coordinates (irises at x ~ 900-1030 of a display-sized frame), assumed 1920 x 1080: real
photographs from scikit-image, resized to that and given sensor-like noise (sigma 2), so the
PNGs weigh what camera frames do. Times are the best of a few repeats (other work runs
on this machine).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

W, H = 1920, 1080
N_FILES = 24
STORE_IMAGES = 1000
OBJECTS_PER_IMAGE = 6


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def frames(folder: Path, n: int) -> list[Path]:
    """``n`` 1920 x 1080 PNGs from real photographs with mild noise."""
    import cv2
    from PIL import Image
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        src = photos[i % len(photos)]
        h, w = src.shape[:2]
        y0, x0 = rng.integers(0, h // 8), rng.integers(0, w // 8)  # a different crop each time
        big = cv2.resize(np.ascontiguousarray(src[y0:, x0:]), (W, H), interpolation=cv2.INTER_CUBIC)
        noisy = np.clip(big + rng.normal(0, 2, big.shape), 0, 255).astype(np.uint8)
        path = folder / f"frame_{i:03d}.png"
        Image.fromarray(noisy).save(path)
        out.append(path)
    return out


def measure_files(paths: list[Path]) -> dict:
    from labkit._util.hashing import sha256_file
    from labkit.store.files import load_rgb

    n = len(paths)
    mb = float(np.mean([p.stat().st_size for p in paths]) / 2**20)
    t_hash = best_of(lambda: [sha256_file(p) for p in paths]) / n
    t_decode = best_of(lambda: [load_rgb(p) for p in paths], repeat=2) / n
    return {"file_mib": mb, "hash_s": t_hash, "hash_mib_per_s": mb / t_hash, "decode_full_s": t_decode}


def measure_sam(paths: list[Path], folder: Path) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from labkit.models import SamSegmenter
    from labkit.models.segmenters.sam_build import build_sam
    from labkit.store.files import load_rgb

    flops = {}
    for arch in ("sam_vit_b", "sam_vit_h"):
        with torch.device("meta"):
            meta = build_sam(arch)
        with FlopCounterMode(display=False) as counter:
            meta.image_encoder(torch.zeros(1, 3, 1024, 1024, device="meta"))
        flops[arch] = counter.get_total_flops()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            seg = SamSegmenter(build_sam("sam_vit_b"), cache_dir=folder, decoder="torch", model_id="bench-vit-b",
                               device="cpu")
        times = []
        for i, p in enumerate(paths[:2]):
            image = load_rgb(p)
            t0 = time.perf_counter()
            seg.precompute(image, key=f"frame{i}")
            times.append(time.perf_counter() - t0)
        entry = seg.cache.path("frame0").stat().st_size
    finally:
        torch.set_num_threads(threads)
    return {"sam_vit_b_encode_wall_s": min(times), "sam_vit_b_encode_threads": 2,
            "sam_vit_b_encode_core_s": 2 * min(times), "embedding_entry_bytes": entry,
            "sam_vit_b_gflops": flops["sam_vit_b"] / 1e9, "sam_vit_h_gflops": flops["sam_vit_h"] / 1e9}


def measure_pool(paths: list[Path], folder: Path) -> dict:
    import torch

    from labkit.models.pool import DEFAULT_ARCHS, ModelPool
    from labkit.models.pool import _torch as T

    folder.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        specs = []
        for arch in DEFAULT_ARCHS:
            for r in (0.25, 0.5, 1.0):
                model = T.create(arch, 10)
                path = folder / f"{arch}@{r}.pt"
                torch.save(model.state_dict(), path)
                specs.append({"arch": arch, "checkpoint": str(path), "name": f"{arch}@{r}"})
        pool = ModelPool.from_checkpoints(specs, classes=[str(i) for i in range(10)], image_size=32)
        n = len(paths)
        predict = best_of(lambda: pool.predict([str(p) for p in paths], num_workers=0, cache=False,
                                               progress=False), repeat=2) / n
        arrays = np.random.default_rng(0).integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)
        models = best_of(lambda: pool.predict(arrays, num_workers=0, cache=False, progress=False), repeat=2) / 256
        x = np.random.default_rng(1).integers(0, 256, (1024, 3, 32, 32), dtype=np.uint8)
        y = np.arange(1024) % 10
        train = {}
        for arch in DEFAULT_ARCHS:
            mean, std = T.default_norm(arch)
            t = best_of(lambda arch=arch, mean=mean, std=std: T.train_model(
                arch, x, y, num_classes=10, epochs=2, batch_size=32, lr=3e-3, seed=0,
                device=torch.device("cpu"), mean=mean, std=std), repeat=2)
            train[arch] = t / (2 * 1024)
    finally:
        torch.set_num_threads(threads)
    sizes = {arch: (folder / f"{arch}@1.0.pt").stat().st_size for arch in DEFAULT_ARCHS}
    return {"pool_predict_s": predict, "pool_predict_models_only_s": models, "pool_weight_bytes": sizes,
            "pool_members": len(pool), "pool_train_step_s": train,
            "pool_train_step_mean_s": float(np.mean(list(train.values())))}


def measure_store(folder: Path) -> dict:
    from PIL import Image

    from labkit import Project

    images = folder / "tiny"
    images.mkdir(parents=True)
    paths = []
    for i in range(STORE_IMAGES):
        p = images / f"{i:05d}.png"
        Image.fromarray(np.full((16, 16, 3), i % 251, np.uint8) + np.uint8(i // 251)).save(p)
        paths.append(p)
    project = Project.create(folder / "proj", classes=["r_iris", "l_iris", "r_eyelid", "l_eyelid", "r_center",
                                                       "l_center"])
    try:
        project.add_annotator("ana")
        db = folder / "proj" / "project.db"

        def size() -> int:
            return sum(p.stat().st_size for p in db.parent.glob("project.db*"))

        before = size()
        t0 = time.perf_counter()
        ids = []
        for k in range(0, STORE_IMAGES, 100):
            ids += project.add_images(paths[k:k + 100], progress=False)
        t_image = (time.perf_counter() - t0) / STORE_IMAGES
        after_images = size()
        poly = [[4 + 3 * np.cos(a), 8 + 2 * np.sin(a)] for a in np.linspace(0, 2 * np.pi, 16, endpoint=False)]
        records = []
        for i in ids:
            records += [dict(image=i, kind="ellipse", label="r_iris", annotator="ana",
                             geometry={"cx": 11.5, "cy": 8.2, "rx": 1.25, "ry": 1.05, "angle": 0}),
                        dict(image=i, kind="ellipse", label="l_iris", annotator="ana",
                             geometry={"cx": 4.5, "cy": 8.0, "rx": 1.2, "ry": 1.0, "angle": 0}),
                        dict(image=i, kind="polygon", label="r_eyelid", annotator="ana",
                             geometry={"points": [[x + 7, y] for x, y in poly]}),
                        dict(image=i, kind="polygon", label="l_eyelid", annotator="ana", geometry={"points": poly}),
                        dict(image=i, kind="point", label="r_center", annotator="ana",
                             geometry={"points": [[11.5, 8.2]]}),
                        dict(image=i, kind="point", label="l_center", annotator="ana",
                             geometry={"points": [[4.5, 8.0]]})]
        t0 = time.perf_counter()
        for k in range(0, len(records), 600):
            project.add_annotations(records[k:k + 600])
        t_object = (time.perf_counter() - t0) / len(records)
    finally:
        project.close()
    after = size()
    return {"store_image_s": t_image, "store_object_s": t_object,
            "store_bytes_per_image": (after_images - before) / STORE_IMAGES,
            "store_bytes_per_object": (after - after_images) / len(records)}


def run(folder: Path) -> dict:
    paths = frames(folder / "frames", N_FILES)
    out = {"frame": f"{W}x{H} PNG"}
    out.update(measure_files(paths))
    out.update(measure_store(folder / "store"))
    out.update(measure_pool(paths, folder / "pool"))
    out.update(measure_sam(paths, folder / "sam"))
    return out


def report(r: dict) -> str:
    ms = 1000
    lines = [f"unit costs on this machine ({r['frame']} frames of {r['file_mib']:.2f} MiB)",
             f"  hash (sha256)                 {r['hash_s'] * ms:8.2f} ms/img   ({r['hash_mib_per_s']:.0f} MiB/s)",
             f"  decode to RGB                 {r['decode_full_s'] * ms:8.2f} ms/img",
             f"  SAM ViT-B encode (random w.)  {r['sam_vit_b_encode_wall_s']:8.2f} s/img on 2 threads = "
             f"{r['sam_vit_b_encode_core_s']:.1f} core-s; entry {r['embedding_entry_bytes'] / 2**20:.2f} MiB",
             f"  encoder FLOPs                 ViT-B {r['sam_vit_b_gflops']:.0f} G, "
             f"ViT-H {r['sam_vit_h_gflops']:.0f} G "
             f"(ratio {r['sam_vit_b_gflops'] / r['sam_vit_h_gflops']:.3f})",
             f"  pool predict ({r['pool_members']} members)     {r['pool_predict_s'] * ms:8.2f} ms/img (one thread; "
             f"models alone {r['pool_predict_models_only_s'] * ms:.2f} ms)",
             "  pool train step, per image    " + ", ".join(f"{a} {t * ms:.2f} ms" for a, t in
                                                           r["pool_train_step_s"].items()) + " (one thread)",
             "  pool weight file              " + ", ".join(f"{a} {b / 2**20:.1f} MiB" for a, b in
                                                           r["pool_weight_bytes"].items()) + " (10 classes)",
             f"  store add_images              {r['store_image_s'] * ms:8.2f} ms/img  "
             f"({r['store_bytes_per_image']:.0f} B/img)",
             f"  store add_annotations         {r['store_object_s'] * ms:8.2f} ms/obj  "
             f"({r['store_bytes_per_object']:.0f} B/obj)"]
    return "\n".join(lines)


@pytest.mark.bench
def test_unit_costs(tmp_path):
    r = run(tmp_path)
    print("\n" + report(r))
    assert r["sam_vit_b_encode_wall_s"] > r["pool_predict_s"] > 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(tmp))
    print(report(result))
    if "--json" in sys.argv:
        Path(sys.argv[sys.argv.index("--json") + 1]).write_text(json.dumps(result, indent=1))
