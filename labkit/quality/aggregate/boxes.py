"""Box consensus: match boxes across annotators, keep objects with a quorum, fuse coordinates."""
from __future__ import annotations

import numpy as np
import pandas as pd

from labkit.geometry import box_iou

from .._matching import (
    check_geometry_data,
    check_quorum,
    check_threshold,
    geometries,
    match_iou,
)

__all__ = ["fuse_boxes", "cluster_boxes"]


def cluster_boxes(boxes: np.ndarray, workers: np.ndarray, *, iou_threshold: float = 0.5,
                  scores: np.ndarray | None = None) -> np.ndarray:
    """Group boxes of several annotators into objects, at most one box per annotator each.

    Annotators are taken in sorted order. The first one's boxes open one cluster each;
    every next annotator's boxes are matched one-to-one (Hungarian, IoU >= threshold,
    most matches first) to the clusters' current fused boxes, joining the matched
    clusters; its unmatched boxes open new clusters.

    Parameters
    ----------
    boxes : ndarray of shape (N, 4)
        XYXY boxes.
    workers : ndarray of shape (N,)
        Annotator of each box.
    iou_threshold : float, default 0.5
    scores : ndarray of shape (N,), optional
        Weights for the fused coordinates (default: equal).

    Returns
    -------
    ndarray of shape (N,)
        Cluster id of each box, ``0 .. C-1`` in order of creation.

    Examples
    --------
    >>> boxes = np.array([[0, 0, 10, 10], [0, 0, 9, 10], [50, 50, 60, 60], [1, 1, 10, 10]])
    >>> cluster_boxes(boxes, np.array(["a", "a", "b", "b"])).tolist()
    [0, 1, 2, 0]
    """
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    workers = np.asarray(workers)
    weights = np.ones(len(boxes)) if scores is None else np.asarray(scores, dtype=float)
    cluster = np.full(len(boxes), -1, dtype=np.int64)
    sums = np.zeros((0, 4))  # weighted coordinate sums per cluster
    mass = np.zeros(0)
    for w in sorted(pd.unique(workers), key=str):
        idx = np.nonzero(workers == w)[0]
        matched_b = np.zeros(len(idx), dtype=bool)
        if len(mass):
            fused = sums / np.maximum(mass, 1e-300)[:, None]
            i, j = match_iou(box_iou(fused, boxes[idx]), iou_threshold)
            cluster[idx[j]] = i
            sums[i] += weights[idx[j], None] * boxes[idx[j]]
            mass[i] += weights[idx[j]]
            matched_b[j] = True
        new = idx[~matched_b]
        cluster[new] = len(mass) + np.arange(len(new))
        sums = np.vstack([sums, weights[new, None] * boxes[new]])
        mass = np.concatenate([mass, weights[new]])
    return cluster


