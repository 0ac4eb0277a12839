"""Find faces with OpenCV's shipped Haar cascades and blur them beyond re-detection.

The detector is the one that ships inside ``opencv-python-headless`` (no download):
the frontal-face cascade, plus the profile cascade run on the image and on its mirror
(it only knows faces turned one way). A missed face is the failure that matters here,
so the three passes are united rather than intersected; a false alarm only blurs a
patch of background.

References
----------
P. Viola and M. Jones, "Rapid object detection using a boosted cascade of simple
features", CVPR 2001. R. Lienhart and J. Maydt, "An extended set of Haar-like features
for rapid object detection", ICIP 2002 (the cascades OpenCV ships).
"""
from __future__ import annotations

import threading

import numpy as np

from labkit._util.opencv import opencv

CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml")


_local = threading.local()


def _cascade(name: str):
    """One classifier per thread: OpenCV's CascadeClassifier is not safe to share between threads."""
    cv2 = opencv()

    cache = _local.__dict__.setdefault("cascades", {})
    if name not in cache:
        path = cv2.data.haarcascades + name
        c = cv2.CascadeClassifier(path)
        if c.empty():
            raise FileNotFoundError(f"OpenCV's face detector {path} is missing or unreadable; reinstall "
                                    "opencv-python-headless (it ships the Haar cascades)")
        cache[name] = c
    return cache[name]


def _gray(image: np.ndarray) -> np.ndarray:
    cv2 = opencv()

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"expected an (H, W, 3) RGB or (H, W) gray uint8 image, got {image.dtype} "
                         f"of shape {image.shape}")
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    return cv2.equalizeHist(image)


def detect_faces(image: np.ndarray, *, min_size: int | None = None, scale_factor: float = 1.1,
                 min_neighbors: int = 5, profiles: bool = True, max_side: int = 1600) -> np.ndarray:
    """Faces in an image, as boxes.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3) or (H, W), uint8
        RGB or gray.
    min_size : int, optional
        Smallest face side in pixels (default: 2% of the shorter image side, at least 20).
    scale_factor, min_neighbors : float, int
        OpenCV's ``detectMultiScale`` settings; a lower ``min_neighbors`` finds more
        faces and more false alarms.
    profiles : bool
        Also run the profile cascade on the image and its mirror.
    max_side : int
        Larger images are searched at this size (faster) and boxes scaled back.

    Returns
    -------
    ndarray of shape (F, 4), int
        XYXY pixel boxes, overlapping detections merged.

    Examples
    --------
    >>> detect_faces(np.full((64, 64, 3), 128, np.uint8)).shape
    (0, 4)
    """
    gray = _gray(image)
    h, w = gray.shape
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        cv2 = opencv()

        gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    side = min_size if min_size is not None else max(20, round(0.02 * min(gray.shape)))
    side = max(1, round(side * scale)) if min_size is not None else side
    found = []
    passes = [(CASCADES[0], False)] + ([(CASCADES[1], False), (CASCADES[1], True)] if profiles else [])
    for name, mirror in passes:
        g = gray[:, ::-1] if mirror else gray
        boxes = _cascade(name).detectMultiScale(np.ascontiguousarray(g), scaleFactor=scale_factor,
                                                minNeighbors=min_neighbors, minSize=(side, side))
        for x, y, bw, bh in np.reshape(boxes, (-1, 4)):
            if mirror:
                x = g.shape[1] - x - bw
            found.append([x, y, x + bw, y + bh])
    if not found:
        return np.zeros((0, 4), int)
    return np.round(_merge(np.asarray(found, float)) / scale).astype(int)


def _merge(boxes: np.ndarray, iou: float = 0.3) -> np.ndarray:
    """Unite boxes that overlap (the same face seen by several passes) into their hull."""
    from labkit.geometry import box_iou

    boxes = boxes.copy()
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        m = box_iou(boxes, boxes)
        np.fill_diagonal(m, 0)
        i, j = np.unravel_index(np.argmax(m), m.shape)
        if m[i, j] > iou:
            hull = np.r_[np.minimum(boxes[i, :2], boxes[j, :2]), np.maximum(boxes[i, 2:], boxes[j, 2:])]
            boxes = np.vstack([np.delete(boxes, [i, j], axis=0), hull])
            merged = True
    return boxes


def blur_regions(image: np.ndarray, boxes: np.ndarray, *, margin: float = 0.25, blocks: int = 6) -> np.ndarray:
    """A copy of ``image`` with each box (grown by ``margin`` of its size) obscured for good.

    Each region is pixelated to ``blocks`` cells across and then smoothed: the
    averaging destroys the detail a face detector or a person would need, and nothing
    of it can be restored from the result. Pixels outside the regions are unchanged.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3) or (H, W), uint8
    boxes : array-like of shape (F, 4)
        XYXY pixel boxes.
    margin : float
        Grow each box by this fraction of its width/height on every side (hair, ears,
        chin are identifying too).
    blocks : int
        Cells across the region after pixelation.
    """
    cv2 = opencv()

    out = np.array(image, copy=True)
    h, w = out.shape[:2]
    boxes = np.reshape(np.asarray(boxes, float), (-1, 4))
    bad = [b.tolist() for b in boxes if not (b[2] > b[0] and b[3] > b[1]) or b[0] >= w or b[1] >= h
           or b[2] <= 0 or b[3] <= 0]
    if bad:  # a silently skipped box would leave a face visible
        raise ValueError(f"boxes {bad[:5]} are empty or outside the {w}x{h} image; boxes are XYXY pixels "
                         "(x0, y0, x1, y1), not XYWH")
    for x0, y0, x1, y1 in boxes:
        mx, my = margin * (x1 - x0), margin * (y1 - y0)
        a0, b0 = int(max(0, np.floor(x0 - mx))), int(max(0, np.floor(y0 - my)))
        a1, b1 = int(min(w, np.ceil(x1 + mx))), int(min(h, np.ceil(y1 + my)))
        if a1 <= a0 or b1 <= b0:
            continue
        region = out[b0:b1, a0:a1]
        rw, rh = a1 - a0, b1 - b0
        small = cv2.resize(region, (max(1, min(blocks, rw)), max(1, min(blocks, rh))), interpolation=cv2.INTER_AREA)
        coarse = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_NEAREST)
        k = max(3, (min(rw, rh) // blocks) | 1)
        out[b0:b1, a0:a1] = cv2.GaussianBlur(coarse, (k, k), 0)
    return out


#: ``min_neighbors`` when anonymising: recall first (``benchmarks/bench_faces.py``: 0.99 of
#: real LFW faces found at 3, 0.97 at the detector's default of 5).
ANONYMIZE_MIN_NEIGHBORS = 3


def anonymize_image(image: np.ndarray, **detect_options) -> tuple[np.ndarray, np.ndarray]:
    """``(image with every detected face blurred, the (F, 4) boxes found)``.

    Detection favours recall (``min_neighbors=3`` unless given): a missed face leaks,
    a false alarm only blurs a patch. See ``benchmarks/bench_faces.py`` for both rates.
    """
    detect_options.setdefault("min_neighbors", ANONYMIZE_MIN_NEIGHBORS)
    boxes = detect_faces(image, **detect_options)
    return (blur_regions(image, boxes) if len(boxes) else np.array(image, copy=True)), boxes
