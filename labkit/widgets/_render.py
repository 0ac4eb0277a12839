"""Draw an image with its objects, the pending prompts and the mask candidate (PIL)."""
from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]
CANDIDATE = (0, 229, 255)  # the pending mask, in cyan: distinct from every class colour


def rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def class_colour(classes: list[str], label: str) -> tuple[int, int, int]:
    return rgb(PALETTE[classes.index(label) % len(PALETTE)] if label in classes else "#7f7f7f")


def _blend(out: np.ndarray, mask: np.ndarray, colour, alpha: float) -> None:
    out[mask] = (out[mask] * (1 - alpha) + np.asarray(colour, float) * alpha).astype(np.uint8)


def _edge(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def compose(image: np.ndarray, objects: Iterable[dict[str, Any]] = (), *, classes: Sequence[str] = (),
            candidate: np.ndarray | None = None, prompts: Iterable[dict] = (), selected: int | None = None,
            fmt: str = "jpeg", fit: int | None = None) -> bytes:
    """Encode ``image`` with overlays as JPEG/PNG bytes.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8
    objects : iterable of dict
        Rows with ``id``, ``kind``, ``label``, ``geometry`` (canonical), drawn in class
        colours, or in ``colour`` (RGB tuple) when a row has one.
    candidate : ndarray of shape (H, W), bool, optional
        The pending mask, drawn in cyan.
    prompts : iterable of dict
        ``{"box": [...]}`` or ``{"point": [x, y], "label": 0|1}`` (green object / red background).
    selected : int, optional
        Object id to emphasise.
    fit : int, optional
        Resize so the longer side is ``fit`` pixels (thumbnails, small images); masks are
        blended before, outlines and prompts drawn after, at the new scale. A whole-number
        enlargement keeps every pixel a sharp square (nearest neighbour).
    """
    from PIL import Image, ImageDraw

    from labkit.geometry import decode_rle, ellipse_to_polygon

    out = np.array(image, dtype=np.uint8, copy=True)
    objects = list(objects)
    for o in objects:  # masks first, as translucent fills with an outline
        if o["kind"] == "mask":
            m = decode_rle(o["geometry"])
            c = o.get("colour") or class_colour(list(classes), o["label"])
            _blend(out, m, c, 0.55 if o.get("id") == selected else 0.35)
            out[_edge(m)] = c
    if candidate is not None:
        _blend(out, candidate, CANDIDATE, 0.45)
        out[_edge(candidate)] = CANDIDATE
    im = Image.fromarray(out)
    if fit and max(im.size) != fit:  # thumbnails: resize first, then draw outlines at the new scale
        f = fit / max(im.size)
        im = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))),
                       Image.Resampling.NEAREST if f > 1 else Image.Resampling.BILINEAR)  # enlarge small images crisply
        objects = [_scaled(o, f) for o in objects]
        prompts = [{"box": [v * f for v in p["box"]]} if "box" in p
                   else {**p, "point": [v * f for v in p["point"]]} for p in prompts]
    d = ImageDraw.Draw(im)
    w = max(1, round(max(im.size) / 400))
    for o in objects:
        c = o.get("colour") or class_colour(list(classes), o["label"])
        width = 2 * w if o.get("id") == selected else w
        g = o["geometry"]
        if o["kind"] == "box":
            d.rectangle([g["x0"], g["y0"], g["x1"], g["y1"]], outline=c, width=width)
        elif o["kind"] in ("polygon", "ellipse"):
            poly = ellipse_to_polygon(g) if o["kind"] == "ellipse" else g
            for part in poly.get("parts", [poly]):
                for ring in [part["points"], *part.get("holes", [])]:
                    d.line([tuple(p) for p in ring] + [tuple(ring[0])], fill=c, width=width)
        elif o["kind"] == "point":
            for x, y in g["points"]:
                r = 3 * w
                d.ellipse([x - r, y - r, x + r, y + r], outline=c, width=width)
                d.line([x - 2 * r, y, x + 2 * r, y], fill=c, width=w)
                d.line([x, y - 2 * r, x, y + 2 * r], fill=c, width=w)
    for p in prompts:
        if "box" in p:
            d.rectangle(p["box"], outline=CANDIDATE, width=w)
        else:
            x, y = p["point"]
            r = 4 * w
            d.ellipse([x - r, y - r, x + r, y + r], fill=(40, 200, 60) if p["label"] else (230, 40, 40),
                      outline="white", width=w)
    buf = io.BytesIO()
    if fmt == "png":
        im.save(buf, format="PNG", compress_level=1)
    else:
        im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _scaled(o: dict, f: float) -> dict:
    """An object's vector geometry scaled by ``f`` (masks are already blended in)."""
    g, k = o["geometry"], o["kind"]
    if k == "box":
        g = {key: v * f for key, v in g.items()}
    elif k == "ellipse":
        g = {**g, "cx": g["cx"] * f, "cy": g["cy"] * f, "rx": g["rx"] * f, "ry": g["ry"] * f}
    elif k in ("polygon", "point"):
        sc = lambda ring: [[x * f, y * f] for x, y in ring]  # noqa: E731
        if "parts" in g:
            g = {"parts": [{"points": sc(p["points"]),
                            **({"holes": [sc(h) for h in p["holes"]]} if p.get("holes") else {})}
                           for p in g["parts"]]}
        else:
            g = {"points": sc(g["points"]), **({"holes": [sc(h) for h in g["holes"]]} if g.get("holes") else {})}
    return {**o, "geometry": g}
