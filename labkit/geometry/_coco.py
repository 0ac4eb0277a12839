"""pycocotools behind one door: the lazy import and COCO's compressed RLE strings.

Package-internal: :mod:`labkit.geometry.rle`, :mod:`~labkit.geometry.convert`,
:mod:`~labkit.geometry.iou` and :mod:`~labkit.geometry.validate` import from here.
"""
from __future__ import annotations

from typing import Any

__all__ = ["counts_from_string", "mask_api", "string_from_counts"]


def mask_api() -> Any:
    """``pycocotools.mask``, imported on first use (it is the slow part of importing geometry)."""
    from pycocotools import mask as mask_utils

    return mask_utils


def counts_from_string(counts: str) -> list[int] | None:
    """Run lengths of a COCO compressed RLE string, or None if it is malformed.

    A Python port of pycocotools' ``rleFrString``, used to validate strings
    before pycocotools' C decoder (which does not check them) sees them.
    """
    runs: list[int] = []
    value, shift = 0, 0
    for char in counts:
        c = ord(char) - 48
        if not 0 <= c < 64:
            return None
        value |= (c & 0x1F) << shift
        shift += 5
        if c & 0x20:
            continue
        if c & 0x10:
            value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            return None
        runs.append(value)
        value, shift = 0, 0
    return None if shift else runs


def string_from_counts(runs: list[int], height: int, width: int) -> str:
    """COCO compressed RLE string of uncompressed run lengths."""
    coco = mask_api().frPyObjects({"size": [height, width], "counts": list(runs)}, height, width)
    return coco["counts"].decode("ascii")
