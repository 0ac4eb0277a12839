"""SAM's prompt encoder + mask decoder exported to ONNX and run with onnxruntime.

The export is segment-anything's own ``SamOnnxModel`` (the model behind its
``scripts/export_onnx_model.py``), trimmed to what labkit's protocol needs: no mask
input and no upsampling in the graph. It returns the four low-resolution mask logits
``(1, 4, 4E, 4E)`` and their IoU scores; the slicing (``multimask``) and the bilinear
upsampling to the image (the same two steps as ``Sam.postprocess_masks``) happen in
:func:`upscale_masks` with OpenCV (3 ms for three 1024 x 768 masks). The decoder's
upscaling tail is traced channels-last (same arithmetic, ~10% faster in onnxruntime).
ViT-B decoder on this 2-core CPU: ~45 ms in onnxruntime vs ~95 ms in PyTorch.

A box enters as two corner points labelled 2 and 3, and a prompt without a box gets
the padding point labelled -1, exactly as ``PromptEncoder`` does, so the masks equal
the PyTorch path's up to float rounding (checked: IoU >= 0.99, logits to ~1e-6).
"""
from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import numpy as np

from labkit._util.atomic import atomic_path
from labkit._util.opencv import opencv

_EXPORT_LOCK = threading.Lock()


def onnx_available() -> bool:
    """True when onnxruntime (to run) and onnx (which torch's exporter needs) can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _decoder_module(sam, *, fast_tail: bool = True):
    import torch
    import torch.nn.functional as F
    from segment_anything.utils.onnx import SamOnnxModel

    class PromptDecoder(SamOnnxModel):
        def forward(self, image_embeddings, point_coords, point_labels):
            sparse = self._embed_points(point_coords, point_labels)
            pe = self.model.prompt_encoder
            dense = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
            if not (fast_tail and _standard_tail(self.mask_decoder)):
                return self.mask_decoder.predict_masks(
                    image_embeddings=image_embeddings, image_pe=pe.get_dense_pe(),
                    sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)
            return _predict_masks_nhwc(self.mask_decoder, image_embeddings + dense, pe.get_dense_pe(), sparse)

    def _predict_masks_nhwc(dec, src, pos, sparse):
        """``MaskDecoder.predict_masks`` for one prompt, upscaling channels-last.

        The same arithmetic, arranged for onnxruntime: each 2x2/stride-2 ConvTranspose is a
        MatMul and a depth-to-space, LayerNorm2d is a LayerNormalization over the last axis
        (its strided ReduceMean over channels was 15% of the decoder's time), and the batch
        of one needs no repeat_interleave.
        """
        tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0).unsqueeze(0)
        tokens = torch.cat((tokens, sparse), dim=1)
        b, c, h, w = src.shape
        hs, keys = dec.transformer(src, pos, tokens)
        ct1, ln, act1, ct2, act2 = dec.output_upscaling
        x = _deconv2x2(keys.reshape(b, h, w, c), ct1)
        x = act1(F.layer_norm(x, (x.shape[-1],), ln.weight, ln.bias, ln.eps))
        x = act2(_deconv2x2(x, ct2))
        mask_tokens = hs[:, 1:(1 + dec.num_mask_tokens), :]
        hyper = torch.stack([mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(dec.output_hypernetworks_mlps)],
                            dim=1)
        bb, hh, ww, cc = x.shape
        masks = (hyper @ x.reshape(bb, hh * ww, cc).transpose(1, 2)).reshape(bb, -1, hh, ww)
        return masks, dec.iou_prediction_head(hs[:, 0, :])

    def _deconv2x2(x, ct):
        """ConvTranspose2d(kernel 2, stride 2) on a channels-last tensor."""
        b, h, w, c = x.shape
        o = ct.out_channels
        weight = ct.weight.permute(0, 2, 3, 1).reshape(c, 4 * o)  # (c, i, j, o)
        y = (x @ weight).reshape(b, h, w, 2, 2, o).permute(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, o)
        return y + ct.bias

    return PromptDecoder(sam, return_single_mask=False).eval()


def _standard_tail(dec) -> bool:
    """True for segment-anything's own MaskDecoder upscaling (what the fast tail reproduces)."""
    import torch.nn as nn
    from segment_anything.modeling.common import LayerNorm2d

    up = dec.output_upscaling
    kinds = [type(m) for m in up]
    return (kinds[:2] == [nn.ConvTranspose2d, LayerNorm2d] and len(up) == 5 and isinstance(up[3], nn.ConvTranspose2d)
            and all(m.kernel_size == (2, 2) and m.stride == (2, 2) and m.padding == (0, 0) and m.groups == 1
                    and m.bias is not None for m in (up[0], up[3])))


def export_decoder(sam, path: str | Path, *, fast_tail: bool = True) -> Path:
    """Export ``sam``'s prompt decoder to ``path`` (opset 17), atomically."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = _decoder_module(sam, fast_tail=fast_tail).to("cpu")
    pe = sam.prompt_encoder
    emb = torch.randn(1, pe.embed_dim, *pe.image_embedding_size)
    coords = torch.randint(0, sam.image_encoder.img_size, (1, 3, 2), dtype=torch.float)
    labels = torch.tensor([[1.0, 2.0, 3.0]])
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings, exporter deprecation notices
        torch.onnx.export(
            module, (emb, coords, labels), str(tmp), dynamo=False, opset_version=17,
            do_constant_folding=True, input_names=["image_embeddings", "point_coords", "point_labels"],
            output_names=["low_res_masks", "iou_predictions"],
            dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}})
    return path


class OnnxDecoder:
    """An onnxruntime session over an exported decoder, exported once per model id.

    Parameters
    ----------
    sam : segment_anything.modeling.Sam
    onnx_path : path
        Where the exported graph lives (``<cache_dir>/onnx/<model_id>.onnx``); exported
        on first use, reused afterwards.
    threads : int, optional
        onnxruntime intra-op threads (default: all cores). Threads do not spin while idle,
        so they leave the cores to a background encoder between prompts.
    """

    def __init__(self, sam, onnx_path: str | Path, *, threads: int | None = None):
        if not onnx_available():
            raise ImportError("decoder='onnx' needs onnx and onnxruntime: pip install onnx onnxruntime")
        import onnxruntime as ort

        path = Path(onnx_path)
        with _EXPORT_LOCK:
            if not path.is_file():
                export_decoder(sam, path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or os.cpu_count() or 1)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception:  # a damaged export (e.g. disk full): export again, once
            path.unlink(missing_ok=True)
            with _EXPORT_LOCK:
                export_decoder(sam, path)
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.path = path

    def __call__(self, embedding: np.ndarray, coords: np.ndarray, labels: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Low-res logits ``(4, 4E, 4E)`` and scores ``(4,)`` for prompts in the model's input frame."""
        low, iou = self.session.run(None, {
            "image_embeddings": np.ascontiguousarray(embedding, dtype=np.float32),
            "point_coords": np.ascontiguousarray(coords[None], dtype=np.float32),
            "point_labels": np.ascontiguousarray(labels[None], dtype=np.float32)})
        return low[0], iou[0]


def onnx_prompt(points: np.ndarray | None, labels: np.ndarray | None, box: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Points and box (already in the model's input frame) as the decoder's coords and labels."""
    coords, labs = [], []
    if points is not None:
        if labels is None:
            raise ValueError("points need point_labels (1 foreground, 0 background), one per point")
        coords.append(points.reshape(-1, 2))
        labs.append(labels.reshape(-1).astype(np.float32))
    if box is not None:
        coords.append(box.reshape(2, 2))
        labs.append(np.array([2.0, 3.0], np.float32))
    else:  # PromptEncoder pads point-only prompts with a "not a point"
        coords.append(np.zeros((1, 2)))
        labs.append(np.array([-1.0], np.float32))
    return np.concatenate(coords).astype(np.float32), np.concatenate(labs)


def upscale_masks(low_res: np.ndarray, *, img_size: int, input_size: tuple[int, int],
                  original_size: tuple[int, int]) -> np.ndarray:
    """``Sam.postprocess_masks`` with OpenCV: ``(C, h, w)`` logits to ``(C, H, W)`` logits.

    Bilinear to ``img_size`` square, crop the padding, bilinear to the original size
    (``cv2.INTER_LINEAR`` on float32 uses the same half-pixel centres as
    ``F.interpolate(..., align_corners=False)``).
    """
    cv2 = opencv()

    ih, iw = input_size
    oh, ow = original_size
    out = np.empty((low_res.shape[0], oh, ow), np.float32)
    for i, m in enumerate(low_res):
        up = cv2.resize(np.ascontiguousarray(m, np.float32), (img_size, img_size), interpolation=cv2.INTER_LINEAR)
        up = up[:ih, :iw]
        out[i] = up if (ih, iw) == (oh, ow) else cv2.resize(up, (ow, oh), interpolation=cv2.INTER_LINEAR)
    return out
