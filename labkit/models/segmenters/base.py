"""The segmenter protocol and the validation every segmenter shares.

A segmenter turns prompts on one image into candidate masks::

    seg.set_image(image)                 # once per image: the expensive part
    masks, scores = seg.predict(box=[x0, y0, x1, y1], points=[[x, y]], point_labels=[1])

``image`` is ``(H, W, 3)`` uint8 RGB; boxes are XYXY pixels; points are ``(P, 2)`` x, y
pixels with labels 1 (object) / 0 (background). ``predict`` returns ``masks`` of shape
``(C, H, W)`` bool and ``scores`` of shape ``(C,)`` (the model's quality estimate per mask;
the masks are not sorted by it).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class Segmenter(ABC):
    """Base class of labkit's segmenters (see the module docstring for the protocol).

    Attributes
    ----------
    name : str
        The registry name (``"sam_vit_b"``, ``"grabcut"``, ...).
    model_id : str
        Stable id of the architecture and weights: the embedding cache key and the
        ``model_id`` recorded in a mask's provenance.
    has_embeddings : bool
        True when :meth:`set_image` computes an embedding worth caching and prefetching.
    """

    name: str = "segmenter"
    model_id: str = "segmenter"
    has_embeddings: bool = False

    @abstractmethod
    def set_image(self, image: np.ndarray, *, key: str | None = None) -> None:
        """Make ``image`` the current image. ``key`` is its content hash (for caches)."""

    @abstractmethod
    def predict(self, *, box: Any = None, points: Any = None, point_labels: Any = None,
                multimask: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Masks ``(C, H, W)`` bool and scores ``(C,)`` for prompts on the current image."""

    def precompute(self, image: np.ndarray, *, key: str | None = None, background: bool = False,
                   check: Any = None) -> bool:
        """Cache whatever :meth:`set_image` would compute; True when work was done.

        ``background=True`` asks the work to yield to foreground prompts, calling
        ``check()`` at each yield point (it may raise to stop). Segmenters without
        embeddings have nothing to precompute and return False.
        """
        return False

    def is_cached(self, key: str) -> bool:
        """True when :meth:`set_image` of the image with this key would be cheap."""
        return not self.has_embeddings

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model_id={self.model_id!r})"


def check_image(image: Any) -> np.ndarray:
    """Validate an ``(H, W, 3)`` uint8 RGB image; return it as a numpy array."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        raise ValueError(f"image has shape {arr.shape} (grayscale); expected (H, W, 3) RGB. "
                         "Convert it with np.stack([img] * 3, axis=-1)")
    if arr.ndim != 3 or arr.shape[2] not in (3,):
        hint = " (RGBA? drop alpha with img[..., :3])" if arr.ndim == 3 and arr.shape[2] == 4 else ""
        raise ValueError(f"image has shape {arr.shape}; expected (H, W, 3) RGB{hint}")
    if arr.dtype != np.uint8:
        raise ValueError(f"image has dtype {arr.dtype}; expected uint8 in [0, 255]. For floats in [0, 1] "
                         "use (img * 255).round().astype(np.uint8)")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"image is empty: shape {arr.shape}")
    return arr


def check_prompts(box: Any = None, points: Any = None, point_labels: Any = None
                  ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Validate prompts; return ``box (4,)`` float64, ``points (P, 2)`` float64, ``labels (P,)`` int64.

    Examples
    --------
    >>> check_prompts(box=[1, 2, 30, 40])[0]
    array([ 1.,  2., 30., 40.])
    >>> check_prompts()
    Traceback (most recent call last):
    ...
    ValueError: no prompt given: pass box=[x0, y0, x1, y1], points=[[x, y], ...] with point_labels=[1, ...], or both
    """
    if box is None and points is None:
        if point_labels is not None:
            raise ValueError("point_labels given without points; pass points=[[x, y], ...] too")
        raise ValueError("no prompt given: pass box=[x0, y0, x1, y1], points=[[x, y], ...] with "
                         "point_labels=[1, ...], or both")
    b = None
    if box is not None:
        b = _as_float(box, "box")
        if b.shape == (1, 4):
            b = b[0]
        if b.shape != (4,):
            raise ValueError(f"box has shape {b.shape}; expected 4 numbers [x0, y0, x1, y1] (XYXY pixels)")
        if b[2] < b[0] or b[3] < b[1]:
            raise ValueError(f"box {b.tolist()} has x1 < x0 or y1 < y0; expected XYXY corners "
                             "[x0, y0, x1, y1] (was it XYWH? then use [x, y, x + w, y + h])")
    p = lab = None
    if points is not None:
        p = _as_float(points, "points")
        if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] == 0:
            extra = " (one point? wrap it: [[x, y]])" if p.shape == (2,) else ""
            raise ValueError(f"points has shape {p.shape}; expected (P, 2) x, y pixels with P >= 1{extra}")
        if point_labels is None:
            raise ValueError(f"{len(p)} point(s) given without point_labels; pass point_labels with "
                             "1 (object) or 0 (background) per point")
        lab = np.asarray(point_labels)
        if lab.ndim == 0:
            lab = lab.reshape(1)
        if lab.shape != (len(p),):
            raise ValueError(f"point_labels has shape {lab.shape} for {len(p)} point(s); expected ({len(p)},)")
        if not np.isin(lab, (0, 1)).all():
            raise ValueError(f"point_labels must be 1 (object) or 0 (background), got {lab.tolist()}")
        lab = lab.astype(np.int64)
    elif point_labels is not None:
        raise ValueError("point_labels given without points; pass points=[[x, y], ...] too")
    return b, p, lab


def _as_float(x: Any, what: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers, got {x!r}") from None
    if not np.isfinite(a).all():
        raise ValueError(f"{what} has non-finite values: {a.tolist()}")
    return a
