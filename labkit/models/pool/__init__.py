"""labkit.models.pool: a population of timm classifiers that scores images out of sample.

- :class:`ModelPool`: from your checkpoints (:meth:`~ModelPool.from_checkpoints`), trained
  on a project's own labels with cross-fitting (:meth:`~ModelPool.train`, the embedded
  default), or reopened (:meth:`~ModelPool.load`); :meth:`~ModelPool.predict` gives
  ``probs`` of shape (M, N, K), saved in the project with provenance.
- :func:`project_delivery` / :func:`reference_labels`: the delivered label per image (one
  definition for every view: :mod:`labkit.quality.delivered`).
- :func:`project_label_issues`: label-error candidates among a project's images.
- :func:`forget_images`: erase images from the pools' folds and saved predictions;
  :func:`pools_trained_on_forgotten`: pools whose weights still saw erased images.

Importing this package loads neither torch nor timm; they load when a model is needed.
"""
from __future__ import annotations

from .forget import forget_images, pools_trained_on_forgotten
from .labels import project_delivery, project_difficulty, project_label_issues, reference_labels
from .pool import DEFAULT_ARCHS, DEFAULT_FRACTIONS, ModelPool, PoolMember, PoolPredictions

__all__ = ["DEFAULT_ARCHS", "DEFAULT_FRACTIONS", "ModelPool", "PoolMember", "PoolPredictions",
           "forget_images", "pools_trained_on_forgotten", "project_delivery", "project_difficulty",
           "project_label_issues", "reference_labels"]
