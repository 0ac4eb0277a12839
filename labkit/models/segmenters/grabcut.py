"""``GrabCutSegmenter``: box and clicks to a mask with GrabCut and a marker watershed, no weights.

Everything runs on the box crop (plus a background margin) downscaled to at most
``work_size`` pixels on its long side: GrabCut at full resolution takes ~13 s on a
1024 x 768 image on two cores, on such a crop 0.1-0.3 s. The mask is upsampled (bilinear,
threshold 0.5) into the full image; nothing outside the box is ever object.

1. **Box.** GrabCut (Rother et al. 2004) with the margin as definite background and the
   box as probable object. The result keeps its connected parts of at least a tenth of
   the largest one, and fills holes under 1% of its area.
2. **Each click edits the mask before it.** The mask of the box and the first ``k - 1``
   clicks is cached, so click ``k`` costs one step:

   - a disc around the click (1.5% of the box diagonal, the pixels of the click's colour)
     becomes definite object (positive click) or background (negative), for every later
     click too;
   - GrabCut re-runs from the previous mask as probable labels, with the region of the
     click's colour around it relabelled, so the colour models learn what the click says;
   - a marker watershed on the colour gradient (Meyer 1994) grows the click up to the
     strongest edges within reach (three times the click's distance to the other label),
     for regions whose colour GrabCut cannot tell from the background. A positive click
     adds what either GrabCut or the watershed adds; a negative one removes only what
     both remove;
   - only the connected change around the click is kept: a positive click only adds to
     the mask, a negative one only removes, and the rest of the mask stays as it was.

The same prompts give the same mask, whatever was asked before (``cv2.setRNGSeed``, and
a cache miss recomputes the chain of clicks in their order). Quality against known masks:
``benchmarks/bench_segmentation_quality.py``.

References
----------
Rother, Kolmogorov & Blake, "GrabCut: interactive foreground extraction using iterated
graph cuts", ACM TOG 23(3), 2004, doi:10.1145/1015706.1015720.
Meyer, "Topographic distance and watershed lines", Signal Processing 38(1), 1994,
doi:10.1016/0165-1684(94)90060-4.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.models.segmenters.base import Segmenter, check_image, check_prompts

_Click = tuple[float, float, int]
_CROPS_KEPT, _MASKS_KEPT = 8, 128  # boxes and (box, clicks) results cached per image
_KEEP_PART = 0.1  # a connected part smaller than this fraction of the largest is dropped
_HOLE = 0.01  # holes smaller than this fraction of the mask are filled
_REACH = 3.0  # a click reaches this many times its distance to the other label


@dataclass
class _Crop:
    """The box's working crop: ``x0:x1, y0:y1`` of the image, scaled by ``s``."""

    x0: int
    y0: int
    x1: int
    y1: int
    s: float
    bgr: np.ndarray  # (h, w, 3) uint8, what cv2.grabCut takes
    lab: np.ndarray  # (h, w, 3) float32 CIELAB, lightly smoothed
    inbox: np.ndarray  # (h, w) bool, the box at working scale
    inbox_full: tuple[int, int, int, int]  # the box in full-resolution crop pixels: y0, y1, x0, x1
    diag: float  # the box's diagonal at working scale
    gradient: np.ndarray | None = None  # colour gradient magnitude, made on first use


