"""Mask proposals for one image: from its boxes (SAM or GrabCut), or SAM's "segment everything".

- ``boxes``: every box prompts the segmenter (SAM when a checkpoint is given, GrabCut by
  default); the best-scored candidate mask is the proposal, with the box's class.
- ``auto``: ``segment_anything.SamAutomaticMaskGenerator`` over the image, reading the
  image embedding from labkit's cache (``crop_n_layers=0``: one embedding, the full
  image). Each mask it keeps is re-decoded from its own point prompt by labkit's
  segmenter and stored as that decoding, so :func:`labkit.models.replay` regenerates it
  exactly; the generator's own mask is compared in ``provenance["generator_iou"]``.

:func:`propose_image` does one image here; :func:`propose_batch` is the Dask task that
does a batch on a worker, which reads the files itself (checked against their hashes)
and never opens the project's store.
"""
from __future__ import annotations

import io
import tempfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.geometry import encode_rle
from labkit.models.provenance import make_provenance

__all__ = ["GENERATOR_DEFAULTS", "SegmenterSpec", "check_generator", "propose_batch", "propose_image", "spec_of"]

#: ``SamAutomaticMaskGenerator`` options labkit sets (``crop_n_layers`` is always 0: the
#: embedding cache holds the full image's embedding, and replay decodes on it).
GENERATOR_DEFAULTS: dict[str, Any] = {"points_per_side": 32, "points_per_batch": 64, "pred_iou_thresh": 0.88,
                                      "stability_score_thresh": 0.95, "stability_score_offset": 1.0,
                                      "box_nms_thresh": 0.7, "min_mask_region_area": 0}
_GENERATOR_KEYS = (*GENERATOR_DEFAULTS, "crop_n_layers")


