"""Mask consensus: pixel majority vote and STAPLE (EM over rater sensitivity/specificity)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .._matching import check_geometry_data, check_quorum, check_threshold, match_iou

__all__ = ["StapleResult", "mask_majority", "staple", "fuse_masks"]

MASK_METHODS = ("staple", "majority")
_MASK_BY = ("object", "class")

_CLIP = 1e-10  # keeps sensitivities/specificities off 0 and 1 so their logs stay finite


def _stack(masks: Any) -> tuple[np.ndarray, pd.Index]:
    """Masks (R, H, W) bool and rater names from an array, a list, or a mapping name -> mask."""
    from labkit.geometry import decode_rle

    if isinstance(masks, Mapping):
        names, items = pd.Index(list(masks.keys()), name="worker"), list(masks.values())
    elif isinstance(masks, np.ndarray):
        if masks.ndim != 3:
            raise ValueError(f"masks has shape {masks.shape}; expected (R raters, H, W), a list of R "
                             "(H, W) masks or RLE dicts, or a dict name -> mask")
        names, items = pd.RangeIndex(masks.shape[0], name="worker"), list(masks)
    elif isinstance(masks, Sequence) and not isinstance(masks, (str, bytes)):
        names, items = pd.RangeIndex(len(masks), name="worker"), list(masks)
    else:
        raise ValueError(f"masks must be an (R, H, W) array, a list of masks or a dict; got {type(masks).__name__}")
    if not items:
        raise ValueError("masks is empty; expected at least one rater's mask")
    arrays = [decode_rle(m) if isinstance(m, dict) else np.asarray(m) != 0 for m in items]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1 or arrays[0].ndim != 2:
        raise ValueError(f"masks have shapes {sorted(shapes)}; expected (H, W) masks of one image size")
    return np.stack(arrays), names


def _weights(weights: Any, names: pd.Index) -> np.ndarray:
    if weights is None:
        return np.ones(len(names))
    if isinstance(weights, Mapping) or isinstance(weights, pd.Series):
        w = pd.Series(weights, dtype=float).reindex(names).to_numpy()
    else:
        w = np.asarray(weights, dtype=float).ravel()
    if w.shape != (len(names),) or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be {len(names)} finite non-negative numbers, one per rater; "
                         f"got {w.tolist()[:10]}")
    if w.sum() == 0:
        raise ValueError("weights are all 0; at least one rater must count")
    return w


def mask_majority(masks: Any, *, weights: Any = None, threshold: float = 0.5) -> np.ndarray:
    """Pixel-wise (weighted) majority vote of binary masks.

    A pixel is foreground when the weighted share of raters marking it is at least
    ``threshold``; with the default 0.5 a tie counts as foreground, as crowd-kit's
    ``SegmentationMajorityVote`` does.

    Parameters
    ----------
    masks : ndarray of shape (R, H, W), list of R masks, or dict name -> mask
        Bool/0-1 arrays or COCO RLE dicts, one per rater, all of one size.
    weights : array_like of shape (R,) or mapping, optional
        Non-negative weight per rater (e.g. STAPLE's or a gold accuracy). Default 1.
    threshold : float, default 0.5

    Returns
    -------
    ndarray of shape (H, W), bool

    Examples
    --------
    >>> m = np.zeros((3, 2, 3), bool); m[0, 0] = True; m[1, 0, :2] = True; m[2, :, 0] = True
    >>> mask_majority(m).astype(int)
    array([[1, 1, 0],
           [0, 0, 0]])
    """
    stack, names = _stack(masks)
    w = _weights(weights, names)
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1]; got {threshold}")
    share = np.tensordot(w / w.sum(), stack, axes=1)
    return share >= float(threshold) - 1e-12


class StapleResult(NamedTuple):
    """The output of :func:`staple`.

    Attributes
    ----------
    mask : ndarray of shape (H, W), bool
        Consensus: posterior probability of foreground >= 0.5.
    probability : ndarray of shape (H, W)
        Posterior probability that each pixel is foreground.
    sensitivity, specificity : Series of length R
        Each rater's estimated true-positive and true-negative rate, index ``worker``.
    prior : float
        Foreground prior used.
    n_iter : int
        EM iterations run.
    """

    mask: np.ndarray
    probability: np.ndarray
    sensitivity: pd.Series
    specificity: pd.Series
    prior: float
    n_iter: int


def staple(masks: Any, *, max_iter: int = 100, tol: float = 1e-7, prior: float | None = None,
           init: tuple[float, float] = (0.99, 0.99)) -> StapleResult:
    """STAPLE consensus of binary masks with each rater's sensitivity and specificity.

    Simultaneous truth and performance level estimation (Warfield et al. 2004): EM over
    the hidden true mask T, with rater j marking a foreground pixel with probability
    ``p_j`` (sensitivity) and a background pixel as background with probability ``q_j``
    (specificity). E-step: ``W_i = f a_i / (f a_i + (1 - f) b_i)`` with
    ``a_i = prod_j p_j^D_ij (1 - p_j)^(1 - D_ij)`` and ``b_i = prod_j q_j^(1 - D_ij)
    (1 - q_j)^D_ij``; M-step: ``p_j = sum_i W_i D_ij / sum_i W_i`` and ``q_j = sum_i
    (1 - W_i)(1 - D_ij) / sum_i (1 - W_i)``. The prior ``f`` is fixed at the mean
    foreground share over raters unless given. Iteration stops when no ``p_j`` or
    ``q_j`` moves by more than ``tol``.

    Pixels with the same votes have the same posterior, so EM runs once per distinct
    vote pattern (at most ``2^R``) weighted by its pixel count: the cost after one pass
    over the image does not depend on the image size.

    Parameters
    ----------
    masks : ndarray of shape (R, H, W), list of R masks, or dict name -> mask
        Bool/0-1 arrays or COCO RLE dicts, one per rater, all of one size.
    max_iter : int, default 100
    tol : float, default 1e-7
    prior : float, optional
        Foreground prior f in (0, 1). Default: the mean of all raters' masks.
    init : (float, float), default (0.99, 0.99)
        Initial sensitivity and specificity for every rater.

    Returns
    -------
    StapleResult
        ``mask``, ``probability``, per-rater ``sensitivity`` and ``specificity``,
        ``prior`` and ``n_iter``.

    References
    ----------
    Warfield, S. K., Zou, K. H., & Wells, W. M. (2004). Simultaneous truth and
    performance level estimation (STAPLE): an algorithm for the validation of image
    segmentation. IEEE Transactions on Medical Imaging 23(7), 903-921.
    https://doi.org/10.1109/TMI.2004.828354

    Examples
    --------
    >>> truth = np.zeros((20, 20), bool); truth[5:15, 5:15] = True
    >>> sloppy = truth.copy(); sloppy[:, :4] = True
    >>> res = staple([truth, truth, sloppy])
    >>> bool((res.mask == truth).all()), res.sensitivity.round(2).tolist()
    (True, [1.0, 1.0, 1.0])
    >>> res.specificity.round(2).tolist()
    [1.0, 1.0, 0.73]
    """
    stack, names = _stack(masks)
    if not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise ValueError(f"max_iter must be a non-negative integer; got {max_iter!r}")
    p0, q0 = (float(v) for v in init)
    if not (0 < p0 < 1 and 0 < q0 < 1):
        raise ValueError(f"init must be two probabilities strictly between 0 and 1; got {init}")
    r, h, w = stack.shape
    votes, inverse, count = _patterns(stack.reshape(r, -1))
    f = float(stack.mean()) if prior is None else float(prior)
    if not 0 < f < 1:
        if prior is not None:
            raise ValueError(f"prior must be strictly between 0 and 1; got {prior}")
        # every rater agrees on an all-background (or all-foreground) image: nothing to estimate
        probability = np.full((h, w), f)
        ones = pd.Series(1.0, index=names)
        return StapleResult(probability >= 0.5, probability, ones.rename("sensitivity"),
                            ones.rename("specificity"), f, 0)
    d = votes.astype(float)  # (U, R)
    p, q = np.full(r, p0), np.full(r, q0)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007  (the count is reported after the loop)
        lp, l1p = np.log(np.clip(p, _CLIP, 1 - _CLIP)), np.log(np.clip(1 - p, _CLIP, 1 - _CLIP))
        lq, l1q = np.log(np.clip(q, _CLIP, 1 - _CLIP)), np.log(np.clip(1 - q, _CLIP, 1 - _CLIP))
        log_a = np.log(f) + d @ lp + (1 - d) @ l1p
        log_b = np.log1p(-f) + (1 - d) @ lq + d @ l1q
        weight = 1.0 / (1.0 + np.exp(log_b - log_a))  # posterior of foreground per pattern
        wf, wb = count * weight, count * (1.0 - weight)
        new_p = (wf @ d) / max(wf.sum(), 1e-300)
        new_q = (wb @ (1 - d)) / max(wb.sum(), 1e-300)
        change = max(np.abs(new_p - p).max(), np.abs(new_q - q).max())
        p, q = new_p, new_q
        if change <= tol:
            break
    probability = weight[inverse].reshape(h, w) if max_iter else np.full((h, w), f)
    return StapleResult(probability >= 0.5, probability, pd.Series(p, index=names, name="sensitivity"),
                        pd.Series(q, index=names, name="specificity"), f, it)


def _patterns(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct columns of a (R, P) bool array: patterns (U, R), inverse (P,), counts (U,)."""
    r = flat.shape[0]
    if r <= 62:
        code = (flat.astype(np.int64) << np.arange(r, dtype=np.int64)[:, None]).sum(0)
        uniq, inverse, count = np.unique(code, return_inverse=True, return_counts=True)
        votes = ((uniq[:, None] >> np.arange(r, dtype=np.int64)) & 1).astype(bool)
        return votes, inverse.ravel(), count.astype(float)
    uniq, inverse, count = np.unique(flat.T, axis=0, return_inverse=True, return_counts=True)
    return uniq, inverse.ravel(), count.astype(float)


def _cluster_by_similarity(sim: np.ndarray, workers: np.ndarray, threshold: float) -> np.ndarray:
    """Objects from (n, n) pairwise IoU: annotators in sorted order, each one's objects matched
    one-to-one (Hungarian) to the clusters by mean IoU with the clusters' members."""
    cluster = np.full(len(workers), -1, dtype=np.int64)
    n_clusters = 0
    for w in sorted(pd.unique(workers), key=str):
        idx = np.nonzero(workers == w)[0]
        matched = np.zeros(len(idx), dtype=bool)
        if n_clusters:
            done = np.nonzero(cluster >= 0)[0]
            member = np.zeros((n_clusters, len(done)))
            member[cluster[done], np.arange(len(done))] = 1.0
            link = (member @ sim[np.ix_(done, idx)]) / member.sum(1, keepdims=True)
            i, j = match_iou(link, threshold)
            cluster[idx[j]] = i
            matched[j] = True
        new = idx[~matched]
        cluster[new] = n_clusters + np.arange(len(new))
        n_clusters += len(new)
    return cluster


def fuse_masks(data: pd.DataFrame, *, method: str = "staple", by: str = "object", iou_threshold: float = 0.5,
               quorum: float = 0.5, seen: pd.DataFrame | None = None, max_iter: int = 100,
               tol: float = 1e-7) -> pd.DataFrame:
    """Consensus masks per image and class, by STAPLE or pixel majority.

    ``by="class"``: per (``task``, ``label``), each annotator's masks of the class are
    united and the unions are fused (semantic segmentation). ``by="object"``: masks are
    first grouped into objects across annotators, at most one mask per annotator per
    object (annotators in sorted order, Hungarian matching on the mean mask IoU with an
    object's members, IoU >= ``iou_threshold``); objects drawn by fewer than the quorum
    are dropped (``quorum`` as in :func:`fuse_boxes`), and each kept object is fused.

    In both, an annotator who worked on the image (drew any mask on it, or is in
    ``seen``) but did not draw the class or object contributes an empty mask: it said
    "not here". Consensus masks that come out empty are dropped.

    Parameters
    ----------
    data : DataFrame
        ``task``, ``worker``, ``label`` and ``geometry`` (COCO RLE dicts or (H, W) arrays,
        one size per task), e.g. ``project.annotations(kind="mask")``.
    method : {"staple", "majority"}
    by : {"object", "class"}
    iou_threshold : float, default 0.5
        For ``by="object"``.
    quorum : int or float, default 0.5
        For ``by="object"``: minimum number (int) or share (float) of annotators.
    seen : DataFrame with columns ``task``, ``worker``, optional
    max_iter, tol
        For STAPLE.

    Returns
    -------
    DataFrame
        One row per consensus mask: ``task``, ``label``, ``geometry`` (COCO RLE dict),
        ``support`` (annotators who drew it), ``n_workers`` (raters fused, including
        empty ones), ``score`` (mean posterior, or vote share, inside the mask),
        ``workers``, ``members`` (tuples of input index labels), and for STAPLE
        ``sensitivity`` and ``specificity`` (dicts worker -> rate).

    Examples
    --------
    >>> a = np.zeros((8, 8), bool); a[2:6, 2:6] = True
    >>> b = np.zeros((8, 8), bool); b[2:6, 2:7] = True
    >>> df = pd.DataFrame({"task": 1, "label": "cell", "worker": ["x", "y", "z"], "geometry": [a, a, b]})
    >>> out = fuse_masks(df, method="majority")
    >>> from labkit.geometry import decode_rle
    >>> out[["support", "n_workers"]].values.tolist(), int(decode_rle(out.geometry[0]).sum())
    ([[3, 3]], 16)
    """
    from labkit._util.checks import check_choice
    from labkit.geometry import decode_rle, encode_rle, mask_iou

    method = check_choice(method, MASK_METHODS, "method")
    by = check_choice(by, _MASK_BY, "by")
    data, _ = check_geometry_data(data, "mask")
    iou_threshold = check_threshold(iou_threshold, "iou_threshold")
    need = check_quorum(quorum)
    seen_by: dict[Any, set] = {}
    if seen is not None:
        for t, w in zip(seen["task"], seen["worker"]):
            seen_by.setdefault(t, set()).add(w)
    on_task = data.groupby("task")["worker"].agg(lambda s: set(s)).to_dict()
    workers_all, index = data["worker"].to_numpy(), data.index.to_numpy()
    masks_all = [decode_rle(g) if isinstance(g, dict) else np.asarray(g) != 0 for g in data["geometry"]]
    rows = []
    groups = pd.Series(np.arange(len(data))).groupby([data["task"].to_numpy(), data["label"].to_numpy()], sort=True)
    for (task, label), pos in groups:
        pos = pos.to_numpy()
        raters = sorted(on_task.get(task, set()) | seen_by.get(task, set()), key=str)
        workers = workers_all[pos]
        if by == "class":
            clusters = [pos]
        else:
            sim = mask_iou([masks_all[p] for p in pos], [masks_all[p] for p in pos])
            cl = _cluster_by_similarity(sim, workers, iou_threshold)
            clusters = [pos[cl == c] for c in range(cl.max() + 1)]
        shape = masks_all[pos[0]].shape
        for members in clusters:
            support = len(set(workers_all[members]))
            if by == "object" and support < (need if isinstance(need, int) else need * len(raters) - 1e-12):
                continue
            per_rater = {r: np.zeros(shape, bool) for r in raters}
            for p in members:
                per_rater[workers_all[p]] = per_rater[workers_all[p]] | masks_all[p]
            row = {"task": task, "label": label, "support": support, "n_workers": len(per_rater),
                   "workers": tuple(sorted(set(workers_all[members]), key=str)), "members": tuple(index[members])}
            if method == "staple":
                res = staple(per_rater, max_iter=max_iter, tol=tol)
                mask, inside = res.mask, res.probability
                row["sensitivity"] = {str(k): float(v) for k, v in res.sensitivity.items()}
                row["specificity"] = {str(k): float(v) for k, v in res.specificity.items()}
            else:
                mask = mask_majority(per_rater)
                inside = np.mean(np.stack(list(per_rater.values())), axis=0)
            if not mask.any():
                continue
            row["geometry"] = encode_rle(mask)
            row["score"] = float(inside[mask].mean())
            rows.append(row)
    cols = ["task", "label", "geometry", "support", "n_workers", "score", "workers", "members"]
    cols += ["sensitivity", "specificity"] if method == "staple" else []
    return pd.DataFrame(rows, columns=cols)
