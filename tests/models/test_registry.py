"""Registry-driven smoke tests: every registered segmenter gets the same checks.

SAM entries run through their real factory (checkpoint file -> build -> load weights)
with the architecture shrunk by ``build_options`` (see conftest.TINY): building and
encoding with the full ViT-B takes ~15 s per image here, the tiny one milliseconds.
"""
from __future__ import annotations

import numpy as np
import pytest

from labkit.models import list_segmenters, load_segmenter
from tests.models.conftest import TINY, random_image


def _load(name, tiny_checkpoint, cache_dir):
    if name.startswith("sam_"):
        # the tiny checkpoint has ViT-B's layout; for L/H only the depth/global blocks differ
        return load_segmenter(name, checkpoint=tiny_checkpoint, cache_dir=cache_dir, build_options=TINY)
    return load_segmenter(name, cache_dir=cache_dir)


@pytest.mark.parametrize("name", list_segmenters())
def test_smoke(name, tiny_checkpoint, onnx_cache):
    seg = _load(name, tiny_checkpoint, onnx_cache)
    assert seg.name == name and isinstance(seg.model_id, str) and seg.model_id
    image = random_image(60, 80, seed=5)
    seg.set_image(image)
    masks, scores = seg.predict(box=[10, 10, 60, 50])
    assert masks.dtype == bool and masks.ndim == 3 and masks.shape[1:] == (60, 80)
    assert scores.shape == (len(masks),) and np.isfinite(scores).all()
    one, _ = seg.predict(box=[10, 10, 60, 50], points=[[30, 30]], point_labels=[1], multimask=False)
    assert one.shape == (1, 60, 80)
    with pytest.raises(ValueError, match="no prompt given"):
        seg.predict()
    assert seg.is_cached("0" * 64) is not seg.has_embeddings  # nothing cached under a made-up key


def test_unknown_name_lists_valid_and_close():
    with pytest.raises(ValueError, match=r"unknown segmenter 'sam_vitb'; did you mean 'sam_vit_b'.*"
                                         r"Registered: grabcut, sam_vit_b, sam_vit_h, sam_vit_l"):
        load_segmenter("sam_vitb")
    with pytest.raises(ValueError, match=r"unknown segmenter 'mask-rcnn'; Registered: grabcut"):
        load_segmenter("mask-rcnn")


def test_register_segmenter(monkeypatch):
    from labkit.models import register_segmenter
    from labkit.models.segmenters import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(ValueError, match="already registered"):
        register_segmenter("grabcut", lambda **kw: None)
    register_segmenter("grabcut_fast", lambda **kw: registry._grabcut(**kw, iterations=1))
    assert "grabcut_fast" in list_segmenters()
    assert load_segmenter("grabcut_fast").iterations == 1


def test_grabcut_rejects_checkpoint():
    with pytest.raises(ValueError, match="grabcut takes no checkpoint"):
        load_segmenter("grabcut", checkpoint="x.pth")


def test_imports_stay_light():
    """``import labkit.models`` (and the embed command) load neither torch nor segment_anything nor OpenCV."""
    import subprocess
    import sys

    code = ("import sys, labkit.models, labkit.cli.embed; "
            "from labkit.models import load_segmenter, Prefetcher, replay; "
            "heavy = [m for m in ('torch', 'segment_anything', 'cv2', 'onnxruntime') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
