"""The ONNX decoder path (segment-anything's SamOnnxModel export in onnxruntime) against PyTorch."""
from __future__ import annotations

import numpy as np
import pytest

from tests.models.conftest import iou, random_image

pytest.importorskip("onnxruntime", reason="the ONNX decoder needs onnxruntime (pip install onnxruntime)")


@pytest.fixture
def pair(tiny_sam, onnx_cache):
    from labkit.models import SamSegmenter

    torch_seg = SamSegmenter(tiny_sam, cache_dir=onnx_cache, decoder="torch", model_id="tiny-onnx-test")
    onnx_seg = SamSegmenter(tiny_sam, cache_dir=onnx_cache, decoder="onnx", model_id="tiny-onnx-test")
    return torch_seg, onnx_seg


@pytest.mark.parametrize("shape", [(60, 80), (90, 37), (200, 150)])
def test_onnx_masks_match_torch(pair, shape):
    torch_seg, onnx_seg = pair
    rng = np.random.default_rng(shape[0])
    image = random_image(*shape, seed=shape[1])
    h, w = shape
    for seg in pair:
        seg.set_image(image)
    ious = []
    for trial in range(12):
        x0, x1 = np.sort(rng.uniform(0, w, 2))
        y0, y1 = np.sort(rng.uniform(0, h, 2))
        pts = rng.uniform([0, 0], [w, h], (trial % 3 + 1, 2))
        labels = rng.integers(0, 2, len(pts))
        prompts = [dict(box=[x0, y0, x1, y1]), dict(points=pts, point_labels=labels),
                   dict(box=[x0, y0, x1, y1], points=pts, point_labels=labels)][trial % 3]
        for multimask in (True, False):
            m_t, s_t = torch_seg.predict(**prompts, multimask=multimask)
            m_o, s_o = onnx_seg.predict(**prompts, multimask=multimask)
            assert m_o.shape == m_t.shape and m_o.dtype == bool
            np.testing.assert_allclose(s_o, s_t, atol=1e-4)
            ious += [iou(a, b) for a, b in zip(m_t, m_o)]
    assert min(ious) >= 0.99, min(ious)


def test_upscale_matches_postprocess_masks(tiny_sam):
    """OpenCV's bilinear resize reproduces Sam.postprocess_masks (F.interpolate) to float precision."""
    import torch

    from labkit.models.segmenters.sam_onnx import upscale_masks

    low = np.random.default_rng(0).normal(size=(3, 32, 32)).astype(np.float32)
    for original, inp in [((60, 80), (48, 64)), ((90, 37), (64, 26)), ((768, 1024), (48, 64))]:
        want = tiny_sam.postprocess_masks(torch.from_numpy(low)[None], inp, original)[0].numpy()
        got = upscale_masks(low, img_size=64, input_size=inp, original_size=original)
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_export_once_per_model_id(pair, onnx_cache):
    _, onnx_seg = pair
    path = onnx_cache / "onnx" / "tiny-onnx-test.onnx"
    assert onnx_seg._onnx.path == path and path.is_file()
    before = path.stat().st_mtime_ns
    from labkit.models import SamSegmenter

    SamSegmenter(onnx_seg.sam, cache_dir=onnx_cache, decoder="onnx", model_id="tiny-onnx-test")
    assert path.stat().st_mtime_ns == before


def test_damaged_export_is_redone(tiny_sam, tmp_path):
    from labkit.models import SamSegmenter

    path = tmp_path / "onnx" / "tiny-damaged.onnx"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    seg = SamSegmenter(tiny_sam, cache_dir=tmp_path, decoder="onnx", model_id="tiny-damaged")
    seg.set_image(random_image())
    assert seg.predict(box=[5, 5, 40, 40])[0].shape == (3, 60, 80)


def test_auto_picks_onnx_on_cpu(tiny_sam, onnx_cache):
    import torch

    from labkit.models import SamSegmenter

    seg = SamSegmenter(tiny_sam, cache_dir=onnx_cache, model_id="tiny-onnx-test")
    assert seg.decoder == ("onnx" if not torch.cuda.is_available() else "torch")


def test_channels_last_tail_equals_segment_anything_decoder(tiny_sam, tmp_path):
    """The exported graph's rearranged upscaling gives SamOnnxModel's plain decoder outputs."""
    import onnxruntime as ort
    import torch

    from labkit.models.segmenters.sam_onnx import export_decoder, onnx_prompt

    coords, labels = onnx_prompt(np.array([[20.0, 30.0]]), np.array([1]), np.array([5.0, 6.0, 50.0, 40.0]))
    feed = {"image_embeddings": torch.randn(1, 32, 8, 8, generator=torch.Generator().manual_seed(0)).numpy(),
            "point_coords": coords[None], "point_labels": labels[None]}
    outs = []
    for fast in (True, False):
        path = export_decoder(tiny_sam, tmp_path / f"{fast}.onnx", fast_tail=fast)
        outs.append(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed))
    np.testing.assert_allclose(outs[0][0], outs[1][0], atol=1e-5)
    np.testing.assert_allclose(outs[0][1], outs[1][1], atol=1e-6)
