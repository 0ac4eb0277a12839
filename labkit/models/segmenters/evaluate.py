"""Segmentation quality against known masks: composites, simulated clicks, IoU per click.

The protocol of the interactive-segmentation literature (Xu et al. 2016; Sofiiuk et al.
2022): a segmenter gets a box, then up to ``clicks`` corrective clicks, each placed by
:func:`next_click` at the interior point of the largest error region; the IoU with the
true mask is recorded after the box and after every click. :func:`click_protocol` runs
it on a list of :class:`Composite`, :func:`summarize_protocol` condenses its table.

Ground truth comes from :func:`make_composites`: objects whose masks are known exactly
(ellipses, blobs, stars, a cup with a handle, a person-like figure, two-tone blobs and
the horse silhouette of ``skimage.data.horse``), filled with shaded crops of real
photographs from ``skimage.data``, with antialiased and sometimes defocused edges, pasted
onto other real photographs, then given sensor noise and JPEG compression. The true mask
is where the object's coverage of a pixel is at least one half. Two things make them as
hard as the photographs users bring: objects at low contrast are cut from the background
photograph itself, and every other object stands on a *support* made of its own
material (a saucer under a cup), inside the box but not part of the object.

References
----------
Xu, Price, Cohen, Yang & Huang, "Deep interactive object selection", CVPR 2016,
arXiv:1603.04042.
Sofiiuk, Petrov & Konushin, "Reviving iterative training with mask guidance for interactive
segmentation", ICIP 2022, arXiv:2102.06583.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Composite", "make_composites", "next_click", "mask_iou", "click_protocol", "summarize_protocol",
           "SHAPES", "CONTRASTS"]

SHAPES = ("ellipse", "blob", "star", "horse", "cup", "figure", "twotone")
"""Object shapes of :func:`make_composites`, in the order they cycle through."""
CONTRASTS = ("high", "medium", "low")
"""Object-background contrast levels, cycled through: ``high``, a texture from another
photograph as it is; ``medium``, its mean colour moved to the surrounding background's
plus a CIELAB offset of 30; ``low``, a texture from the background photograph itself,
moved to the surrounding mean plus an offset of 12 with the surrounding colour spread.
The second part of a two-part object (the figure's head, a two-tone blob's other half)
always has high contrast, as a face above a suit does."""
_LAB_OFFSET = {"medium": 30.0, "low": 12.0}
_BACKGROUNDS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle", "camera")
_TEXTURES = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "immunohistochemistry",
             "grass", "gravel", "brick")
_SIZES = (120, 200, 320, 460, 600)  # long side of the object, pixels
_RULES = ("area", "distance")


@dataclass(frozen=True, eq=False)
class Composite:
    """One benchmark image: ``image (H, W, 3)`` uint8 RGB, its true ``mask (H, W)`` bool, the
    annotator's ``box`` (XYXY pixels: the tight box grown by 0-6% per side) and ``meta``
    (shape, contrast, support, background and texture photographs, size, blur)."""

    id: str
    image: np.ndarray
    mask: np.ndarray
    box: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def make_composites(n: int = 48, *, seed: int = 0, height: int = 768, width: int = 1024) -> list[Composite]:
    """``n`` composites with known masks; the same arguments give the same images.

    Shapes cycle through :data:`SHAPES`, contrasts through :data:`CONTRASTS`, and every
    odd-numbered object stands on a support (7, 3 and 2 are coprime, so 42 consecutive
    composites hold every combination once); background photo, object size (120-600 px
    long side, at most 70% of the image's short side), texture, shading, defocus, position
    and the box's slack (0-6% of the object's size per side) are drawn from ``seed``.

    Parameters
    ----------
    n : int
        Number of composites.
    seed : int
        Seed of everything drawn at random.
    height, width : int
        Image size, at least 128 x 128.

    Returns
    -------
    list of Composite
        Ids ``"<index>-<shape>-<contrast>[-support]"``.

    Examples
    --------
    >>> c = make_composites(2, height=240, width=320)
    >>> [x.id for x in c], c[0].image.shape, c[0].mask.dtype
    (['000-ellipse-high', '001-blob-medium-support'], (240, 320, 3), dtype('bool'))
    >>> bool(c[1].mask.any()) and np.array_equal(make_composites(2, height=240, width=320)[1].image, c[1].image)
    True
    """
    if n < 1 or height < 128 or width < 128:
        raise ValueError(f"need n >= 1 and an image of at least 128 x 128 pixels, got n={n} and "
                         f"{width} x {height}")
    return [_composite(i, seed, height, width) for i in range(n)]


def mask_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.count_nonzero(pred | truth)
    return 1.0 if union == 0 else float(np.count_nonzero(pred & truth) / union)


def next_click(pred: np.ndarray, truth: np.ndarray, *, rule: str = "area") -> tuple[int, int, int] | None:
    """The next simulated corrective click ``(x, y, label)``, or None when ``pred == truth``.

    The errors are split into 8-connected regions of false negatives (missed object) and
    false positives (background taken). ``rule="area"`` picks the largest region by pixel
    count; ``rule="distance"`` the one reaching furthest from its border, as in RITM's
    evaluation code. The click goes to the region's interior point: the maximum of its
    Euclidean distance transform, the image border counting as region border; ties go
    to the first pixel in raster order, and between regions to false negatives. A
    click on a false negative is positive (label 1), on a false positive negative (0).

    Examples
    --------
    >>> truth = np.zeros((12, 12), bool); truth[2:11, 2:11] = True
    >>> pred = truth.copy(); pred[4:9, 6:11] = False            # a 5 x 5 square missed
    >>> next_click(pred, truth)                                 # its centre
    (8, 6, 1)
    >>> pred = truth.copy(); pred[0:2, :] = True                # two rows taken: 24 pixels
    >>> next_click(pred, truth)                                 # ties: first in raster order
    (0, 0, 0)
    """
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape or pred.ndim != 2:
        raise ValueError(f"pred has shape {pred.shape} and truth {truth.shape}; expected two equal (H, W) masks")
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {', '.join(_RULES)}; got {rule!r}")
    import cv2
    from scipy import ndimage

    regions = []  # (area, label, labelled image, component index, its stats)
    for label, err in ((1, truth & ~pred), (0, pred & ~truth)):
        if err.any():
            count, parts, stats, _ = cv2.connectedComponentsWithStats(err.view(np.uint8), connectivity=8)
            regions += [(int(stats[r, cv2.CC_STAT_AREA]), label, parts, r, stats[r]) for r in range(1, count)]
    if not regions:
        return None
    if rule == "area":  # the first largest: false negatives come first
        regions = [max(regions, key=lambda reg: reg[0])]
    clicks = []  # (depth, x, y, label) per region
    for _, label, parts, r, (x, y, w, h, _) in regions:
        # the padding is background: outside the region's tight box no pixel is in it, and
        # at the image's edge the border counts as the region's border
        dist = ndimage.distance_transform_edt(np.pad(parts[y:y + h, x:x + w] == r, 1))[1:-1, 1:-1]
        flat = int(np.argmax(dist))
        clicks.append((float(dist.flat[flat]), int(x) + flat % int(w), int(y) + flat // int(w), label))
    _, cx, cy, label = max(clicks, key=lambda click: click[0])  # the first deepest
    return cx, cy, label


def click_protocol(segmenter: Any, samples: Iterable[Composite], *, clicks: int = 5,
                   rule: str = "area") -> Any:
    """Box then ``clicks`` corrective clicks on every sample: IoU and seconds per update.

    Every update calls ``segmenter.predict(box=..., points=<all clicks so far>,
    point_labels=..., multimask=True)`` and keeps the mask with the highest score, as the
    labeling widget does. ``set_image`` is timed separately (``set_image_s``).

    Returns
    -------
    pandas.DataFrame
        One row per sample, indexed by ``sample`` (the composite's id), with columns
        ``iou_0`` (box only) to ``iou_<clicks>`` and ``s_0`` to ``s_<clicks>`` (seconds
        per ``predict``), then ``set_image_s``. Once a mask is exact, later clicks are not
        made and their IoU stays 1.0 (their seconds are NaN).
    """
    import pandas as pd

    if clicks < 0:
        raise ValueError(f"clicks must be >= 0, got {clicks}")
    rows, ids = [], []
    for sample in samples:
        t = time.perf_counter()
        segmenter.set_image(sample.image)
        set_s = time.perf_counter() - t
        points: list[tuple[int, int]] = []
        labels: list[int] = []
        ious, secs = [], []
        pred = np.zeros_like(sample.mask)
        for k in range(clicks + 1):
            if k > 0:
                click = next_click(pred, sample.mask, rule=rule)
                if click is None:
                    ious.append(1.0)
                    secs.append(np.nan)
                    continue
                points.append(click[:2])
                labels.append(click[2])
            t = time.perf_counter()
            masks, scores = segmenter.predict(box=sample.box, points=np.array(points, float) if points else None,
                                              point_labels=np.array(labels) if points else None, multimask=True)
            secs.append(time.perf_counter() - t)
            pred = np.asarray(masks[int(np.argmax(scores))], bool)
            ious.append(mask_iou(pred, sample.mask))
        rows.append(ious + secs + [set_s])
        ids.append(sample.id)
    columns = [f"iou_{k}" for k in range(clicks + 1)] + [f"s_{k}" for k in range(clicks + 1)] + ["set_image_s"]
    return pd.DataFrame(rows, index=pd.Index(ids, name="sample"), columns=columns)


def summarize_protocol(table: Any, *, at: Sequence[int] = (1, 3, 5), noc_iou: float = 0.9) -> Any:
    """One line of figures from a :func:`click_protocol` table (a ``pandas.Series``).

    ``n``: samples; ``box_median``/``box_mean``: IoU of the box-only masks; ``clicks_<k>``:
    mean IoU after ``k`` clicks; ``noc<90>``: mean number of clicks to reach ``noc_iou``
    IoU, a sample that never does counting as the most clicks made (NoC, Xu et al. 2016);
    ``s_p50``/``s_p95``: seconds per update over all updates; ``set_image_s``: median
    seconds of ``set_image`` (SAM's image encoder).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"iou_0": [0.5, 0.95], "iou_1": [0.92, 0.96], "s_0": [0.1, 0.3],
    ...                   "s_1": [0.2, 0.4], "set_image_s": [0.0, 0.0]})
    >>> s = summarize_protocol(t, at=(1,))
    >>> s[["box_median", "clicks_1", "noc90", "s_p95"]].round(3).tolist()
    [0.725, 0.94, 0.5, 0.385]
    """
    import pandas as pd

    ious = table.filter(regex=r"^iou_\d+$").to_numpy()
    n_clicks = ious.shape[1] - 1
    if any(k > n_clicks or k < 1 for k in at):
        raise ValueError(f"the table has 0-{n_clicks} clicks; cannot report after {list(at)} clicks")
    reached = ious >= noc_iou
    noc = np.where(reached.any(1), reached.argmax(1), n_clicks)
    secs = table.filter(regex=r"^s_\d+$").to_numpy().ravel()
    secs = secs[np.isfinite(secs)]
    out = {"n": len(table), "box_median": float(np.median(ious[:, 0])), "box_mean": float(ious[:, 0].mean())}
    out.update({f"clicks_{k}": float(ious[:, k].mean()) for k in at})
    out[f"noc{round(noc_iou * 100)}"] = float(noc.mean())
    out["s_p50"] = float(np.percentile(secs, 50)) if secs.size else np.nan
    out["s_p95"] = float(np.percentile(secs, 95)) if secs.size else np.nan
    out["set_image_s"] = float(table["set_image_s"].median())
    return pd.Series(out, name="summary")


# ------------------------------------------------------------------ composites --
@functools.cache
def _photo(name: str) -> np.ndarray:
    """A ``skimage.data`` photograph as RGB uint8 (grey ones repeated into three channels)."""
    from skimage import data

    img = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3])
    img.flags.writeable = False
    return img


def _cover(img: np.ndarray, h: int, w: int, rng: np.random.Generator, zoom: float) -> np.ndarray:
    """A random ``(h, w)`` window of ``img`` scaled to cover it, times ``zoom``."""
    import cv2

    s = max(h / img.shape[0], w / img.shape[1]) * zoom
    big = cv2.resize(img, (max(w, round(img.shape[1] * s)), max(h, round(img.shape[0] * s))),
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y = int(rng.integers(0, big.shape[0] - h + 1))
    x = int(rng.integers(0, big.shape[1] - w + 1))
    return big[y:y + h, x:x + w]


def _radial(rng: np.random.Generator, size: int, harmonics: dict[int, float]) -> np.ndarray:
    """A filled star-shaped polygon r(t) = 1 + sum a_k cos(k t + phi_k) on a ``size`` canvas."""
    import cv2

    t = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    r = np.ones_like(t)
    for k, a in harmonics.items():
        r += a * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    r /= r.max()
    pts = np.stack([size / 2 + 0.49 * size * r * np.cos(t), size / 2 + 0.49 * size * r * np.sin(t)], 1)
    canvas = np.zeros((size, size), np.uint8)
    cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return canvas


def _shape(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Part labels (0 background, 1 main part, 2 second part) on a canvas about 1024 px wide."""
    import cv2

    S = 1024
    if kind == "ellipse":
        canvas = np.zeros((S, S), np.uint8)
        cv2.ellipse(canvas, (S // 2, S // 2), (S // 2 - 2, int((S // 2 - 2) * rng.uniform(0.45, 1.0))),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
        return canvas
    if kind in ("blob", "twotone"):
        canvas = _radial(rng, S, {k: rng.uniform(0, 0.45 / k) for k in range(2, 6)})
        if kind == "twotone":
            yy, xx = np.mgrid[0:S, 0:S]
            a = rng.uniform(0, np.pi)
            side = (xx - S / 2) * np.cos(a) + (yy - S / 2) * np.sin(a) > rng.uniform(-0.15, 0.15) * S
            canvas[(canvas == 1) & side] = 2
        return canvas
    if kind == "star":
        k = int(rng.integers(4, 7))
        return _radial(rng, S, {k: rng.uniform(0.3, 0.45), 2: rng.uniform(0, 0.1)})
    if kind == "horse":
        from skimage import data

        horse = ~data.horse()
        ys, xs = np.nonzero(horse)
        horse = horse[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)
        if rng.random() < 0.5:
            horse = horse[:, ::-1]
        f = S / max(horse.shape)
        big = cv2.resize(horse, (round(horse.shape[1] * f), round(horse.shape[0] * f)), interpolation=cv2.INTER_LINEAR)
        return (cv2.GaussianBlur(big, (0, 0), 2.0) >= 0.5).astype(np.uint8)
    if kind == "cup":
        canvas = np.zeros((S, S), np.uint8)
        bw = int(S * rng.uniform(0.5, 0.62))
        cv2.rectangle(canvas, (40, 80), (40 + bw, S - 40), 1, -1)
        cv2.ellipse(canvas, (40 + bw // 2, S - 40), (bw // 2, 36), 0, 0, 180, 1, -1)  # rounded bottom
        hy, hr = int(S * rng.uniform(0.4, 0.55)), int(S * rng.uniform(0.16, 0.22))
        cv2.ellipse(canvas, (40 + bw, hy), (hr, int(hr * 1.2)), 0, -90, 90, 1, thickness=int(hr * 0.4))
        return canvas
    if kind == "figure":  # a person-like shape: head (second part), torso, arms, legs
        canvas = np.zeros((S, S), np.uint8)
        c = S // 2
        cv2.rectangle(canvas, (c - 150, 250), (c + 150, 640), 1, -1)
        for side in (-1, 1):
            angle = rng.uniform(0.1, 0.9)
            hand = (int(c + side * (150 + 260 * np.sin(angle))), int(270 + 260 * np.cos(angle)))
            cv2.line(canvas, (c + side * 130, 280), hand, 1, 70)
            cv2.line(canvas, (c + side * 80, 600), (c + side * int(rng.uniform(90, 200)), S - 40), 1, 90)
        cv2.circle(canvas, (c, 150), 105, 2, -1)
        return canvas
    raise ValueError(f"unknown shape {kind!r}; expected one of {', '.join(SHAPES)}")


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _from_lab(lab: np.ndarray) -> np.ndarray:
    import cv2

    lab = lab.astype(np.float32)
    lab[..., 0] = np.clip(lab[..., 0], 0, 100)
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB) * 255.0, 0, 255)


def _texture(name: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A crop of a real photograph, grey ones tinted; float32 RGB in [0, 255]."""
    tex = _cover(_photo(name), h, w, rng, rng.uniform(1.0, 2.0)).astype(np.float32)
    if name in ("grass", "gravel", "brick"):
        tint = rng.uniform(0.35, 1.0, 3)
        tex = tex * (tint / tint.max() * 1.25)
    return np.clip(tex, 0, 255)


def _recolour(tex: np.ndarray, where: np.ndarray, around: np.ndarray, offset: np.ndarray,
              match_spread: bool) -> np.ndarray:
    """``tex`` with its mean CIELAB colour (over ``where``) moved to ``around``'s mean plus ``offset``."""
    lab, ref = _to_lab(tex), _to_lab(around.reshape(-1, 1, 3)).reshape(-1, 3)
    mean = lab[where].mean(0)
    spread = ref.std(0) / np.maximum(lab[where].std(0), 1e-3) if match_spread else 1.0
    return _from_lab((lab - mean) * spread + ref.mean(0) + offset)


def _ellipse_alpha(H: int, W: int, centre: tuple[float, float], axes: tuple[float, float]) -> np.ndarray:
    """Coverage in [0, 1] of an axis-aligned ellipse, antialiased over one pixel."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r = np.sqrt(((xx - centre[0]) / axes[0]) ** 2 + ((yy - centre[1]) / axes[1]) ** 2)
    return np.clip((1 - r) * min(axes) + 0.5, 0, 1)


def _composite(i: int, seed: int, H: int, W: int) -> Composite:
    import cv2

    rng = np.random.default_rng([seed, i])
    kind, contrast, support = SHAPES[i % len(SHAPES)], CONTRASTS[i % len(CONTRASTS)], i % 2 == 1
    bg_name = str(rng.choice(_BACKGROUNDS))
    bg = _cover(_photo(bg_name), H, W, rng, rng.uniform(1.0, 1.3)).astype(np.float32)
    parts_hr = _shape(kind, rng)
    ys, xs = np.nonzero(parts_hr)
    parts_hr = parts_hr[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    long_side = min(rng.choice(_SIZES) * rng.uniform(0.9, 1.1), 0.7 * min(H, W))
    f = long_side / max(parts_hr.shape)
    oh, ow = max(8, round(parts_hr.shape[0] * f)), max(8, round(parts_hr.shape[1] * f))
    alpha = cv2.resize((parts_hr > 0).astype(np.float32), (ow, oh), interpolation=cv2.INTER_AREA)
    parts = cv2.resize(parts_hr, (ow, oh), interpolation=cv2.INTER_NEAREST)
    y0 = int(rng.integers(8, H - oh - 7 - (oh // 5 if support else 0)))
    x0 = int(rng.integers(8, W - ow - 7))
    inside = alpha >= 0.5
    around = bg[y0:y0 + oh, x0:x0 + ow][~inside]

    obj = np.zeros((oh, ow, 3), np.float32)
    names: list[str] = []
    main: tuple[str, np.ndarray | None, np.ndarray | None] | None = None  # part 1: texture, recolouring
    for part in (1, 2):
        where = parts == part
        if not where.any():
            continue
        if part == 1 and contrast == "low":  # camouflage: another part of the background photo
            name = bg_name
        else:
            name = str(rng.choice([t for t in _TEXTURES if t != bg_name]))
        tex = _texture(name, rng, oh, ow)
        if part == 1 and contrast != "high":
            offset = rng.normal(size=3) * [0.5, 1, 1]  # light changes less than hue in real scenes
            offset *= _LAB_OFFSET[contrast] / np.linalg.norm(offset)
            tex = _recolour(tex, where, around, offset, match_spread=contrast == "low")
            main = (name, around, offset)
        elif part == 1:
            main = (name, None, None)
        names.append(name)
        obj[where] = tex[where]
    yy, xx = np.mgrid[0:oh, 0:ow].astype(np.float32)  # shading: a linear light gradient
    a, g = rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.5)
    obj = np.clip(obj * (1 + g * ((xx - ow / 2) * np.cos(a) + (yy - oh / 2) * np.sin(a)) / max(oh, ow))[..., None],
                  0, 255)

    if support and main is not None:
        # a support under the object made of the same stuff, a little darker (a saucer under a
        # cup, a table under a hand): inside the box, not part of the object
        sw, sh = ow * rng.uniform(0.7, 1.1), oh * rng.uniform(0.12, 0.2)
        centre = (x0 + ow * rng.uniform(0.3, 0.7), y0 + oh * rng.uniform(0.9, 1.0))
        s_alpha = _ellipse_alpha(H, W, centre, (sw, sh))
        name, ref, shift = main
        tex = _texture(name, rng, H, W)
        if ref is not None and shift is not None:
            tex = _recolour(tex, s_alpha > 0.5, ref, shift, match_spread=contrast == "low")
        tex *= rng.uniform(0.75, 0.9)
        bg = bg * (1 - s_alpha[..., None]) + tex * s_alpha[..., None]

    full_alpha = np.zeros((H, W), np.float32)
    full_alpha[y0:y0 + oh, x0:x0 + ow] = alpha
    truth = full_alpha >= 0.5
    blur = float(rng.choice([0.0, 0.0, 0.8, 1.6]))  # defocus: the edge softens, the mask does not move
    soft = cv2.GaussianBlur(full_alpha, (0, 0), blur) if blur else full_alpha
    obj_full = np.zeros_like(bg)
    obj_full[y0:y0 + oh, x0:x0 + ow] = obj
    if blur:  # spread the object's colours a few pixels outward, so a blurred edge blends real colours
        obj_full = np.where(full_alpha[..., None] > 0, obj_full, cv2.dilate(obj_full, np.ones((7, 7), np.uint8)))
    img = bg * (1 - soft[..., None]) + obj_full * soft[..., None]
    img = np.clip(img + rng.normal(0, 2.5, img.shape), 0, 255).astype(np.uint8)
    _, jpg = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    decoded: Any = cv2.imdecode(jpg, cv2.IMREAD_COLOR)
    img = np.ascontiguousarray(decoded[..., ::-1])

    rows, cols = np.nonzero(truth)
    bx0, by0, bx1, by1 = cols.min(), rows.min(), cols.max() + 1.0, rows.max() + 1.0
    grow = rng.uniform(0, 0.06, 4) * np.array([bx1 - bx0, by1 - by0] * 2)
    box = np.clip([bx0 - grow[0], by0 - grow[1], bx1 + grow[2], by1 + grow[3]], 0, [W, H, W, H]).round(1)
    meta = {"shape": kind, "contrast": contrast, "support": support, "background": bg_name,
            "texture": "+".join(names), "size": int(max(oh, ow)), "blur": blur}
    tag = "-support" if support else ""
    return Composite(f"{i:03d}-{kind}-{contrast}{tag}", img, truth, box.astype(np.float64), meta)
