"""Shared by geometric agreement and object consensus: input checks and one-to-one matching.

:mod:`labkit.quality.geometric` (agreement between annotators) and
:mod:`labkit.quality.aggregate` (fusing their boxes and masks) read the same long
tables of objects and pair objects the same way; both import these from here.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from labkit._util.checks import check_choice

__all__ = ["GEOMETRIC_KINDS", "check_geometry_data", "check_quorum", "check_threshold", "geometries",
           "match_iou", "match_pairs"]

GEOMETRIC_KINDS = ("box", "polygon", "ellipse", "mask", "point")
_BOX_COLUMNS = ("x0", "y0", "x1", "y1")


# -------------------------------------------------------------------------- matching
def match_pairs(cost: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most valid pairs, then least total cost among them (Hungarian on a penalised cost).

    Parameters
    ----------
    cost : ndarray of shape (N, M)
    valid : ndarray of bool, shape (N, M)
        Pairs that may be matched.

    Returns
    -------
    (ndarray, ndarray)
        Row and column indices of the matched pairs, each of shape (P,).

    Examples
    --------
    >>> i, j = match_pairs(np.array([[0.1, 0.2], [0.3, 0.9]]), np.array([[True, True], [True, False]]))
    >>> i.tolist(), j.tolist()
    ([0, 1], [1, 0])
    """
    if cost.size == 0 or not valid.any():
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    from scipy.optimize import linear_sum_assignment

    # an invalid pair costs more than all valid pairs together, so any assignment with one
    # more valid pair wins; invalid pairs in the result are then dropped
    big = float(np.abs(cost[valid]).sum()) + 1.0
    i, j = linear_sum_assignment(np.where(valid, cost, big))
    keep = valid[i, j]
    return i[keep], j[keep]


def match_iou(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches of an (N, M) IoU matrix: IoU >= ``threshold`` and > 0, most pairs first.

    Examples
    --------
    >>> i, j = match_iou(np.array([[0.9, 0.6], [0.7, 0.0]]), 0.5)
    >>> i.tolist(), j.tolist()
    ([0, 1], [1, 0])
    """
    return match_pairs(1.0 - iou, (iou >= threshold) & (iou > 0))


# ----------------------------------------------------------------------------- input
def check_threshold(value: float, what: str) -> float:
    """``value`` as a float in [0, 1]; ValueError naming ``what`` otherwise."""
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be in [0, 1]; got {value}")
    return value


def check_quorum(quorum: Any) -> int | float:
    """An int quorum (annotators, >= 1) or a float one (a share of annotators in (0, 1])."""
    if isinstance(quorum, (bool, np.bool_)):
        raise ValueError(f"quorum must be an int >= 1 or a float in (0, 1]; got {quorum!r}")
    if isinstance(quorum, (int, np.integer)):
        if quorum < 1:
            raise ValueError(f"quorum={quorum}: an int quorum counts annotators and must be >= 1")
        return int(quorum)
    q = float(quorum)
    if not (0 < q <= 1) or math.isnan(q):
        raise ValueError(f"quorum={quorum}: a float quorum is a share of annotators in (0, 1]; "
                         "pass an int to count annotators")
    return q


def _pick_kind(data: pd.DataFrame, kind: str | None) -> tuple[pd.DataFrame, str]:
    if kind is not None:
        kind = check_choice(kind, GEOMETRIC_KINDS, "kind")
        if "kind" in data.columns:
            data = data[data["kind"] == kind]
        return data, kind
    if "kind" not in data.columns:
        raise ValueError(f"data has no 'kind' column (found {list(map(str, data.columns))}); pass kind= "
                         f"one of {list(GEOMETRIC_KINDS)}")
    kinds = sorted(set(data["kind"]) & set(GEOMETRIC_KINDS))
    if len(kinds) != 1:
        raise ValueError(f"data holds kinds {sorted(set(data['kind']))}; pass kind= one of "
                         f"{kinds or list(GEOMETRIC_KINDS)} "
                         "to compare one kind at a time")
    return data[data["kind"] == kinds[0]], kinds[0]


def check_geometry_data(data: Any, kind: str | None) -> tuple[pd.DataFrame, str]:
    """The rows of one geometric kind of a long table (task, worker, label, geometry), and the kind.

    Without ``kind`` the table must hold exactly one geometric kind. Boxes may come as
    columns ``x0, y0, x1, y1`` instead of ``geometry``.
    """
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"expected a long DataFrame (task, worker, label, geometry); got {type(data).__name__}")
    data, kind = _pick_kind(data, kind)
    missing = [c for c in ("task", "worker", "label") if c not in data.columns]
    has_geometry = "geometry" in data.columns or (kind == "box" and all(c in data.columns for c in _BOX_COLUMNS))
    if missing or not has_geometry:
        need = missing + ([] if has_geometry else ["geometry"])
        raise ValueError(f"data is missing columns {need}; found {list(map(str, data.columns))}; expected "
                         "task, worker, label and geometry (boxes may instead have x0, y0, x1, y1), "
                         "e.g. project.annotations(kind=...)")
    return data, kind


def geometries(data: pd.DataFrame, kind: str) -> list[Any] | np.ndarray:
    """The geometries of checked rows: an (N, 4) XYXY array for box columns, else a list."""
    if kind == "box" and all(c in data.columns for c in _BOX_COLUMNS):
        return data[list(_BOX_COLUMNS)].to_numpy(dtype=float)
    return list(data["geometry"])
