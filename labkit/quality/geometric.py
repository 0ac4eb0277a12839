"""Geometric agreement: how well annotators' objects on the same image coincide.

For every image (``task``), class (``label``) and pair of annotators, the objects of
the two annotators are matched one-to-one with the Hungarian algorithm
(:func:`scipy.optimize.linear_sum_assignment`): first as many pairs as possible whose
similarity passes the threshold, then the most similar such set. Matched pairs give
the IoU (and Dice), unmatched objects on either side count as disagreement, and
``f1 = 2 matched / (n_a + n_b)`` sums both up (COCO-style detection F1 with either
annotator as the reference; it is symmetric).

Similarity per kind: ``box``, ``polygon``, ``ellipse`` and ``mask`` use IoU from
:mod:`labkit.geometry` (masks on COCO RLE); ``point`` uses the distance between points
divided by the object's size (a match when at most ``max_distance``).
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from labkit._util.checks import check_choice
from labkit.geometry import box_iou, ellipse_iou, mask_iou, polygon_iou

from ._matching import (
    GEOMETRIC_KINDS,
    check_geometry_data,
    check_threshold,
    geometries,
    match_iou,
    match_pairs,
)

__all__ = ["GEOMETRIC_KINDS", "Matches", "match_boxes", "geometric_agreement", "summarize_agreement"]

_BY = ("task", "label", "pair", "worker")


class Matches(NamedTuple):
    """One-to-one matches between two sets of objects.

    Attributes
    ----------
    a, b : ndarray of shape (P,)
        Indices of the matched objects in the first and second set.
    similarity : ndarray of shape (P,)
        IoU of each pair (for points: normalised distance).
    """

    a: np.ndarray
    b: np.ndarray
    similarity: np.ndarray


def match_boxes(a: Any, b: Any, *, iou_threshold: float = 0.5) -> Matches:
    """Match two sets of boxes one-to-one by IoU (Hungarian algorithm).

    Among assignments whose pairs all have IoU >= ``iou_threshold``, the one with the
    most pairs wins, and among those the one with the largest total IoU.

    Parameters
    ----------
    a : ndarray of shape (N, 4) or list of N box dicts
        XYXY boxes.
    b : ndarray of shape (M, 4) or list of M box dicts
    iou_threshold : float, default 0.5
        Pairs below it are never matched (pairs with IoU 0 never are).

    Returns
    -------
    Matches
        Indices into ``a`` and ``b`` and the IoU of each matched pair, ordered by ``a``.

    Examples
    --------
    >>> m = match_boxes([[0, 0, 10, 10], [20, 20, 30, 30]], [[21, 21, 31, 31], [50, 50, 60, 60]])
    >>> m.a.tolist(), m.b.tolist(), m.similarity.round(3).tolist()
    ([1], [0], [0.681])
    """
    check_threshold(iou_threshold, "iou_threshold")
    iou = box_iou(a, b)
    i, j = match_iou(iou, iou_threshold)
    return Matches(i, j, iou[i, j])


# --------------------------------------------------------------------------- input
def _points(geoms: Sequence[Any]) -> list[np.ndarray]:
    out = []
    for g in geoms:
        pts = np.asarray(g["points"] if isinstance(g, dict) else g, dtype=float).reshape(-1, 2)
        out.append(pts)
    return out


def _point_distances(pts: list[np.ndarray], scale: np.ndarray | None) -> np.ndarray:
    """Normalised distance (n, n) between point annotations (mean over corresponding points)."""
    n = len(pts)
    sizes = {len(p) for p in pts}
    if len(sizes) > 1:
        raise ValueError(f"point annotations in one comparison have different numbers of points {sorted(sizes)}; "
                         "corresponding keypoints need the same count")
    arr = np.stack(pts) if n else np.zeros((0, 1, 2))  # (n, P, 2)
    dist = np.linalg.norm(arr[:, None] - arr[None, :], axis=-1).mean(-1)
    if scale is None:
        if arr.shape[1] < 2:
            raise ValueError("single-point annotations have no size to normalise distances by; pass scale= "
                             "(object size in pixels: a number, or the name of a column holding one per "
                             "annotation, e.g. the sqrt of the object's area)")
        ext = arr.max(1) - arr.min(1)
        scale = np.sqrt(np.maximum(ext[:, 0] * ext[:, 1], 0.0))
    s = (scale[:, None] + scale[None, :]) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > 0, dist / np.where(s > 0, s, 1.0), np.where(dist > 0, np.inf, 0.0))


def _similarity(kind: str, geoms: Any, scale: np.ndarray | None) -> np.ndarray:
    """Similarity (n, n) within one group: IoU, or normalised distance for points."""
    if kind == "box":
        return box_iou(geoms, geoms)
    if kind == "mask":
        return mask_iou(list(geoms), list(geoms))
    if kind == "polygon":
        return polygon_iou(geoms, geoms)
    if kind == "ellipse":
        return ellipse_iou(geoms, geoms)
    return _point_distances(_points(geoms), scale)


def _union_iou(masks: list[Any], ia: np.ndarray, ib: np.ndarray) -> float:
    """IoU of the union of masks ``ia`` with the union of masks ``ib`` (pixel agreement)."""
    from pycocotools import mask as mask_utils

    from labkit.geometry import encode_rle, to_coco_rle

    rles = [to_coco_rle(m) if isinstance(m, dict) else to_coco_rle(encode_rle(m)) for m in masks]
    size = rles[0]["size"]
    empty = mask_utils.encode(np.zeros((int(size[0]), int(size[1]), 1), dtype=np.uint8, order="F"))[0]
    ua = mask_utils.merge([rles[i] for i in ia], intersect=False) if len(ia) else empty
    ub = mask_utils.merge([rles[i] for i in ib], intersect=False) if len(ib) else empty
    return float(mask_iou([ua], [ub])[0, 0]) if len(ia) or len(ib) else np.nan


# ----------------------------------------------------------------------- agreement
def geometric_agreement(data: pd.DataFrame, *, kind: str | None = None, iou_threshold: float = 0.5,
                        max_distance: float = 0.5, scale: float | str | None = None,
                        seen: pd.DataFrame | None = None) -> pd.DataFrame:
    """Agreement of every pair of annotators on every image and class, by matching objects.

    Parameters
    ----------
    data : DataFrame
        Long layout with ``task`` (image), ``worker``, ``label`` (class) and ``geometry``
        in the canonical form of its kind (``project.annotations(kind=...)``; boxes may
        come as ``x0 y0 x1 y1`` columns instead). Only rows of ``kind`` are used.
    kind : {"box", "polygon", "ellipse", "mask", "point"}, optional
        Default: the one geometric kind in ``data["kind"]``.
    iou_threshold : float, default 0.5
        Two objects match only if their IoU is at least this.
    max_distance : float, default 0.5
        For points: match when the distance divided by the object size is at most this.
    scale : float or str, optional
        For points, the object size in pixels: one number, or the name of a column with
        one per annotation (the pair uses the mean of the two). Default: for annotations
        of 2+ keypoints, ``sqrt(w * h)`` of their bounding box; single points need it.
    seen : DataFrame with columns ``task``, ``worker``, optional
        Who looked at which image (e.g. finished assignments). An annotator who saw an
        image but drew nothing of a class counts as 0 objects of it, which is
        disagreement. Default: annotators with at least one object of ``kind`` on it.

    Returns
    -------
    DataFrame
        One row per (``task``, ``label``, ``worker_a``, ``worker_b``) with ``worker_a <
        worker_b`` where at least one of the two drew the class: ``n_a``, ``n_b``
        (objects), ``matched``, ``unmatched`` (``n_a + n_b - 2 matched``), ``f1``
        (``2 matched / (n_a + n_b)``) and, except for points, ``mean_iou`` and
        ``mean_dice`` over matched pairs (NaN when nothing matched; Dice of a pair is
        ``2 IoU / (1 + IoU)``). Masks add ``pixel_iou`` and ``pixel_dice``: IoU of the
        union of each annotator's masks of the class. Points add ``mean_distance``
        (normalised) over matched pairs.

    Examples
    --------
    >>> df = pd.DataFrame({"task": [1, 1, 1], "worker": ["a", "a", "b"], "label": ["cat"] * 3,
    ...                    "x0": [0, 20, 1], "y0": [0, 20, 0], "x1": [10, 30, 10], "y1": [10, 30, 10]})
    >>> geometric_agreement(df, kind="box")[["worker_a", "worker_b", "n_a", "n_b", "matched", "f1", "mean_iou"]]
      worker_a worker_b  n_a  n_b  matched        f1  mean_iou
    0        a        b    2    1        1  0.666667       0.9
    """
    data, kind = check_geometry_data(data, kind)
    iou_threshold = check_threshold(iou_threshold, "iou_threshold")
    if not max_distance >= 0:
        raise ValueError(f"max_distance must be >= 0; got {max_distance}")
    scales = _scales(data, kind, scale)
    seen_by = _seen(data, seen)
    for task, workers in data.groupby("task")["worker"]:
        seen_by.setdefault(task, set()).update(workers)
    rows: list[dict[str, Any]] = []
    positions = pd.RangeIndex(len(data))
    groups = pd.Series(positions).groupby([data["task"].to_numpy(), data["label"].to_numpy()], sort=True)
    workers_all = data["worker"].to_numpy()
    geoms_all = geometries(data, kind)
    for (task, label), pos in groups:
        pos = pos.to_numpy()
        geoms = geoms_all[pos] if isinstance(geoms_all, np.ndarray) else [geoms_all[p] for p in pos]
        sim = _similarity(kind, geoms, None if scales is None else scales[pos])
        workers = workers_all[pos]
        names = sorted(seen_by[task], key=str)
        for wa, wb in combinations(names, 2):
            ia, ib = np.nonzero(workers == wa)[0], np.nonzero(workers == wb)[0]
            if len(ia) + len(ib) == 0:
                continue
            rows.append(_pair_row(kind, task, label, wa, wb, ia, ib, sim, geoms, iou_threshold, max_distance))
    return _frame(rows, kind)


def _pair_row(kind, task, label, wa, wb, ia, ib, sim, geoms, iou_threshold, max_distance) -> dict[str, Any]:
    block = sim[np.ix_(ia, ib)]
    if kind == "point":
        i, j = match_pairs(block, block <= max_distance)
    else:
        i, j = match_iou(block, iou_threshold)
    matched = len(i)
    row = {"task": task, "label": label, "worker_a": wa, "worker_b": wb, "n_a": len(ia), "n_b": len(ib),
           "matched": matched, "unmatched": len(ia) + len(ib) - 2 * matched,
           "f1": 2.0 * matched / (len(ia) + len(ib))}
    values = block[i, j]
    if kind == "point":
        row["mean_distance"] = float(values.mean()) if matched else np.nan
        return row
    row["mean_iou"] = float(values.mean()) if matched else np.nan
    row["mean_dice"] = float((2 * values / (1 + values)).mean()) if matched else np.nan
    if kind == "mask":
        pixel = _union_iou(list(geoms), ia, ib)
        row["pixel_iou"] = pixel
        row["pixel_dice"] = 2 * pixel / (1 + pixel)
    return row


def _frame(rows: list[dict[str, Any]], kind: str) -> pd.DataFrame:
    cols = ["task", "label", "worker_a", "worker_b", "n_a", "n_b", "matched", "unmatched", "f1"]
    cols += (["mean_distance"] if kind == "point" else ["mean_iou", "mean_dice"]
             + (["pixel_iou", "pixel_dice"] if kind == "mask" else []))
    out = pd.DataFrame(rows, columns=cols)
    for c in ("n_a", "n_b", "matched", "unmatched"):
        out[c] = out[c].astype(np.int64)
    return out


def _scales(data: pd.DataFrame, kind: str, scale: float | str | None) -> np.ndarray | None:
    if kind != "point" or scale is None:
        return None
    if isinstance(scale, str):
        if scale not in data.columns:
            raise ValueError(f"scale={scale!r} is not a column of data; found {list(map(str, data.columns))}")
        values = data[scale].to_numpy(dtype=float)
    else:
        values = np.full(len(data), float(scale))
    if not np.isfinite(values).all() or (values <= 0).any():
        raise ValueError("scale must be a positive, finite object size in pixels")
    return values


def _seen(data: pd.DataFrame, seen: pd.DataFrame | None) -> dict[Any, set]:
    if seen is None:
        return {}
    if not isinstance(seen, pd.DataFrame) or not {"task", "worker"} <= set(seen.columns):
        found = list(map(str, seen.columns)) if isinstance(seen, pd.DataFrame) else type(seen).__name__
        raise ValueError(f"seen must be a DataFrame with columns task and worker; got {found}")
    out: dict[Any, set] = {}
    for t, w in zip(seen["task"], seen["worker"]):
        out.setdefault(t, set()).add(w)
    return out


def summarize_agreement(pairs: pd.DataFrame, *, by: str = "task") -> pd.DataFrame:
    """Pool :func:`geometric_agreement` rows per image, class, annotator pair or annotator.

    Counts are summed; ``f1 = 2 sum(matched) / sum(n_a + n_b)`` (micro average) and the
    mean IoU/Dice/distance are averages over all matched pairs.

    Parameters
    ----------
    pairs : DataFrame
        The output of :func:`geometric_agreement`.
    by : {"task", "label", "pair", "worker"}
        ``"pair"`` groups by (``worker_a``, ``worker_b``); ``"worker"`` pools every row
        an annotator takes part in (its own objects as ``n``, the other's as ``n_other``).

    Returns
    -------
    DataFrame
        Indexed by the grouping; columns ``n_a``, ``n_b`` (or ``n``, ``n_other``),
        ``matched``, ``unmatched``, ``f1`` and the available means.

    Examples
    --------
    >>> pairs = pd.DataFrame({"task": [1, 2], "label": ["cat", "cat"], "worker_a": ["a", "a"],
    ...                       "worker_b": ["b", "b"], "n_a": [2, 1], "n_b": [1, 1], "matched": [1, 1],
    ...                       "unmatched": [1, 0], "f1": [2 / 3, 1.0], "mean_iou": [0.9, 0.7],
    ...                       "mean_dice": [0.947, 0.824]})
    >>> summarize_agreement(pairs, by="pair")[["matched", "unmatched", "f1", "mean_iou"]]
                       matched  unmatched    f1  mean_iou
    worker_a worker_b
    a        b               2          1  0.8       0.8
    """
    by = check_choice(by, _BY, "by")
    means = [c for c in ("mean_iou", "mean_dice", "mean_distance", "pixel_iou", "pixel_dice") if c in pairs.columns]
    if by == "worker":
        a = pairs.rename(columns={"worker_a": "worker", "n_a": "n", "n_b": "n_other"}).drop(columns="worker_b")
        b = pairs.rename(columns={"worker_b": "worker", "n_b": "n", "n_a": "n_other"}).drop(columns="worker_a")
        pairs, keys, counts = pd.concat([a, b], ignore_index=True), ["worker"], ["n", "n_other"]
    else:
        keys = ["worker_a", "worker_b"] if by == "pair" else [by]
        counts = ["n_a", "n_b"]
    work = pairs[keys + counts + ["matched", "unmatched"]].copy()
    for c in means:
        weight = pairs["matched"] if c.startswith("mean_") else pd.Series(1.0, index=pairs.index)
        work[c + "_w"] = pairs[c].fillna(0.0) * weight
        work[c + "_n"] = weight.where(pairs[c].notna(), 0.0)
    g = work.groupby(keys, sort=True).sum()
    out = g[counts + ["matched", "unmatched"]].copy()
    out["f1"] = 2.0 * g["matched"] / (g[counts[0]] + g[counts[1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        for c in means:
            out[c] = g[c + "_w"] / g[c + "_n"].where(g[c + "_n"] > 0)
    return out
