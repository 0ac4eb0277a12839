"""Evidence thumbnails: small JPEG crops with the object outlined, embedded as data URIs.

A finding that names an annotation is shown cropped around the object (with some
context) and outlined; an image-level finding shows the whole image. Thumbnails are
base64 JPEGs inside the HTML, so the report stays one offline file.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from labkit.reports._html import esc

OUTLINE = (230, 30, 60)
SECOND = (20, 110, 230)


def _outline_points(kind: str, geometry: Any) -> list[np.ndarray]:
    """Closed outlines (lists of (P, 2) arrays) in pixel coordinates; [] when there is nothing to draw."""
    g = geometry
    try:
        if kind == "box":
            x0, y0, x1, y1 = (float(g[k]) for k in ("x0", "y0", "x1", "y1"))
            return [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])]
        if kind == "polygon":
            parts = g["parts"] if "parts" in g else [g]
            out = []
            for p in parts:
                ring = np.asarray(p["points"], float).reshape(-1, 2)
                out.append(np.vstack([ring, ring[:1]]))
            return out
        if kind == "ellipse":
            t = np.linspace(0, 2 * np.pi, 65)
            a = np.radians(float(g.get("angle", 0.0)))
            rx, ry = max(float(g["rx"]), 0.5), max(float(g["ry"]), 0.5)
            x, y = rx * np.cos(t), ry * np.sin(t)
            return [np.c_[g["cx"] + x * np.cos(a) - y * np.sin(a), g["cy"] + x * np.sin(a) + y * np.cos(a)]]
        if kind == "point":
            return [np.asarray(g["points"], float).reshape(-1, 2)]
        if kind == "mask":
            from labkit.geometry import decode_rle, mask_to_polygon

            m = decode_rle(g)
            if not m.any():
                return []
            poly = mask_to_polygon(m)
            parts = poly["parts"] if "parts" in poly else [poly]
            return [np.vstack([np.asarray(p["points"], float), np.asarray(p["points"], float)[:1]])
                    for p in parts]
    except (KeyError, TypeError, ValueError):
        return []
    return []


def thumbnail(image: np.ndarray, objects: Sequence[tuple[str, Any]] = (), *, size: int = 160,
              context: float = 0.6, quality: int = 80) -> str:
    """A JPEG data URI of ``image`` (H, W, 3 uint8), cropped around ``objects`` and outlined.

    Parameters
    ----------
    objects : sequence of (kind, geometry)
        Drawn in red (the first) and blue (the others); the crop covers them all plus
        ``context`` times their size on each side. No objects: the whole image.
    size : int
        Longest side of the thumbnail in pixels (small images are enlarged, pixelated).
    """
    from PIL import Image, ImageDraw

    img = np.asarray(image)
    h, w = img.shape[:2]
    outlines = [(i, pts) for i, (kind, g) in enumerate(objects) for pts in _outline_points(kind, g)]
    if outlines:
        allpts = np.vstack([p for _, p in outlines])
        x0, y0 = allpts.min(0)
        x1, y1 = allpts.max(0)
        side = max(x1 - x0, y1 - y0, 0.4 * min(w, h), 8)  # a square-ish crop, never a sliver
        pad_x = max((x1 - x0) * context, (side - (x1 - x0)) / 2)
        pad_y = max((y1 - y0) * context, (side - (y1 - y0)) / 2)
        cx0, cy0 = int(max(0, np.floor(x0 - pad_x))), int(max(0, np.floor(y0 - pad_y)))
        cx1, cy1 = int(min(w, np.ceil(x1 + pad_x))), int(min(h, np.ceil(y1 + pad_y)))
        if cx1 - cx0 < 2 or cy1 - cy0 < 2:
            cx0, cy0, cx1, cy1 = 0, 0, w, h
    else:
        cx0, cy0, cx1, cy1 = 0, 0, w, h
    crop = Image.fromarray(np.ascontiguousarray(img[cy0:cy1, cx0:cx1, :3]).astype(np.uint8))
    scale = size / max(crop.size)
    new = (max(1, round(crop.size[0] * scale)), max(1, round(crop.size[1] * scale)))
    crop = crop.resize(new, Image.Resampling.NEAREST if scale > 2 else Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(crop)
    width = max(2, round(size / 80))
    for i, pts in outlines:
        xy = [((x - cx0) * scale, (y - cy0) * scale) for x, y in pts]
        color = OUTLINE if i == 0 else SECOND
        if len(xy) == 1 or (len(objects) > i and objects[i][0] == "point"):
            for x, y in xy:
                r = width * 2
                draw.ellipse([x - r, y - r, x + r, y + r], outline=color, width=width)
        else:
            draw.line(xy, fill=color, width=width, joint="curve")
    buf = io.BytesIO()
    crop.convert("RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def figure_card(src: str | Sequence[str], caption: str) -> str:
    """A captioned thumbnail (or a pair of them side by side); ``caption`` is HTML."""
    if isinstance(src, str):
        return f'<figure><img alt="evidence" src="{src}"><figcaption>{caption}</figcaption></figure>'
    imgs = "".join(f'<img alt="evidence" src="{s}">' for s in src)
    return f'<figure class="pair"><div class="imgs">{imgs}</div><figcaption>{caption}</figcaption></figure>'


def gallery(cards: Sequence[str], *, empty: str = "") -> str:
    if not cards:
        return f'<p class="sub">{esc(empty)}</p>' if empty else ""
    return '<div class="gallery">' + "".join(cards) + "</div>"


def unreadable_card(image: Any, why: str) -> str:
    return (f'<figure><div style="height:96px;display:flex;align-items:center;justify-content:center;'
            f'background:#f6f8fa;color:#c62828;font-weight:700">no image</div>'
            f'<figcaption><b>image {esc(image)}</b>: {esc(why)}</figcaption></figure>')
