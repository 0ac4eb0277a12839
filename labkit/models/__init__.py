"""labkit.models: segmenters (SAM, GrabCut), the embedding cache, its prefetcher and precompute, pre-labeling.

Everything here loads on first use: ``import labkit.models`` imports neither torch nor
segment_anything nor OpenCV.

>>> from labkit.models import load_segmenter, list_segmenters
>>> list_segmenters()
['grabcut', 'sam_vit_b', 'sam_vit_h', 'sam_vit_l']
"""
from __future__ import annotations

from labkit._util.lazy import lazy_exports

_SEG = "labkit.models.segmenters"
_LAZY = {
    # segmenters
    "load_segmenter": _SEG,
    "list_segmenters": _SEG,
    "default_segmenter": _SEG,
    "register_segmenter": _SEG,
    "Segmenter": _SEG,
    "SamSegmenter": _SEG,
    "GrabCutSegmenter": _SEG,
    "MissingCheckpointError": _SEG,
    # embedding cache and prefetch
    "EmbeddingCache": "labkit.models.embeddings",
    "project_cache_dir": "labkit.models.embeddings",
    "default_cache_dir": "labkit.models.embeddings",
    "project_image": "labkit.models.embeddings",
    "image_key": "labkit.models.embeddings",
    "Prefetcher": "labkit.models.prefetch",
    "precompute_embeddings": "labkit.models.precompute",
    # the difficulty pool
    "ModelPool": "labkit.models.pool",
    "PoolPredictions": "labkit.models.pool",
    "PoolMember": "labkit.models.pool",
    "reference_labels": "labkit.models.pool",
    "project_label_issues": "labkit.models.pool",
    "project_difficulty": "labkit.models.pool",
    "DEFAULT_ARCHS": "labkit.models.pool",
    "DEFAULT_FRACTIONS": "labkit.models.pool",
    "forget_images": "labkit.models.pool",
    "pools_trained_on_forgotten": "labkit.models.pool",
    # pre-labeling: proposals for people to review
    "prelabel": "labkit.models.prelabelers",
    "PRELABELERS": "labkit.models.prelabelers",
    # provenance
    "replay": "labkit.models.provenance",
    "make_provenance": "labkit.models.provenance",
    "prompts_from_provenance": "labkit.models.provenance",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
