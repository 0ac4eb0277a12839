"""``GrabCutSegmenter``: OpenCV's GrabCut on the box, the segmenter that needs no weights.

GrabCut at full resolution takes ~13 s on a 1024 x 768 image on two CPU cores; on the
box crop (plus a margin of background) downscaled to at most ``work_size`` pixels on
its long side it takes ~0.1-0.2 s. The mask is computed there and upsampled (bilinear,
threshold 0.5) back into the full image; nothing outside the box is ever foreground.

References
----------
Rother, Kolmogorov & Blake, "GrabCut: interactive foreground extraction using iterated
graph cuts", ACM TOG 23(3), 2004, doi:10.1145/1015706.1015720.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from labkit.models.segmenters.base import Segmenter, check_image, check_prompts


class GrabCutSegmenter(Segmenter):
    """Box (plus optional seed points) to mask with OpenCV's GrabCut.

    Inside the box every pixel starts as "probably object", the margin around it as
    "definitely background"; positive points become definite object and negative points
    definite background (discs of ``seed_radius`` pixels). Only one mask is returned
    (``multimask`` is ignored), with score 1.0: GrabCut has no quality estimate.

    Parameters
    ----------
    iterations : int
        GrabCut iterations.
    work_size : int
        Long side, in pixels, of the downscaled crop GrabCut runs on.
    margin : float
        Background margin around the box, as a fraction of the box's size (at least 8 px).
    seed_radius : int
        Radius in full-resolution pixels of the seed discs drawn for points.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((120, 160, 3), np.uint8); img[30:90, 40:120] = (200, 40, 40)
    >>> seg = GrabCutSegmenter()
    >>> seg.set_image(img)
    >>> masks, scores = seg.predict(box=[30, 20, 130, 100])
    >>> masks.shape, scores.tolist(), int(masks[0].sum())
    ((1, 120, 160), [1.0], 4800)
    """

    name = "grabcut"

    def __init__(self, *, iterations: int = 5, work_size: int = 256, margin: float = 0.1,
                 seed_radius: int = 3, **_ignored: Any):
        import cv2

        if iterations < 1 or work_size < 16:
            raise ValueError(f"need iterations >= 1 and work_size >= 16, got {iterations}, {work_size}")
        self.iterations = int(iterations)
        self.work_size = int(work_size)
        self.margin = float(margin)
        self.seed_radius = int(seed_radius)
        self.model_id = (f"grabcut-cv{cv2.__version__}-it{self.iterations}-ws{self.work_size}"
                         f"-m{self.margin:g}-r{self.seed_radius}")
        self.image: np.ndarray | None = None
        self.key: str | None = None

    def set_image(self, image: np.ndarray, *, key: str | None = None) -> None:
        self.image = check_image(image)
        self.key = key

    def predict(self, *, box: Any = None, points: Any = None, point_labels: Any = None,
                multimask: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``masks`` of shape ``(1, H, W)`` bool and ``scores`` ``[1.0]``; a box is required."""
        box, points, labels = check_prompts(box, points, point_labels)
        if self.image is None:
            raise RuntimeError("no image is set: call set_image(image) before predict(...)")
        if box is None:
            raise ValueError("GrabCut needs a box around the object; points only refine it "
                             "(use a SAM segmenter for point-only prompts)")
        mask = self._grabcut(self.image, box, points, labels)
        return mask[None], np.ones(1, np.float32)

    def _grabcut(self, image: np.ndarray, box: np.ndarray, points, labels) -> np.ndarray:
        import cv2

        H, W = image.shape[:2]
        out = np.zeros((H, W), bool)
        x0, y0, x1, y1 = np.clip(box, 0, [W, H, W, H])
        if x1 - x0 < 2 or y1 - y0 < 2:
            return out  # a box under two pixels holds no object worth a graph cut
        m = max(8.0, self.margin * max(x1 - x0, y1 - y0))
        cx0, cy0 = int(max(0, np.floor(x0 - m))), int(max(0, np.floor(y0 - m)))
        cx1, cy1 = int(min(W, np.ceil(x1 + m))), int(min(H, np.ceil(y1 + m)))
        crop = image[cy0:cy1, cx0:cx1]
        s = min(1.0, self.work_size / max(crop.shape[:2]))
        sw, sh = max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))
        small = cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA) if s < 1 else crop
        small = np.ascontiguousarray(small[..., ::-1])  # OpenCV works in BGR
        seeds = np.full((sh, sw), cv2.GC_BGD, np.uint8)
        bx0, by0 = int(np.floor((x0 - cx0) * s)), int(np.floor((y0 - cy0) * s))
        bx1, by1 = int(np.ceil((x1 - cx0) * s)), int(np.ceil((y1 - cy0) * s))
        seeds[by0:by1, bx0:bx1] = cv2.GC_PR_FGD
        if points is not None:
            r = max(1, round(self.seed_radius * s))
            for (px, py), lab in zip(points, labels):
                centre = (int((px - cx0) * s), int((py - cy0) * s))
                cv2.circle(seeds, centre, r, int(cv2.GC_FGD if lab == 1 else cv2.GC_BGD), -1)
        if not (seeds == cv2.GC_BGD).any():
            seeds[0, :] = seeds[-1, :] = seeds[:, 0] = seeds[:, -1] = cv2.GC_BGD  # box fills the image
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # GrabCut's GMM initialisation is random: make masks reproducible
        try:
            cv2.grabCut(small, seeds, None, bgd, fgd, self.iterations,  # type: ignore[call-overload]
                        cv2.GC_INIT_WITH_MASK)  # rect is None: unused when initialising from the mask
        except cv2.error:  # e.g. no foreground or background samples in a degenerate crop
            return out
        fg = ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).astype(np.float32)
        if s < 1:
            fg = cv2.resize(fg, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)
        region = fg >= 0.5
        # nothing outside the box is object
        ix0, iy0 = int(np.floor(x0)) - cx0, int(np.floor(y0)) - cy0
        ix1, iy1 = int(np.ceil(x1)) - cx0, int(np.ceil(y1)) - cy0
        inside = np.zeros_like(region)
        inside[iy0:iy1, ix0:ix1] = True
        out[cy0:cy1, cx0:cx1] = region & inside
        return out