def check_generator(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The generator's options: ``GENERATOR_DEFAULTS`` updated with ``options`` (checked)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(_GENERATOR_KEYS))
    if unknown:
        raise ValueError(f"unknown generator options {unknown}; expected some of {sorted(GENERATOR_DEFAULTS)}")
    if options.pop("crop_n_layers", 0) != 0:
        raise ValueError("crop_n_layers must be 0: proposals are decoded on the full image's cached embedding, "
                         "so replay regenerates them; raise points_per_side for smaller objects")
    return {**GENERATOR_DEFAULTS, **options}


class _CachedPredictor:
    """What ``SamAutomaticMaskGenerator`` asks of its ``SamPredictor``, over a labkit SamSegmenter:
    ``set_image`` reads the embedding from the segmenter's cache instead of encoding again."""

    def __init__(self, segmenter: Any, key: str):
        self._seg, self._key = segmenter, key

    def set_image(self, image: np.ndarray) -> None:
        self._seg.set_image(image, key=self._key)

    def reset_image(self) -> None:  # the segmenter keeps its current image; nothing to free
        pass

    def __getattr__(self, name: str) -> Any:  # transform, predict_torch, model, device
        return getattr(self._seg.predictor, name)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _extra(seg: Any) -> dict[str, Any]:
    """Provenance of the model beyond its id: the decoder of a SAM (its masks depend on it)."""
    decoder = getattr(seg, "decoder", None)
    return {"decoder": decoder} if decoder is not None else {}


def propose_image(seg: Any, image: np.ndarray, key: str, mode: str, args: Any) -> list[dict[str, Any]]:
    """Proposals for one image: dicts with ``kind``, ``label``, ``geometry``, ``score``, ``provenance``.

    Parameters
    ----------
    seg : Segmenter
        GrabCut or SAM (``mode="auto"``: SAM only).
    image : ndarray of shape (H, W, 3), uint8
    key : str
        The image's sha256 (the embedding cache key).
    mode : {"boxes", "auto"}
    args
        ``boxes``: a list of ``(annotation id, class, [x0, y0, x1, y1])``; ``auto``:
        ``{"label": class, "generator": options}``.
    """
    seg.set_image(image, key=key)
    out = []
    if mode == "boxes":
        for box_id, label, box in args:
            masks, scores = seg.predict(box=box, multimask=True)
            i = int(np.argmax(scores))
            if not masks[i].any():
                continue
            prov = make_provenance(seg, box=box, multimask=True, multimask_index=i, prelabel="boxes",
                                   from_annotation=int(box_id), **_extra(seg))
            out.append({"kind": "mask", "label": label, "geometry": encode_rle(masks[i]),
                        "score": float(scores[i]), "provenance": prov})
        return out
    from segment_anything import SamAutomaticMaskGenerator

    options = dict(args["generator"])
    gen = SamAutomaticMaskGenerator(seg.sam, crop_n_layers=0, output_mode="binary_mask", **options)
    gen.predictor = _CachedPredictor(seg, key)
    for found in sorted(gen.generate(image), key=lambda r: -float(r["predicted_iou"])):
        point = [float(v) for v in found["point_coords"][0]]
        masks, _ = seg.predict(points=[point], point_labels=[1], multimask=True)
        ious = [_iou(m, found["segmentation"]) for m in masks]
        i = int(np.argmax(ious))
        if not masks[i].any():
            continue
        prov = make_provenance(seg, points=[point], point_labels=[1], multimask=True, multimask_index=i,
                               prelabel="auto", generator=options, predicted_iou=float(found["predicted_iou"]),
                               stability_score=float(found["stability_score"]), generator_iou=round(ious[i], 6),
                               **_extra(seg))
        out.append({"kind": "mask", "label": args["label"], "geometry": encode_rle(masks[i]),
                    "score": float(found["predicted_iou"]), "provenance": prov})
    return out


# ------------------------------------------------------------------ on Dask --
@dataclass(frozen=True)
class SegmenterSpec:
    """What a worker needs to segment as the client's segmenter does (sent once to every worker)."""

    name: str
    model_id: str
    grabcut: dict | None = None  # GrabCut's options
    model: Any = None  # SAM: the module, on the CPU, without hooks
    decoder: str = "torch"
    cache_root: str | None = None  # the embedding cache the workers share, if they see it


def spec_of(seg: Any) -> SegmenterSpec:
    """The :class:`SegmenterSpec` of a labkit segmenter (GrabCut or SAM)."""
    if getattr(seg, "sam", None) is not None:
        from labkit.models.precompute import portable_module

        return SegmenterSpec(name=seg.name, model_id=seg.model_id, model=portable_module(seg.sam),
                             decoder=seg.decoder, cache_root=str(seg.cache_dir))
    if seg.name == "grabcut":
        return SegmenterSpec(name="grabcut", model_id=seg.model_id, grabcut={
            k: getattr(seg, k) for k in ("iterations", "click_iterations", "work_size", "margin", "seed_radius")})
    raise ValueError(f"segmenter {seg!r} cannot run on a Dask cluster: labkit sends GrabCut or SAM segmenters; "
                     "run without client=")


#: Segmenters a worker process keeps (the last one), by model.
_BUILT: OrderedDict[tuple, Any] = OrderedDict()


def _worker_segmenter(spec: SegmenterSpec) -> Any:
    from pathlib import Path

    key = (spec.model_id, spec.cache_root, spec.decoder)
    seg = _BUILT.get(key)
    if seg is None:
        if spec.grabcut is not None:
            from labkit.models.segmenters.grabcut import GrabCutSegmenter

            seg = GrabCutSegmenter(**spec.grabcut)
        else:
            from labkit.models.segmenters.sam import SamSegmenter

            root = spec.cache_root if spec.cache_root and Path(spec.cache_root).is_dir() else tempfile.mkdtemp(
                prefix="labkit-prelabel-")
            seg = SamSegmenter(spec.model, model_id=spec.model_id, name=spec.name, cache_dir=root,
                               decoder=spec.decoder, memory_items=1)
        if seg.model_id != spec.model_id:
            raise RuntimeError(f"the worker built segmenter {seg.model_id!r}, not the client's {spec.model_id!r} "
                               "(another OpenCV or labkit version on the worker?)")
        _BUILT.clear()
        _BUILT[key] = seg
    return seg


def propose_batch(spec: SegmenterSpec, sources: list[Any], keys: list[str], names: list[str], mode: str,
                  args: Sequence[Any]) -> list[list[dict[str, Any]]]:
    """A Dask task: :func:`propose_image` for each image of a batch (paths or the files' bytes)."""
    from PIL import Image

    from labkit._util.dask import torch_friendly_malloc
    from labkit.models.pool._images import read_checked

    torch_friendly_malloc()
    seg = _worker_segmenter(spec)
    out = []
    for source, key, name, a in zip(sources, keys, names, args):
        data = read_checked(source, key, name)
        with Image.open(io.BytesIO(data)) as im:  # as the store's reader decodes
            image = np.asarray(im.convert("RGB"))
        out.append(propose_image(seg, image, key, mode, a))
    return out
