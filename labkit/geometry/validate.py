"""Canonical geometry per annotation kind: validation and normalisation.

The contract is ``docs/data-model.md``. :func:`normalize_geometry` accepts the
documented shorthands and returns the canonical JSON form (plain Python types);
everything else in :mod:`labkit.geometry` goes through it.
"""
from __future__ import annotations

import difflib
import math
import numbers
from typing import Any

import numpy as np

from labkit._util.checks import over_limit

from ._coco import counts_from_string, string_from_counts

__all__ = ["KINDS", "GeometryError", "as_floats", "check_kind", "ellipse_half_extent", "geometry_bounds",
           "normalize_geometry", "polygon_parts"]

KINDS = ("label", "box", "polygon", "ellipse", "point", "mask")

_BOX_KEYS = ("x0", "y0", "x1", "y1")
_ELLIPSE_KEYS = ("cx", "cy", "rx", "ry")
_ANGLE_KEYS = ("angle", "rotate", "rotation")


class GeometryError(ValueError):
    """Geometry that does not match the canonical form of its kind."""


def _show(value: Any, limit: int = 80) -> str:
    """Short description of a received value for error messages."""
    if isinstance(value, np.ndarray):
        return f"ndarray of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(value).__name__} {text}"


def as_floats(value: Any, what: str) -> np.ndarray:
    """``value`` as a float64 array of real, finite numbers (any shape).

    Raises :class:`GeometryError` naming ``what`` for text, None, ragged nesting,
    non-numbers and non-finite values.

    Examples
    --------
    >>> as_floats([[1, 2], [3, 4]], "points").shape
    (2, 2)
    """
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise GeometryError(f"{what} must be numbers; got {_show(value)}")
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged nesting
        raise GeometryError(f"{what} has an irregular structure ({exc}); got {_show(value)}") from None
    if arr.dtype.kind == "O":
        flat = arr.ravel()
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in flat):
            raise GeometryError(f"{what} must be numbers; got {_show(value)}")
    elif arr.dtype.kind not in "iuf":
        raise GeometryError(f"{what} must be numbers, not {arr.dtype} values; got {_show(value)}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = arr[~np.isfinite(arr)][0]
        raise GeometryError(f"{what} contains a non-finite number ({bad}); got {_show(value)}. "
                            "Drop or repair the annotation")
    return arr


def _check_count(n: int, what: str) -> None:
    """GeometryError when ``n`` points exceed ``limits.max_polygon_points`` (before any conversion)."""
    problem = over_limit(n, "max_polygon_points", what, "points")
    if problem:
        raise GeometryError(problem)


def _ring(value: Any, what: str) -> np.ndarray:
    """A polygon ring as a ``(P, 2)`` float array; accepts pairs or a flat list."""
    if isinstance(value, (list, tuple)) and value and not isinstance(value[0], (list, tuple, np.ndarray)):
        _check_count(len(value) // 2, what)  # a flat [x0, y0, x1, y1, ...] list
    elif hasattr(value, "__len__") and not isinstance(value, (str, bytes, dict)):
        _check_count(len(value), what)
    arr = as_floats(value, what)
    if arr.ndim == 1 and arr.size % 2 == 0:
        arr = arr.reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise GeometryError(f"{what} has shape {arr.shape}; expected (P, 2) pairs [[x, y], ...] "
                            "or a flat [x0, y0, x1, y1, ...] list of even length")
    if len(arr) < 3:
        raise GeometryError(f"{what} has {len(arr)} points; a polygon needs at least 3 "
                            '(use kind="point" for single points)')
    return arr


def _check_keys(value: dict, required: tuple[str, ...], optional: tuple[str, ...], what: str) -> None:
    missing = [k for k in required if k not in value]
    extra = [k for k in value if k not in required + optional]
    if missing or extra:
        allowed = list(required) + [f"{k} (optional)" for k in optional]
        raise GeometryError(f"{what} has keys {list(value)}; expected {allowed}"
                            + (f"; missing {missing}" if missing else "")
                            + (f"; unexpected {extra}" if extra else ""))


def _check_inside(xs: np.ndarray, ys: np.ndarray, what: str, width: float | None,
                  height: float | None, tolerance: float) -> None:
    """Raise if any coordinate lies outside ``[0, W] x [0, H]`` by more than ``tolerance``."""
    for axis, vals, size in (("x", xs, width), ("y", ys, height)):
        if size is None or vals.size == 0:
            continue
        lo, hi = float(vals.min()), float(vals.max())
        if lo < -tolerance or hi > size + tolerance:
            worst = lo if -lo > hi - size else hi
            raise GeometryError(f"{what} has {axis} = {worst:g}, outside the image "
                                f"({axis} must be in [0, {size:g}] give or take {tolerance:g} px); "
                                "clip the geometry to the image or check the image size")


def _norm_box(geometry: Any) -> dict[str, float]:
    if isinstance(geometry, dict):
        _check_keys(geometry, _BOX_KEYS, (), "box")
        arr = as_floats([geometry[k] for k in _BOX_KEYS], "box")
    else:
        arr = as_floats(geometry, "box")
        if arr.shape != (4,):
            raise GeometryError(f"box has shape {arr.shape}; expected a dict with {list(_BOX_KEYS)} "
                                "or 4 numbers [x0, y0, x1, y1]")
    x0, y0, x1, y1 = (float(v) for v in arr)
    if x1 < x0 or y1 < y0:
        raise GeometryError(f"box is inverted (x0={x0:g}, y0={y0:g}, x1={x1:g}, y1={y1:g}); expected "
                            "x0 <= x1 and y0 <= y1 in XYXY order (convert XYWH with x1 = x0 + w)")
    return {"x0": x0, "y0": y0, "x1": x1, "y1": y1}


def _norm_part(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GeometryError(f"{what} must be a dict with 'points' (and optional 'holes'); "
                            f"got {_show(value)}")
    _check_keys(value, ("points",), ("holes",), what)
    out: dict[str, Any] = {"points": _ring(value["points"], f"{what} points").tolist()}
    holes = value.get("holes")
    if holes is None:
        holes = []
    if isinstance(holes, (str, bytes, dict)) or not hasattr(holes, "__len__"):
        raise GeometryError(f"{what} holes must be a list of rings; got {_show(holes)}")
    if len(holes):
        out["holes"] = [_ring(h, f"{what} hole {i}").tolist() for i, h in enumerate(holes)]
    return out


def _norm_polygon(geometry: Any) -> dict[str, Any]:
    if not isinstance(geometry, dict):
        return {"points": _ring(geometry, "polygon").tolist()}
    if "parts" in geometry:
        _check_keys(geometry, ("parts",), (), "polygon")
        parts = geometry["parts"]
        if isinstance(parts, (str, bytes, dict)) or not hasattr(parts, "__len__") or len(parts) == 0:
            raise GeometryError(f"polygon parts must be a non-empty list of {{'points', 'holes'}} dicts; "
                                f"got {_show(parts)}")
        normed = [_norm_part(p, f"polygon part {i}") for i, p in enumerate(parts)]
        _check_count(sum(len(p["points"]) + sum(map(len, p.get("holes", []))) for p in normed), "polygon")
        return normed[0] if len(normed) == 1 else {"parts": normed}
    out = _norm_part(geometry, "polygon")
    _check_count(len(out["points"]) + sum(map(len, out.get("holes", []))), "polygon")
    return out


def _norm_ellipse(geometry: Any) -> dict[str, float]:
    if not isinstance(geometry, dict):
        raise GeometryError(f"ellipse must be a dict with {list(_ELLIPSE_KEYS) + ['angle']}; "
                            f"got {_show(geometry)}")
    angles = [k for k in _ANGLE_KEYS if k in geometry]
    if len(angles) > 1:
        raise GeometryError(f"ellipse has keys {list(geometry)}; expected at most one of "
                            f"{list(_ANGLE_KEYS)} (degrees; omitted means 0, axis-aligned)")
    _check_keys(geometry, _ELLIPSE_KEYS + tuple(angles), (), "ellipse")
    cx, cy, rx, ry, angle = (float(v) for v in as_floats(
        [geometry[k] for k in _ELLIPSE_KEYS] + [geometry[angles[0]] if angles else 0.0], "ellipse"))
    if rx < 0 or ry < 0:
        raise GeometryError(f"ellipse has a negative radius (rx={rx:g}, ry={ry:g}); expected "
                            "semi-axes >= 0 (the direction goes in angle)")
    return {"cx": cx, "cy": cy, "rx": rx, "ry": ry, "angle": angle}


def _norm_point(geometry: Any) -> dict[str, Any]:
    if isinstance(geometry, dict):
        _check_keys(geometry, ("points",), (), "point")
        geometry = geometry["points"]
    if isinstance(geometry, (list, tuple)) and geometry and isinstance(geometry[0], (list, tuple)):
        _check_count(len(geometry), "point")
    arr = as_floats(geometry, "point")
    _check_count(arr.size // 2, "point")
    if arr.shape == (2,):
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) == 0:
        raise GeometryError(f"point has shape {arr.shape}; expected [x, y] or (P, 2) pairs "
                            "[[x, y], ...] with P >= 1")
    return {"points": arr.tolist()}


def _size(value: Any) -> tuple[int, int]:
    ok = (not isinstance(value, (str, bytes, dict)) and hasattr(value, "__len__") and len(value) == 2
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                  and float(v) == math.trunc(v) and float(v) >= 0 for v in value))
    if not ok:
        raise GeometryError(f"mask size is {_show(value)}; expected [H, W], two integers >= 0")
    return int(value[0]), int(value[1])


def _norm_mask(geometry: Any) -> dict[str, Any]:
    if not isinstance(geometry, dict):
        arr = np.asarray(geometry) if not isinstance(geometry, (str, bytes)) else None
        if arr is None or arr.ndim != 2 or arr.dtype.kind not in "biuf":
            raise GeometryError(f"mask must be an (H, W) bool array or an RLE dict "
                                f"{{'size': [H, W], 'counts': ...}}; got {_show(geometry)}")
        if arr.dtype.kind != "b" and not np.isin(arr, (0, 1)).all():
            raise GeometryError(f"mask array has values other than 0 and 1 (e.g. "
                                f"{arr[~np.isin(arr, (0, 1))].flat[0]!r}); pass a bool array such as "
                                "mask > 0")
        from .rle import encode_rle

        return encode_rle(arr.astype(bool))
    _check_keys(geometry, ("size", "counts"), (), "mask RLE")
    h, w = _size(geometry["size"])
    counts = geometry["counts"]
    if isinstance(counts, bytes):
        try:
            counts = counts.decode("ascii")
        except UnicodeDecodeError:
            raise GeometryError("mask RLE counts are not ASCII bytes; expected COCO compressed RLE") from None
    if isinstance(counts, str):
        runs = counts_from_string(counts)
        if runs is None:
            raise GeometryError(f"mask RLE counts {_show(counts)} is not a valid COCO compressed RLE "
                                "string; re-encode the mask with labkit.geometry.encode_rle")
    elif isinstance(counts, (list, tuple, np.ndarray)):
        runs = [int(v) for v in counts if isinstance(v, numbers.Integral) and not isinstance(v, bool)
                and int(v) >= 0]
        if len(runs) != len(counts):
            raise GeometryError(f"mask RLE counts must be non-negative integers; got {_show(counts)}")
    else:
        raise GeometryError(f"mask RLE counts must be a str, bytes or list of run lengths; "
                            f"got {_show(counts)}")
    if sum(runs) != h * w:
        raise GeometryError(f"mask RLE runs cover {sum(runs)} pixels but size {[h, w]} has {h * w}; "
                            "the counts do not belong to this size")
    return {"size": [h, w], "counts": string_from_counts(runs, h, w)}


_NORMALISERS = {"box": _norm_box, "polygon": _norm_polygon, "ellipse": _norm_ellipse,
                "point": _norm_point, "mask": _norm_mask}


def check_kind(kind: Any) -> str:
    """``kind`` if it is one of :data:`KINDS`, else :class:`GeometryError` with the closest match.

    Examples
    --------
    >>> check_kind("box")
    'box'
    >>> try:
    ...     check_kind("polygn")
    ... except GeometryError as exc:
    ...     print(str(exc).split("; ")[-1])
    did you mean 'polygon'?
    """
    if kind not in KINDS:
        close = difflib.get_close_matches(str(kind), KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise GeometryError(f"unknown geometry kind {kind!r}; expected one of {list(KINDS)}{hint}")
    return kind


def normalize_geometry(kind: str, geometry: Any, *, width: float | None = None,
                       height: float | None = None, tolerance: float = 1.0) -> Any:
    """Validate ``geometry`` of a ``kind`` and return its canonical JSON form.

    Parameters
    ----------
    kind : {"label", "box", "polygon", "ellipse", "point", "mask"}
    geometry : dict, sequence, ndarray or None
        Canonical form or a shorthand listed in ``docs/data-model.md``: a box as 4
        numbers XYXY; a polygon as an ndarray of shape (P, 2), a list of pairs or a
        flat ``[x0, y0, x1, y1, ...]`` list; an ellipse with ``rotate``/``rotation``
        for ``angle``; a point as ``[x, y]`` or shape (P, 2); a mask as a bool
        ndarray of shape (H, W) or RLE with bytes or list counts.
    width, height : float, optional
        Image size. When given, coordinates must lie in ``[0, width] x [0, height]``
        within ``tolerance`` pixels (an ellipse by its extent), and a mask's size
        must be ``[height, width]``.
    tolerance : float, default 1.0
        Pixels a coordinate may stray outside the image.

    Returns
    -------
    dict or None
        Canonical geometry made of plain Python ``float``/``int``/``str``/``list``
        (JSON-serialisable); ``None`` for ``"label"``.

    Raises
    ------
    GeometryError
        Wrong structure, non-finite numbers, a ring with fewer than 3 points, an
        inverted box, a negative radius, a mask of the wrong size or coordinates
        outside the image. Zero areas, self-intersections and empty masks pass.

    Examples
    --------
    >>> normalize_geometry("box", [10, 20, 30, 40])
    {'x0': 10.0, 'y0': 20.0, 'x1': 30.0, 'y1': 40.0}
    >>> normalize_geometry("polygon", [0, 0, 4, 0, 4, 3])
    {'points': [[0.0, 0.0], [4.0, 0.0], [4.0, 3.0]]}
    >>> normalize_geometry("ellipse", {"cx": 5, "cy": 5, "rx": 3, "ry": 2, "rotation": 30})
    {'cx': 5.0, 'cy': 5.0, 'rx': 3.0, 'ry': 2.0, 'angle': 30.0}
    >>> normalize_geometry("point", [5, 4], width=2, height=10)
    Traceback (most recent call last):
    ...
    labkit.geometry.validate.GeometryError: point has x = 5, outside the image (x must be in [0, 2] give or take
    1 px); clip the geometry to the image or check the image size
    """
    check_kind(kind)
    if kind == "label":
        if geometry is not None:
            raise GeometryError(f'label geometry must be None (an image-level class); got {_show(geometry)}. '
                                'Use kind="box", "polygon", ... for localised objects')
        return None
    for name, size in (("width", width), ("height", height)):
        if size is not None and not (isinstance(size, numbers.Real) and math.isfinite(size) and size >= 0):
            raise GeometryError(f"image {name} is {size!r}; expected a finite number >= 0 or None")
    try:
        out = _NORMALISERS[kind](geometry)
    except OverflowError as exc:  # a 400-digit number, an RLE run beyond 32 bits
        raise GeometryError(f"{kind} geometry holds a number too large to be a pixel coordinate or count "
                            f"({exc}); got {_show(geometry)}") from None
    if kind == "mask":
        h, w = out["size"]
        if (height is not None and h != height) or (width is not None and w != width):
            raise GeometryError(f"mask has size [H, W] = {[h, w]} but the image is "
                                f"[{height}, {width}]; expected the image's size (masks are stored "
                                "full-image, not cropped to the box)")
    elif width is not None or height is not None:
        if kind in ("box", "ellipse"):
            x0, y0, x1, y1 = geometry_bounds(kind, out)
            xs, ys = np.array([x0, x1]), np.array([y0, y1])
        else:
            pts = (np.concatenate([r for ext, holes in polygon_parts(out) for r in (ext, *holes)])
                   if kind == "polygon" else np.asarray(out["points"]))
            xs, ys = pts[:, 0], pts[:, 1]
        _check_inside(xs, ys, kind, width, height, float(tolerance))
    return out


def polygon_parts(polygon: dict[str, Any]) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """``[(exterior (P, 2), [hole (Q, 2), ...]), ...]`` of a canonical polygon (not validated)."""
    parts = polygon["parts"] if "parts" in polygon else [polygon]
    return [(np.asarray(p["points"], dtype=np.float64),
             [np.asarray(h, dtype=np.float64) for h in p.get("holes", [])]) for p in parts]


def ellipse_half_extent(rx: float, ry: float, angle: float = 0.0) -> tuple[float, float]:
    """Half width and half height of the axis-aligned box around a rotated ellipse.

    Parameters
    ----------
    rx, ry : float
        Semi-axes before rotation.
    angle : float, default 0.0
        Rotation in degrees (the canonical ellipse's ``angle``).

    Returns
    -------
    (float, float)
        ``(hx, hy)``: the ellipse spans ``cx - hx .. cx + hx`` and ``cy - hy .. cy + hy``.

    Examples
    --------
    >>> ellipse_half_extent(4, 2, 90)
    (2.0, 4.0)
    """
    t = math.radians(angle)
    c, s = math.cos(t), math.sin(t)
    return math.hypot(rx * c, ry * s), math.hypot(rx * s, ry * c)


def geometry_bounds(kind: str, geometry: Any, *, validate: bool = True) -> tuple[float, float, float, float]:
    """Axis-aligned bounds ``(x0, y0, x1, y1)`` of a geometry.

    Parameters
    ----------
    kind : {"box", "polygon", "ellipse", "point", "mask"}
    geometry : any form accepted by :func:`normalize_geometry`
    validate : bool, default True
        Normalise (and so validate) ``geometry`` first. ``False`` takes it as stored
        in canonical form without checks, so shapes that validation rejects (an
        inverted box, a ring of fewer than 3 points) still have bounds: what the
        integrity checks of :mod:`labkit.quality.integrity` measure. Malformed input
        then raises ``KeyError``, ``TypeError`` or ``ValueError``.

    Returns
    -------
    tuple of 4 floats
        Tight bounds (a polygon's from its exterior rings); a rotated ellipse's exact
        extent (:func:`ellipse_half_extent`); a mask's bounds in pixel edges (``x1`` is
        one past the last column).

    Raises
    ------
    ValueError
        For ``"label"`` (no geometry) or an empty mask.

    Examples
    --------
    >>> geometry_bounds("ellipse", {"cx": 10, "cy": 10, "rx": 4, "ry": 2, "angle": 90})
    (8.0, 6.0, 12.0, 14.0)
    >>> geometry_bounds("box", {"x0": 5, "y0": 5, "x1": 2, "y1": 9}, validate=False)
    (5.0, 5.0, 2.0, 9.0)
    """
    if validate:
        geometry = normalize_geometry(kind, geometry)
    else:
        check_kind(kind)
    if kind == "label":
        raise GeometryError('kind "label" has no geometry and so no bounds')
    if kind == "box":
        x0, y0, x1, y1 = (float(geometry[k]) for k in _BOX_KEYS)
        return x0, y0, x1, y1
    if kind == "ellipse":
        cx, cy, rx, ry = (float(geometry[k]) for k in _ELLIPSE_KEYS)
        hx, hy = ellipse_half_extent(rx, ry, float(geometry.get("angle", 0.0)))
        return cx - hx, cy - hy, cx + hx, cy + hy
    if kind == "mask":
        from .rle import rle_to_box

        b = rle_to_box(geometry)
        return b["x0"], b["y0"], b["x1"], b["y1"]
    if kind == "polygon":
        parts = geometry["parts"] if "parts" in geometry else [geometry]
        pts = np.concatenate([np.asarray(p["points"], dtype=np.float64).reshape(-1, 2) for p in parts])
    else:
        pts = np.asarray(geometry["points"], dtype=np.float64).reshape(-1, 2)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])
