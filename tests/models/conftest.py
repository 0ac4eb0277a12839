"""Fixtures for the segmentation engine: a tiny random SAM built with segment_anything's own
modules (fixed seed), its checkpoint file, small images and a small project.

The tiny model has the ViT-B *structure* (windowed + global attention blocks, rel-pos,
two-way transformer decoder) with every dimension shrunk through ``build_options``: 64 px
input, 8 x 8 embedding, width 32. It encodes an image in milliseconds, so the real code
paths (registry -> checkpoint -> build -> load -> encode -> cache -> decode) all run in
the tests. The full ViT-B runs only in ``benchmarks/bench_segmenter_latency.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

from labkit.models.segmenters.sam_build import TINY_OPTIONS as TINY

TEST_SEGMENTER = "tiny_sam_test"


def make_tiny_sam(seed: int = 0):
    from labkit.models.segmenters.sam_build import build_tiny_sam

    return build_tiny_sam(seed)


def random_image(h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    """A smooth random colour image (noise would make every mask a speckle)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 10), max(2, w // 10), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.fixture(scope="session")
def tiny_sam():
    return make_tiny_sam(0)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_sam):
    import torch

    path = tmp_path_factory.mktemp("ckpt") / "tiny_sam_vit_b.pth"
    torch.save(tiny_sam.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory):
    """A cache folder shared by the tests that use the ONNX decoder (exported once)."""
    return tmp_path_factory.mktemp("onnx_cache")


@pytest.fixture
def tiny_segmenter(tiny_sam, tmp_path):
    """A factory of SamSegmenters over the tiny model with a per-test cache (torch decoder)."""
    from labkit.models import SamSegmenter

    def make(**kw):
        kw.setdefault("cache_dir", tmp_path / "cache")
        kw.setdefault("decoder", "torch")
        kw.setdefault("model_id", "tiny-sam-test")
        return SamSegmenter(tiny_sam, **kw)

    return make


@pytest.fixture
def registered_tiny(tiny_checkpoint, monkeypatch):
    """Register ``tiny_sam_test``: the sam_vit_b entry, with TINY build options and the tiny checkpoint."""
    from labkit.models.segmenters import registry

    made = []

    def factory(*, checkpoint=None, device=None, cache_dir=None, **options):
        options.setdefault("decoder", "torch")
        seg = registry._REGISTRY["sam_vit_b"].factory(checkpoint=checkpoint or tiny_checkpoint, device=device,
                                                      cache_dir=cache_dir, build_options=TINY, **options)
        made.append(seg)
        return seg

    monkeypatch.setitem(registry._REGISTRY, TEST_SEGMENTER,
                        registry._Entry(factory, "tiny SAM for tests", needs_checkpoint=False))
    return made


@pytest.fixture
def seg_project(tmp_path):
    """A SQLite project with 4 distinct small images (ids 1..4)."""
    from PIL import Image

    from labkit import Project

    paths = []
    for i in range(4):
        path = tmp_path / "imgs" / f"img_{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(random_image(48, 64, seed=10 + i)).save(path)
        paths.append(path)
    p = Project.create(tmp_path / "proj", classes=["thing"])
    p.add_annotator("ana")
    p.add_images(paths, progress=False)
    yield p
    p.close()


@pytest.fixture(autouse=True)
def _no_user_cache(tmp_path, monkeypatch):
    """Nothing in these tests writes to the user's cache folder."""
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "user_cache"))


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread():
    """The tiny model gains nothing from a second thread, and two threads make every small op
    wait on the other core, which other work on a shared 2-core machine may hold."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
