"""SamSegmenter against its trusted peer, segment_anything.SamPredictor, and its inputs."""
from __future__ import annotations

import numpy as np
import pytest

from tests.models.conftest import TINY, random_image

PROMPTS = {
    "box": dict(box=np.array([10.0, 8.0, 55.0, 45.0])),
    "points": dict(points=np.array([[20.0, 30.0], [60.0, 15.0]]), point_labels=np.array([1, 0])),
    "one_point": dict(points=np.array([[40.0, 30.0]]), point_labels=np.array([1])),
    "box+points": dict(box=np.array([10.0, 8.0, 55.0, 45.0]), points=np.array([[30.0, 25.0], [12.0, 40.0]]),
                       point_labels=np.array([1, 0])),
}


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_equals_sam_predictor(tiny_sam, tiny_segmenter, prompt, multimask):
    from segment_anything import SamPredictor

    image = random_image(60, 80, seed=1)
    ref = SamPredictor(tiny_sam)
    ref.set_image(image)
    kw = PROMPTS[prompt]
    want_masks, want_scores, _ = ref.predict(point_coords=kw.get("points"), point_labels=kw.get("point_labels"),
                                             box=kw.get("box"), multimask_output=multimask)
    seg = tiny_segmenter()
    seg.set_image(image)
    masks, scores = seg.predict(**kw, multimask=multimask)
    assert masks.dtype == bool and masks.shape == (3 if multimask else 1, 60, 80)
    np.testing.assert_array_equal(masks, want_masks)
    np.testing.assert_array_equal(scores, want_scores)
    assert 0.01 < masks.mean() < 0.99  # the fixture is not trivially empty or full


def test_tall_image_and_list_prompts(tiny_sam, tiny_segmenter):
    from segment_anything import SamPredictor

    image = random_image(90, 37, seed=2)
    ref = SamPredictor(tiny_sam)
    ref.set_image(image)
    want, _, _ = ref.predict(box=np.array([3, 10, 30, 70]), multimask_output=True)
    seg = tiny_segmenter()
    seg.set_image(image)
    masks, _ = seg.predict(box=[3, 10, 30, 70])  # plain lists are accepted
    np.testing.assert_array_equal(masks, want)


@pytest.mark.parametrize("kw, match", [
    (dict(), "no prompt given"),
    (dict(box=[1, 2, 3]), r"box has shape \(3,\); expected 4 numbers"),
    (dict(box=[10, 10, 5, 20]), "x1 < x0"),
    (dict(box=[0, 0, np.nan, 4]), "non-finite"),
    (dict(points=[10, 20], point_labels=[1]), r"wrap it: \[\[x, y\]\]"),
    (dict(points=[[10, 20]]), "without point_labels"),
    (dict(points=[[10, 20], [3, 4]], point_labels=[1]), r"point_labels has shape \(1,\) for 2 point"),
    (dict(points=[[10, 20]], point_labels=[2]), "must be 1 .object. or 0"),
    (dict(point_labels=[1]), "point_labels given without points"),
    (dict(box="abcd"), "box must be numbers"),
])
def test_bad_prompts(tiny_segmenter, kw, match):
    seg = tiny_segmenter()
    seg.set_image(random_image())
    with pytest.raises(ValueError, match=match):
        seg.predict(**kw)