class GrabCutSegmenter(Segmenter):
    """Box (plus optional clicks) to mask with GrabCut; see the module docstring.

    Only one mask is returned (``multimask`` is ignored), with score 1.0: GrabCut has no
    quality estimate. A box is required; clicks outside it change nothing.

    Parameters
    ----------
    iterations : int
        GrabCut iterations for the box.
    click_iterations : int
        GrabCut iterations for each click.
    work_size : int
        Long side, in pixels, of the downscaled crop everything runs on.
    margin : float
        Background margin around the box, as a fraction of the box's size (at least 8 px).
    seed_radius : float
        Radius of a click's definite disc, as a fraction of the box diagonal.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((120, 160, 3), np.uint8); img[30:90, 40:120] = (200, 40, 40)
    >>> seg = GrabCutSegmenter()
    >>> seg.set_image(img)
    >>> masks, scores = seg.predict(box=[30, 20, 130, 100])
    >>> masks.shape, scores.tolist(), int(masks[0].sum())
    ((1, 120, 160), [1.0], 4800)
    >>> masks, _ = seg.predict(box=[30, 20, 130, 100], points=[[80, 60]], point_labels=[0])
    >>> bool(masks[0, 60, 80]), int(masks[0].sum()) < 4800  # a negative click removes around it
    (False, True)
    """

    name = "grabcut"

    def __init__(self, *, iterations: int = 3, click_iterations: int = 2, work_size: int = 256,
                 margin: float = 0.1, seed_radius: float = 0.015, **_ignored: Any):
        import cv2

        if iterations < 1 or click_iterations < 1 or work_size < 16:
            raise ValueError(f"need iterations >= 1, click_iterations >= 1 and work_size >= 16, got "
                             f"{iterations}, {click_iterations}, {work_size}")
        if not (margin >= 0 and 0 < seed_radius < 0.5):
            raise ValueError(f"need margin >= 0 and 0 < seed_radius < 0.5, got {margin}, {seed_radius}")
        self.iterations = int(iterations)
        self.click_iterations = int(click_iterations)
        self.work_size = int(work_size)
        self.margin = float(margin)
        self.seed_radius = float(seed_radius)
        # "grabcut2": the box-and-click-edit algorithm; masks of the plain GrabCut differ
        self.model_id = (f"grabcut2-cv{cv2.__version__}-it{self.iterations}-{self.click_iterations}"
                         f"-ws{self.work_size}-m{self.margin:g}-r{self.seed_radius:g}")
        self.image: np.ndarray | None = None
        self.key: str | None = None
        self._lock = threading.Lock()
        self._crops: OrderedDict[tuple[float, ...], _Crop] = OrderedDict()
        self._masks: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def set_image(self, image: np.ndarray, *, key: str | None = None) -> None:
        image = check_image(image)
        with self._lock:
            self.image, self.key = image, key
            self._crops.clear()
            self._masks.clear()

    def predict(self, *, box: Any = None, points: Any = None, point_labels: Any = None,
                multimask: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``masks`` of shape ``(1, H, W)`` bool and ``scores`` ``[1.0]``; a box is required."""
        box, points, labels = check_prompts(box, points, point_labels)
        with self._lock:
            if self.image is None:
                raise RuntimeError("no image is set: call set_image(image) before predict(...)")
            if box is None:
                raise ValueError("GrabCut needs a box around the object; points only refine it "
                                 "(use a SAM segmenter for point-only prompts)")
            H, W = self.image.shape[:2]
            out = np.zeros((H, W), bool)
            x0, y0, x1, y1 = (float(v) for v in np.clip(box, 0, [W, H, W, H]))
            if x1 - x0 < 2 or y1 - y0 < 2:
                return out[None], np.ones(1, np.float32)  # under two pixels: no object worth a graph cut
            crop = self._crop(self.image, (x0, y0, x1, y1))
            clicks: tuple[_Click, ...] = () if points is None or labels is None else tuple(
                (float(x), float(y), int(lab)) for (x, y), lab in zip(points, labels))
            small = self._mask((x0, y0, x1, y1), crop, clicks)
            out[crop.y0:crop.y1, crop.x0:crop.x1] = _upsample(crop, small)
        return out[None], np.ones(1, np.float32)

    # ------------------------------------------------------------------ caches --
    def _crop(self, image: np.ndarray, box: tuple[float, float, float, float]) -> _Crop:
        crop = self._crops.get(box)
        if crop is None:
            crop = _make_crop(image, box, margin=self.margin, work_size=self.work_size)
            self._crops[box] = crop
            if len(self._crops) > _CROPS_KEPT:
                self._crops.popitem(last=False)
        self._crops.move_to_end(box)
        return crop

    def _mask(self, box: tuple[float, ...], crop: _Crop, clicks: tuple[_Click, ...]) -> np.ndarray:
        """The working-scale mask of ``box`` and ``clicks``: the box's, edited click by click."""
        key = (box, clicks)
        fg = self._masks.get(key)
        if fg is None:
            if clicks:
                fg = self._click(crop, self._mask(box, crop, clicks[:-1]), clicks)
            else:
                fg = self._box(crop)
            self._masks[key] = fg
            if len(self._masks) > _MASKS_KEPT:
                self._masks.popitem(last=False)
        self._masks.move_to_end(key)
        return fg

    # ------------------------------------------------------------------- steps --
    def _box(self, crop: _Crop) -> np.ndarray:
        import cv2

        labels = np.where(crop.inbox, cv2.GC_PR_FGD, cv2.GC_BGD).astype(np.uint8)
        fg = _grabcut(crop, labels, self.iterations)
        if fg is None:
            return np.zeros_like(crop.inbox)
        return _fill_holes(_keep_parts(fg, []), np.zeros_like(fg))

    def _click(self, crop: _Crop, prev: np.ndarray, clicks: tuple[_Click, ...]) -> np.ndarray:
        import cv2

        x, y, label = clicks[-1]
        if not _inside(crop, x, y):
            return prev  # outside the box: nothing to add, nothing to remove
        c = _to_crop(crop, x, y)
        hard_fg, hard_bg = self._discs(crop, clicks)
        wrong = ~prev if label == 1 else prev  # what the click says is mislabelled
        dist = cv2.distanceTransform(np.pad(wrong, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        reach = max(3.0, _REACH * float(dist[c[1], c[0]]))

        # GrabCut from the previous mask, the click's colour region relabelled as it says
        labels = np.where(prev, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        labels[_similar(crop, c, wrong, reach)] = cv2.GC_PR_FGD if label == 1 else cv2.GC_PR_BGD
        labels[~crop.inbox] = cv2.GC_BGD
        labels[hard_fg] = cv2.GC_FGD
        labels[hard_bg] = cv2.GC_BGD
        proposal = _grabcut(crop, labels, self.click_iterations)
        if proposal is None:
            proposal = prev
        # the watershed: the click's side floods from the previous mask and the click, the
        # other from everything beyond its reach
        zone = np.zeros(prev.shape, np.uint8)
        cv2.circle(zone, c, int(reach), 1, -1)
        zone_b = zone.astype(bool) & wrong
        markers = np.where(prev, 1, 2).astype(np.int32)
        markers[zone_b] = 0
        markers[~crop.inbox] = 2
        markers[hard_fg] = 1
        markers[hard_bg] = 2
        flooded = _watershed(crop, markers) == 1
        # adding takes either's word; removing needs both (a removal that leaks into the
        # object costs more than an addition that leaks, which the box bounds)
        proposal = (proposal | flooded) if label == 1 else (proposal | flooded) & prev
        proposal = (proposal | hard_fg) & ~hard_bg

        change = (proposal & ~prev) if label == 1 else (prev & ~proposal)
        _, parts = cv2.connectedComponents(change.astype(np.uint8), connectivity=8)
        around = (parts == parts[c[1], c[0]]) if parts[c[1], c[0]] else np.zeros_like(change)
        fg = (prev | around) if label == 1 else (prev & ~around)
        fg = (fg | hard_fg) & ~hard_bg
        positives = [_to_crop(crop, px, py) for px, py, lab in clicks if lab == 1 and _inside(crop, px, py)]
        return _fill_holes(_keep_parts(fg, positives), hard_bg)

    def _discs(self, crop: _Crop, clicks: tuple[_Click, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Definite object and background: a disc of the click's colour per click; later clicks win."""
        import cv2

        hard_fg, hard_bg = np.zeros_like(crop.inbox), np.zeros_like(crop.inbox)
        r = max(1, round(self.seed_radius * crop.diag))
        everywhere = np.ones_like(crop.inbox)
        for x, y, label in clicks:
            if not _inside(crop, x, y):
                continue
            c = _to_crop(crop, x, y)
            disc = np.zeros(crop.inbox.shape, np.uint8)
            cv2.circle(disc, c, r, 1, -1)
            core = disc.astype(bool) & _similar(crop, c, everywhere, 2.0 * r)
            core[c[1], c[0]] = True
            (hard_fg if label == 1 else hard_bg)[core] = True
            (hard_bg if label == 1 else hard_fg)[core] = False
        return hard_fg & crop.inbox, hard_bg


# ---------------------------------------------------------------------- helpers --
def _make_crop(image: np.ndarray, box: tuple[float, float, float, float], *, margin: float,
               work_size: int) -> _Crop:
    import cv2

    H, W = image.shape[:2]
    x0, y0, x1, y1 = box
    m = max(8.0, margin * max(x1 - x0, y1 - y0))
    cx0, cy0 = int(max(0, np.floor(x0 - m))), int(max(0, np.floor(y0 - m)))
    cx1, cy1 = int(min(W, np.ceil(x1 + m))), int(min(H, np.ceil(y1 + m)))
    full = image[cy0:cy1, cx0:cx1]
    s = min(1.0, work_size / max(full.shape[:2]))
    sw, sh = max(1, round(full.shape[1] * s)), max(1, round(full.shape[0] * s))
    small = cv2.resize(full, (sw, sh), interpolation=cv2.INTER_AREA) if s < 1 else full
    lab = cv2.cvtColor(cv2.GaussianBlur(small, (0, 0), 1.0).astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    bx0, by0 = int(np.floor((x0 - cx0) * s)), int(np.floor((y0 - cy0) * s))
    bx1, by1 = int(np.ceil((x1 - cx0) * s)), int(np.ceil((y1 - cy0) * s))
    inbox = np.zeros((sh, sw), bool)
    inbox[by0:by1, bx0:bx1] = True
    return _Crop(cx0, cy0, cx1, cy1, s, np.ascontiguousarray(small[..., ::-1]), lab, inbox,
                 (int(np.floor(y0)) - cy0, int(np.ceil(y1)) - cy0, int(np.floor(x0)) - cx0, int(np.ceil(x1)) - cx0),
                 float(np.hypot(bx1 - bx0, by1 - by0)))


def _inside(crop: _Crop, x: float, y: float) -> bool:
    iy0, iy1, ix0, ix1 = crop.inbox_full
    return ix0 <= x - crop.x0 < ix1 and iy0 <= y - crop.y0 < iy1


def _to_crop(crop: _Crop, x: float, y: float) -> tuple[int, int]:
    h, w = crop.inbox.shape
    return (int(np.clip((x - crop.x0) * crop.s, 0, w - 1)), int(np.clip((y - crop.y0) * crop.s, 0, h - 1)))


def _upsample(crop: _Crop, fg: np.ndarray) -> np.ndarray:
    import cv2

    soft: np.ndarray = fg.astype(np.float32)
    if crop.s < 1:
        soft = cv2.resize(soft, (crop.x1 - crop.x0, crop.y1 - crop.y0), interpolation=cv2.INTER_LINEAR)
    iy0, iy1, ix0, ix1 = crop.inbox_full
    out = np.zeros(soft.shape, bool)
    out[iy0:iy1, ix0:ix1] = soft[iy0:iy1, ix0:ix1] >= 0.5
    return out


def _grabcut(crop: _Crop, labels: np.ndarray, iterations: int) -> np.ndarray | None:
    """GrabCut from ``labels`` (modified in place); the object inside the box, None on failure."""
    import cv2

    background = (labels == cv2.GC_BGD) | (labels == cv2.GC_PR_BGD)
    if background.all():
        return np.zeros(labels.shape, bool)
    if not background.any():  # the box fills the image: its border stands for the background
        labels[0, :] = labels[-1, :] = labels[:, 0] = labels[:, -1] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation is random: make masks reproducible
    try:
        cv2.grabCut(crop.bgr, labels, None, bgd, fgd, iterations,  # type: ignore[call-overload]
                    cv2.GC_INIT_WITH_MASK)  # rect is None: unused when initialising from the mask
    except cv2.error:  # e.g. no foreground or background samples in a degenerate crop
        return None
    return ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)) & crop.inbox


def _watershed(crop: _Crop, markers: np.ndarray) -> np.ndarray:
    import cv2
    from skimage.segmentation import watershed

    if crop.gradient is None:
        gx = cv2.Sobel(crop.lab, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(crop.lab, cv2.CV_32F, 0, 1, ksize=3)
        crop.gradient = np.sqrt((gx ** 2 + gy ** 2).sum(axis=2))
    return watershed(crop.gradient, markers)


def _similar(crop: _Crop, c: tuple[int, int], allowed: np.ndarray, reach: float) -> np.ndarray:
    """The 4-connected region of ``allowed`` pixels around ``c`` within ``reach`` of it whose
    CIELAB colour is within max(6, 2.5 x the spread around ``c``) of the colour at ``c``."""
    import cv2

    x, y = c
    patch = crop.lab[max(0, y - 1):y + 2, max(0, x - 1):x + 2].reshape(-1, 3)
    tol = max(6.0, 2.5 * float(patch.std(axis=0).max()))
    near = (np.linalg.norm(crop.lab - patch.mean(axis=0), axis=2) < tol) & allowed
    disc = np.zeros(near.shape, np.uint8)
    cv2.circle(disc, c, max(2, int(reach)), 1, -1)
    cand = (near & disc.astype(bool)).astype(np.uint8)
    cand[y, x] = 1
    _, parts = cv2.connectedComponents(cand, connectivity=4)
    return parts == parts[y, x]


def _keep_parts(fg: np.ndarray, positives: list[tuple[int, int]]) -> np.ndarray:
    """Connected parts at least ``_KEEP_PART`` of the largest, and those holding a positive click."""
    import cv2

    n, parts, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    if n <= 2:
        return fg
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = set((np.nonzero(areas >= _KEEP_PART * areas.max())[0] + 1).tolist())
    keep.update(int(parts[y, x]) for x, y in positives if parts[y, x])
    return np.isin(parts, sorted(keep))


def _fill_holes(fg: np.ndarray, keep_open: np.ndarray) -> np.ndarray:
    """``fg`` with holes under ``_HOLE`` of its area filled, except those touching ``keep_open``."""
    import cv2

    n, parts, stats, _ = cv2.connectedComponentsWithStats((~fg).astype(np.uint8), connectivity=4)
    h, w = fg.shape
    limit = _HOLE * np.count_nonzero(fg)
    small = [i for i in range(1, n)
             if stats[i, cv2.CC_STAT_AREA] <= limit and stats[i, 0] > 0 and stats[i, 1] > 0
             and stats[i, 0] + stats[i, 2] < w and stats[i, 1] + stats[i, 3] < h]
    if not small:
        return fg
    holes = np.isin(parts, small)
    if keep_open.any():
        holes &= ~np.isin(parts, np.unique(parts[keep_open & holes]))
    return fg | holes
