"""Geometry helpers the format modules share: canonical dicts and thin wrappers
around ``labkit.geometry``."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from labkit.formats._base import Problems
from labkit.geometry.rle import decode_rle, encode_rle

# --- canonical constructors -------------------------------------------------

def box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"x0": float(x0), "y0": float(y0), "x1": float(x1), "y1": float(y1)}


def polygon(rings: list[list[list[float]]]) -> dict[str, Any]:
    """Canonical polygon from one or more outer rings (no holes)."""
    parts = [{"points": [[float(x), float(y)] for x, y in r]} for r in rings]
    return parts[0] if len(parts) == 1 else {"parts": parts}


def points(pts: list[list[float]]) -> dict[str, Any]:
    return {"points": [[float(x), float(y)] for x, y in pts]}


def ellipse(cx: float, cy: float, rx: float, ry: float, angle: float) -> dict[str, Any]:
    return {"cx": float(cx), "cy": float(cy), "rx": float(rx), "ry": float(ry), "angle": float(angle)}


def parts_of(geometry: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``{"points", "holes"?}`` parts of a canonical polygon, single or multi-part."""
    return list(geometry["parts"]) if "parts" in geometry else [geometry]


# --- conversions (labkit.geometry does the work) -------------------------------

def canonical(pr: Problems, kind: str, geometry: Any, where: str) -> dict[str, Any] | None:
    """``normalize_geometry`` as the last check of a reader: a GeometryError becomes a problem.

    Returns the canonical geometry, or None after recording the problem (and for labels).
    """
    from labkit.geometry import GeometryError, normalize_geometry

    try:
        return normalize_geometry(kind, geometry)
    except GeometryError as exc:
        pr.add(where, str(exc))
        return None
    except (OverflowError, ValueError) as exc:  # numbers too large for a float or pycocotools' uint32
        pr.add(where, f"{kind} geometry has a number out of range: {exc}")
        return None


def shoelace(ring: list[list[float]]) -> float:
    a = np.asarray(ring, float)
    x, y = a[:, 0], a[:, 1]
    # np.roll(v, -1) without its overhead (the same values, so the same dot products)
    return float(abs(np.dot(x, np.concatenate((y[1:], y[:1]))) - np.dot(y, np.concatenate((x[1:], x[:1])))) / 2)


def ellipse_polygon(g: dict[str, Any], n: int = 64) -> list[list[float]]:
    """``n`` vertices on the ellipse."""
    from labkit.geometry import ellipse_to_polygon

    return ellipse_to_polygon(g, n=n)["points"]


def rotated_rect(x: float, y: float, w: float, h: float, angle: float,
                 *, about: str) -> list[list[float]]:
    """Corners of a ``w x h`` rectangle at ``(x, y)`` turned ``angle`` degrees (+x toward +y).

    ``about="corner"`` turns it about its top-left corner (Label Studio),
    ``about="center"`` about its centre (CVAT).
    """
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    local = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    ox, oy = (x, y) if about == "corner" else (x + w / 2, y + h / 2)
    if about != "corner":
        local = [(px - w / 2, py - h / 2) for px, py in local]
    return [[ox + px * c - py * s, oy + px * s + py * c] for px, py in local]


def bounds(kind: str, g: dict[str, Any]) -> tuple[float, float, float, float]:
    """Axis-aligned ``(x0, y0, x1, y1)``; ValueError for an empty mask."""
    from labkit.geometry import geometry_bounds

    return geometry_bounds(kind, g)


def to_bytes_rle(g: dict[str, Any]) -> dict[str, Any]:
    return {"size": list(g["size"]), "counts": g["counts"].encode("ascii")}


def outer_rings(g: dict[str, Any]) -> list[list[list[float]]]:
    """Exterior rings of a mask's pixel-edge outline, largest area first (holes dropped)."""
    from labkit.geometry import mask_to_polygon

    mask = decode_rle(g)
    if not mask.any():
        return []
    rings = [p["points"] for p in parts_of(mask_to_polygon(mask))]
    return sorted(rings, key=lambda r: -shoelace(r))


def mask_from(g: dict[str, Any]) -> np.ndarray:
    return decode_rle(g)


def mask_geometry(mask: np.ndarray) -> dict[str, Any]:
    return encode_rle(mask)


def plain(v: float) -> int | float:
    """An integral float as int (for formats whose files write ``12`` not ``12.0``)."""
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f