@pytest.mark.parametrize("image, match", [
    (np.zeros((10, 10), np.uint8), "grayscale"),
    (np.zeros((10, 10, 4), np.uint8), "RGBA"),
    (np.zeros((10, 10, 3), np.float32), "dtype float32; expected uint8"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
])
def test_bad_images(tiny_segmenter, image, match):
    with pytest.raises(ValueError, match=match):
        tiny_segmenter().set_image(image)


def test_predict_before_set_image(tiny_segmenter):
    with pytest.raises(RuntimeError, match="call set_image"):
        tiny_segmenter().predict(box=[0, 0, 5, 5])


def test_wrong_arguments(tiny_sam, tmp_path):
    from labkit.models import SamSegmenter

    with pytest.raises(TypeError, match="segment_anything.modeling.Sam"):
        SamSegmenter(object(), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="decoder must be one of"):
        SamSegmenter(tiny_sam, cache_dir=tmp_path, decoder="tensorrt")


def test_device_and_model_id(tiny_sam, tmp_path):
    import torch

    from labkit.models import SamSegmenter
    from tests.models.conftest import make_tiny_sam

    seg = SamSegmenter(tiny_sam, cache_dir=tmp_path, decoder="torch")
    assert seg.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    # the default id is the name plus a hash of the weights: stable, and it changes with them
    assert seg.model_id.startswith("sam-")
    assert seg.model_id == SamSegmenter(tiny_sam, cache_dir=tmp_path, decoder="torch").model_id
    assert SamSegmenter(make_tiny_sam(seed=1), cache_dir=tmp_path, decoder="torch").model_id != seg.model_id


def test_builder_matches_segment_anything():
    """build_sam without options is segment_anything's ViT-B/L/H (compared on the meta device)."""
    import torch
    from segment_anything import sam_model_registry

    from labkit.models.segmenters.sam_build import build_sam

    for arch in ("sam_vit_b", "sam_vit_l", "sam_vit_h"):
        with torch.device("meta"):
            ours = {k: tuple(v.shape) for k, v in build_sam(arch).state_dict().items()}
            theirs = {k: tuple(v.shape) for k, v in sam_model_registry[arch[4:]]().state_dict().items()}
        assert ours == theirs, arch


def test_unknown_build_option():
    from labkit.models.segmenters.sam_build import build_sam

    with pytest.raises(ValueError, match="unknown build_options"):
        build_sam("sam_vit_b", encoder_widht=3)


def test_checkpoint_errors(tmp_path, tiny_checkpoint, monkeypatch):
    from labkit.models import MissingCheckpointError, load_segmenter

    monkeypatch.delenv("LABKIT_SAM_CHECKPOINT", raising=False)
    with pytest.raises(MissingCheckpointError, match=r"sam_vit_b needs a checkpoint.*sam_vit_b_01ec64\.pth.*"
                                                     r"load_segmenter\('grabcut'\) works"):
        load_segmenter("sam_vit_b", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a file"):
        load_segmenter("sam_vit_l", checkpoint=tmp_path / "nope.pth", cache_dir=tmp_path)
    monkeypatch.setenv("LABKIT_SAM_CHECKPOINT", str(tmp_path / "nope.pth"))
    with pytest.raises(FileNotFoundError, match=r"\$LABKIT_SAM_CHECKPOINT .*is not a file"):
        load_segmenter("sam_vit_b", cache_dir=tmp_path)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read SAM checkpoint"):
        load_segmenter("sam_vit_b", checkpoint=bad, cache_dir=tmp_path)
    # the tiny checkpoint does not fit the full-size architecture: say so, no traceback soup
    with pytest.raises(ValueError, match="does not fit sam_vit_h"):
        load_segmenter("sam_vit_h", checkpoint=tiny_checkpoint, cache_dir=tmp_path, build_options={
            k: v for k, v in TINY.items() if k != "encoder_embed_dim"})


def test_checkpoint_loads_the_weights(tiny_sam, tiny_checkpoint, tmp_path):
    from segment_anything import SamPredictor

    from labkit.models import load_segmenter

    seg = load_segmenter("sam_vit_b", checkpoint=tiny_checkpoint, cache_dir=tmp_path, build_options=TINY,
                         decoder="torch")
    assert seg.name == "sam_vit_b" and seg.model_id.startswith("sam_vit_b+")
    image = random_image(seed=3)
    seg.set_image(image)
    ref = SamPredictor(tiny_sam)
    ref.set_image(image)
    box = np.array([5.0, 5.0, 60.0, 50.0])
    np.testing.assert_array_equal(seg.predict(box=box)[0], ref.predict(box=box)[0])
    # the id comes from the file's hash: loading again gives the same id (memoised hash)
    again = load_segmenter("sam_vit_b", checkpoint=tiny_checkpoint, cache_dir=tmp_path, build_options=TINY,
                           decoder="torch")
    assert again.model_id == seg.model_id
    assert (tmp_path / "checkpoint_sha256.json").is_file()


def test_default_segmenter(tmp_path, tiny_checkpoint, monkeypatch):
    from labkit.models import default_segmenter

    monkeypatch.delenv("LABKIT_SAM_CHECKPOINT", raising=False)
    assert default_segmenter().name == "grabcut"
    monkeypatch.setenv("LABKIT_SAM_CHECKPOINT", str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match="not a file; fix or unset it"):
        default_segmenter()
    # a real checkpoint: the size is read from its weights (the tiny one is "none of" the sizes)
    monkeypatch.setenv("LABKIT_SAM_CHECKPOINT", str(tiny_checkpoint))
    with pytest.raises(ValueError, match=r"width 32, depth 2\) is none of"):
        default_segmenter(cache_dir=tmp_path)


def test_infer_arch():
    import torch

    from labkit.models.segmenters.sam_build import build_sam, infer_arch

    with torch.device("meta"):
        assert infer_arch(build_sam("sam_vit_l").state_dict()) == "sam_vit_l"


def test_auto_decoder_falls_back_to_torch(tiny_sam, tmp_path, monkeypatch):
    from labkit.models import SamSegmenter
    from labkit.models.segmenters import sam as sam_module
    from labkit.models.segmenters import sam_onnx

    def broken(*args, **kwargs):
        raise RuntimeError("exporter gone")

    monkeypatch.setattr(sam_module, "OnnxDecoder", broken)
    monkeypatch.setattr(sam_module, "onnx_available", lambda: True)
    with pytest.warns(RuntimeWarning, match="ONNX decoder is unavailable .*exporter gone.*PyTorch decoder"):
        seg = SamSegmenter(tiny_sam, cache_dir=tmp_path, device="cpu")
    assert seg.decoder == "torch"
    with pytest.raises(RuntimeError, match="exporter gone"):  # asked for explicitly: no fallback
        SamSegmenter(tiny_sam, cache_dir=tmp_path, decoder="onnx")
    monkeypatch.undo()
    monkeypatch.setattr(sam_onnx, "onnx_available", lambda: False)
    with pytest.raises(ImportError, match="pip install onnx onnxruntime"):
        SamSegmenter(tiny_sam, cache_dir=tmp_path, decoder="onnx")
