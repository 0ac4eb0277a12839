"""Consensus from several annotators: labels, masks and boxes.

- Labels: :class:`MajorityVote`, :class:`DawidSkene` (crowd-kit's interface and results,
  vectorised), :func:`aggregate_with_model` (the model pool as one more annotator).
- Masks: :func:`mask_majority`, :func:`staple`, :func:`fuse_masks` (per image and class or
  per object matched across annotators).
- Boxes: :func:`fuse_boxes` (Hungarian matching across annotators, quorum, weighted mean),
  :func:`cluster_boxes`.

All take the long layout (``task``, ``worker``, ``label`` [, geometry]) or arrays and
return results indexed by task; writing consensus into a project is
:func:`labkit.services.consensus.write_consensus`.
"""
from __future__ import annotations

from .boxes import cluster_boxes, fuse_boxes
from .dawid_skene import DawidSkene
from .majority_vote import MajorityVote
from .masks import StapleResult, fuse_masks, mask_majority, staple
from .model_assisted import aggregate_with_model

__all__ = [
    "DawidSkene",
    "MajorityVote",
    "StapleResult",
    "aggregate_with_model",
    "cluster_boxes",
    "fuse_boxes",
    "fuse_masks",
    "mask_majority",
    "staple",
]
