"""COCO run-length encoding of binary masks (pycocotools does the work).

Masks are ``(H, W)`` bool arrays in memory and COCO compressed RLE dicts
``{"size": [H, W], "counts": str}`` in storage.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def _mask_utils():
    from pycocotools import mask as mask_utils

    return mask_utils


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode a binary mask as COCO compressed RLE.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        Any dtype; non-zero pixels are foreground.

    Returns
    -------
    dict
        ``{"size": [H, W], "counts": str}`` (JSON-serialisable).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 5), bool); m[1:3, 2:4] = True
    >>> rle = encode_rle(m)
    >>> rle["size"]
    [4, 5]
    >>> bool((decode_rle(rle) == m).all())
    True
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask has shape {mask.shape}; expected a 2-D (H, W) array")
    rle = _mask_utils().encode(np.asfortranarray(mask != 0, dtype=np.uint8))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def to_coco_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """Return ``rle`` as pycocotools' compressed form (bytes counts).

    Accepts compressed counts (``str`` or ``bytes``) or uncompressed counts
    (a list of run lengths, column-major, starting with background).
    """
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError(f"expected an RLE dict with 'size' and 'counts'; got {type(rle).__name__} "
                         f"{list(rle) if isinstance(rle, dict) else ''}")
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        return _mask_utils().frPyObjects({"size": [h, w], "counts": counts}, h, w)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": [h, w], "counts": counts}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """Decode COCO RLE (compressed or uncompressed) to an ``(H, W)`` bool mask.

    pycocotools trusts the counts; RLE from outside labkit should go through
    ``normalize_geometry("mask", rle)`` first, which checks them.
    """
    return _mask_utils().decode(to_coco_rle(rle)).astype(bool)


def rle_area(rle: dict[str, Any]) -> int:
    """Number of foreground pixels of an RLE mask.

    Parameters
    ----------
    rle : dict
        COCO RLE, compressed (``str``/``bytes`` counts) or uncompressed (list counts).

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 5), bool); m[1:3, 2:5] = True
    >>> rle_area(encode_rle(m))
    6
    """
    return int(_mask_utils().area(to_coco_rle(rle)))


def rle_to_box(rle: dict[str, Any]) -> dict[str, float]:
    """Tight bounding box of an RLE mask as a canonical box, in pixel edges.

    Parameters
    ----------
    rle : dict
        COCO RLE, compressed or uncompressed.

    Returns
    -------
    dict
        ``{"x0", "y0", "x1", "y1"}``: ``x1`` is one past the last foreground column
        (pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``), as pycocotools' ``toBbox``.

    Raises
    ------
    ValueError
        If the mask is empty: it has no box.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 5), bool); m[1:3, 2:5] = True
    >>> rle_to_box(encode_rle(m))
    {'x0': 2.0, 'y0': 1.0, 'x1': 5.0, 'y1': 3.0}
    """
    coco = to_coco_rle(rle)
    mask_utils = _mask_utils()
    if mask_utils.area(coco) == 0:
        raise ValueError(f"mask of size {coco['size']} is empty; an empty mask has no bounding box")
    x, y, w, h = (float(v) for v in mask_utils.toBbox(coco))
    return {"x0": x, "y0": y, "x1": x + w, "y1": y + h}


def _counts_from_string(counts: str) -> list[int] | None:
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


def _string_from_counts(runs: list[int], height: int, width: int) -> str:
    """COCO compressed RLE string of uncompressed run lengths."""
    coco = _mask_utils().frPyObjects({"size": [height, width], "counts": list(runs)}, height, width)
    return coco["counts"].decode("ascii")
