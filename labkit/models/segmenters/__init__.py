"""Segmenters: SAM (ViT-B/L/H checkpoints) and GrabCut behind one small protocol.

``set_image(image)`` once per image, then ``predict(box=..., points=..., point_labels=...)``
per prompt; see :mod:`labkit.models.segmenters.base`. None of these modules imports torch
at import time.
"""
from labkit.models.segmenters.base import Segmenter, check_image, check_prompts
from labkit.models.segmenters.grabcut import GrabCutSegmenter
from labkit.models.segmenters.registry import (
    default_segmenter,
    describe_segmenters,
    list_segmenters,
    load_segmenter,
    register_segmenter,
)
from labkit.models.segmenters.sam import SamSegmenter
from labkit.models.segmenters.sam_build import MissingCheckpointError, build_sam

__all__ = [
    "Segmenter",
    "SamSegmenter",
    "GrabCutSegmenter",
    "load_segmenter",
    "list_segmenters",
    "describe_segmenters",
    "default_segmenter",
    "register_segmenter",
    "build_sam",
    "MissingCheckpointError",
    "check_image",
    "check_prompts",
]