def fuse_boxes(data: pd.DataFrame, *, iou_threshold: float = 0.5, quorum: float = 0.5,
               weights: str | None = "score", seen: pd.DataFrame | None = None) -> pd.DataFrame:
    """Consensus boxes per image and class: matched across annotators, averaged, kept by quorum.

    Per (``task``, ``label``), :func:`cluster_boxes` groups the boxes into objects (one
    box per annotator at most). An object drawn by ``support`` annotators is kept if
    ``support >= quorum`` (an int) or ``support >= quorum * n_workers`` (a float in
    (0, 1]), where ``n_workers`` counts the annotators who drew any box on the image
    (or who saw it, with ``seen``). Its box is the weighted mean of the members'
    coordinates, as in weighted boxes fusion (Solovyev et al.), with the members'
    scores as weights when ``weights="score"`` and a ``score`` column exists.

    Parameters
    ----------
    data : DataFrame
        ``task``, ``worker``, ``label`` and box geometry (``x0 y0 x1 y1`` columns or
        ``geometry`` dicts), optional ``score``; e.g. ``project.annotations(kind="box")``.
    iou_threshold : float, default 0.5
    quorum : int or float, default 0.5
        Minimum number (int >= 1) or share (float in (0, 1]) of annotators per object.
    weights : {"score", None}
        Weight coordinates by ``score`` (missing scores count 1), or equally.
    seen : DataFrame with columns ``task``, ``worker``, optional
        Who looked at which image, for the share quorum.

    Returns
    -------
    DataFrame
        One row per kept object: ``task``, ``label``, ``x0 y0 x1 y1``, ``support``,
        ``n_workers``, ``score`` (the members' summed score, or their count, divided by
        ``n_workers``: the score-weighted share of annotators who drew it), ``workers``
        (tuple) and ``members`` (tuple of the input rows' index labels).

    References
    ----------
    Solovyev, R., Wang, W., & Gabruseva, T. (2021). Weighted boxes fusion: ensembling
    boxes from different object detection models. Image and Vision Computing 107.
    https://doi.org/10.1016/j.imavis.2021.104117 (arXiv:1910.13302)

    Examples
    --------
    >>> df = pd.DataFrame({"task": 1, "label": "cat", "worker": ["a", "b", "c", "c"],
    ...                    "x0": [0, 2, 1, 50], "y0": [0, 0, 0, 50], "x1": [10, 12, 11, 60],
    ...                    "y1": [10, 10, 10, 60]})
    >>> fuse_boxes(df)[["x0", "y0", "x1", "y1", "support", "score", "workers"]]
        x0   y0    x1    y1  support  score    workers
    0  1.0  0.0  11.0  10.0        3    1.0  (a, b, c)
    """
    data, _ = check_geometry_data(data, "box")
    iou_threshold = check_threshold(iou_threshold, "iou_threshold")
    need = check_quorum(quorum)
    if weights not in ("score", None):
        raise ValueError(f"weights must be 'score' or None; got {weights!r}")
    boxes = np.asarray(_boxes(data))
    if weights == "score" and "score" in data.columns:
        score = data["score"].astype(float).fillna(1.0).to_numpy()
    else:
        score = np.ones(len(data))
    if (score < 0).any() or not np.isfinite(score).all():
        raise ValueError("box scores must be finite and non-negative to serve as weights")
    seen_n = {} if seen is None else seen.groupby("task")["worker"].nunique().to_dict()
    workers_all = data["worker"].to_numpy()
    per_task = data.groupby("task")["worker"].nunique().to_dict()
    index = data.index.to_numpy()
    rows = []
    groups = pd.Series(np.arange(len(data))).groupby([data["task"].to_numpy(), data["label"].to_numpy()], sort=True)
    for (task, label), pos in groups:
        pos = pos.to_numpy()
        cl = cluster_boxes(boxes[pos], workers_all[pos], iou_threshold=iou_threshold, scores=score[pos])
        n_workers = max(per_task.get(task, 0), seen_n.get(task, 0))
        for c in range(cl.max() + 1):
            members = pos[cl == c]
            support = len(members)
            if support < (need if isinstance(need, int) else need * n_workers - 1e-12):
                continue
            w = score[members]
            fused = (w @ boxes[members]) / w.sum() if w.sum() > 0 else boxes[members].mean(0)
            rows.append({"task": task, "label": label, "x0": fused[0], "y0": fused[1], "x1": fused[2],
                         "y1": fused[3], "support": support, "n_workers": n_workers,
                         "score": float(w.sum()) / n_workers,
                         "workers": tuple(workers_all[members]), "members": tuple(index[members])})
    cols = ["task", "label", "x0", "y0", "x1", "y1", "support", "n_workers", "score", "workers", "members"]
    return pd.DataFrame(rows, columns=cols)


def _boxes(data: pd.DataFrame) -> np.ndarray:
    geoms = geometries(data, "box")
    if isinstance(geoms, np.ndarray):
        return geoms
    return np.array([[g["x0"], g["y0"], g["x1"], g["y1"]] for g in geoms], dtype=float).reshape(-1, 4)
