"""Box-filter (area-average) resampling of float images, as Pillow does it, in numpy.

:func:`perceptual_hash <labkit.quality.integrity.perceptual_hash>` reduces images
to 32x32 or 9x8 before hashing. Hashes are compared across projects and labkit
versions, so the reduction must be bit-for-bit the one the hashes were first made
with: Pillow's ``Image.resize(size, Image.BOX)`` on a mode ``"F"`` (float32) image.
This module reproduces that (``libImaging/Resample.c`` of Pillow 13:
``precompute_coeffs``, the 32-bit horizontal and vertical passes and the order they
run in) without importing Pillow, so the quality core stays numpy-only and the hashes
no longer depend on the installed Pillow. ``tests/quality/test_integrity.py`` checks
it against Pillow.
"""
from __future__ import annotations

import numpy as np

__all__ = ["box_resize"]


def _box_coefficients(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights, each ``(out_size, taps)``, of Pillow's box filter.

    Follows ``precompute_coeffs`` term by term in float64 (``support`` 0.5 for the
    box), so the weights, and the order they are applied in, are Pillow's.
    """
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    ss = 1.0 / filterscale
    centers = (np.arange(out_size) + 0.5) * scale
    # C's (int) cast truncates toward zero; negatives are clamped to 0 right after.
    xmin = np.maximum(np.trunc(centers - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc(centers + support + 0.5).astype(np.int64), in_size) - xmin
    taps = max(int(xmax.max()), 1)
    x = np.arange(taps)
    t = ((x[None, :] + xmin[:, None]).astype(np.float64) - centers[:, None] + 0.5) * ss
    w = ((t > -0.5) & (t <= 0.5) & (x[None, :] < xmax[:, None])).astype(np.float64)
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=w, where=total != 0)
    index = np.minimum(x[None, :] + xmin[:, None], in_size - 1)  # unused taps have weight 0
    return index, w


def _pass(image: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """Resample a float32 image along ``axis``; accumulate in float64, store float32."""
    src = np.ascontiguousarray(image if axis == 0 else image.T)  # resampled axis first: whole-row gathers
    index, w = _box_coefficients(src.shape[0], out_size)
    acc = np.zeros((out_size, src.shape[1]), dtype=np.float64)
    for j in range(w.shape[1]):  # tap by tap: Pillow's summation order, so the same rounding
        acc += src[index[:, j]] * w[:, j, None]
    out = acc.astype(np.float32)
    return out if axis == 0 else out.T


def box_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a 2-D image to ``(height, width)`` with Pillow's box filter.

    The image is cast to float32 first (Pillow's mode ``"F"``); the result equals
    ``Image.fromarray(image.astype(np.float32)).resize((width, height), Image.BOX)``.

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Real values, H, W >= 1.
    height, width : int
        Output size, each >= 1.

    Returns
    -------
    ndarray of shape (height, width), float32
        Each output pixel is the mean of the input pixels whose centres fall in its
        footprint (an area average when reducing; nearest pixel when enlarging).

    Examples
    --------
    >>> box_resize(np.arange(16.0).reshape(4, 4), 2, 2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    >>> box_resize(np.array([[1.0, 2.0]]), 1, 4)
    array([[1., 1., 2., 2.]], dtype=float32)
    """
    a = np.asarray(image)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"image has shape {a.shape}; expected a non-empty 2-D (H, W) array")
    for name, n in (("height", height), ("width", width)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{name}={n!r}; expected an integer >= 1")
    out = a.astype(np.float32)
    (in_h, in_w), height, width = out.shape, int(height), int(width)
    # Pillow >= 13 runs the vertical pass first when the height shrinks more than twice
    # as much as the width (python-pillow/Pillow#9549); the pass order changes the
    # float32 rounding of the intermediate image, so it is part of the result.
    vertical_first = in_h - height > 0 and in_h - height > (in_w - width) * 2
    for axis in ((0, 1) if vertical_first else (1, 0)):
        size = height if axis == 0 else width
        if out.shape[axis] != size:  # Pillow skips a pass whose size does not change
            out = _pass(out, size, axis)
    return np.ascontiguousarray(out)
