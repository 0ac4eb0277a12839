"""How machine proposals fared in review: acceptance, edits, rejections, and the time they saved.

:func:`prelabel_report` reads the proposals table (``project.proposals(None)``: one row per
proposal with its ``state``, ``source``, ``label``, ``kind``, ``geometry``, what was
delivered, ``final_*``, and ``review_s``) and, optionally, the annotations drawn from
scratch (``project.annotations()``, whose provenance holds ``time_spent_s``). It is plain
pandas: the numbers of the audit's pre-labeling section and of ``docs/prelabel.md``.

- Rates per source and per class: accepted, edited and rejected among the reviewed
  proposals (``proposed`` ones are pending, counted apart).
- For each edited proposal, the IoU between the proposal and the object that replaced
  it (1.0 when only the class changed; missing for image-level labels) and whether the
  class changed.
- Seconds per object: reviewing a proposal (by decision) against drawing one from
  scratch.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PrelabelReport", "REQUIRED", "object_iou", "prelabel_report"]

#: Columns :func:`prelabel_report` needs of the proposals table.
REQUIRED = ("state", "source", "label", "kind", "geometry", "final_label", "final_kind", "final_geometry", "review_s")
_STATES = ("proposed", "accepted", "edited", "rejected")
_DECIDED = {"accepted": "accept", "edited": "edit", "rejected": "reject"}
#: Sources of annotations drawn by people (with or without a segmenter's help).
DRAWN_SOURCES = ("human", "sam", "grabcut")


@dataclass(frozen=True)
class PrelabelReport:
    """What :func:`prelabel_report` found.

    Attributes
    ----------
    by_source, by_class : DataFrame
        Indexed by source (class): ``proposals``, ``pending``, ``reviewed``, ``accepted``,
        ``edited``, ``rejected`` (counts), ``acceptance_rate``, ``edit_rate``,
        ``rejection_rate`` (shares of the reviewed; missing when none is), ``mean_edit_iou``.
    edits : DataFrame
        One row per edited proposal (the input's index): ``source``, ``label``,
        ``final_label``, ``class_changed``, ``iou``.
    seconds : DataFrame
        Index ``work``: ``review: accept``, ``review: edit``, ``review: reject``, ``review``
        (all decisions) and ``drawn from scratch``; columns ``objects`` (with a recorded time),
        ``mean_s``, ``median_s``.
    """

    by_source: pd.DataFrame
    by_class: pd.DataFrame
    edits: pd.DataFrame
    seconds: pd.DataFrame

    def summary(self) -> dict[str, Any]:
        """Totals: proposals, pending, reviewed, the three rates, mean edit IoU, median seconds both ways."""
        t = self.by_source[["proposals", "pending", "reviewed", "accepted", "edited", "rejected"]].sum()
        reviewed = int(t["reviewed"])

        def rate(k: str) -> float:
            return float(t[k] / reviewed) if reviewed else float("nan")
        return {"proposals": int(t["proposals"]), "pending": int(t["pending"]), "reviewed": reviewed,
                "acceptance_rate": rate("accepted"), "edit_rate": rate("edited"), "rejection_rate": rate("rejected"),
                "mean_edit_iou": float(self.edits["iou"].mean()) if self.edits["iou"].notna().any() else float("nan"),
                "median_review_s": float(self.seconds.loc["review", "median_s"]),
                "median_drawn_s": float(self.seconds.loc["drawn from scratch", "median_s"])}


def prelabel_report(frame: pd.DataFrame, *, drawn: pd.DataFrame | None = None) -> PrelabelReport:
    """Acceptance, edit and rejection of proposals per source and class; edit IoU; seconds per object.

    Parameters
    ----------
    frame : DataFrame
        The proposals, one row each, with the columns of :data:`REQUIRED`
        (``project.proposals(None)`` has them).
    drawn : DataFrame, optional
        Annotations in the long layout (``project.annotations()``): those by people
        (``source`` human, sam or grabcut) with ``provenance["time_spent_s"]`` that
        replace no proposal are the objects drawn from scratch.

    Returns
    -------
    PrelabelReport

    Examples
    --------
    >>> frame = pd.DataFrame({"state": ["accepted", "edited", "rejected", "proposed"],
    ...                       "source": "pool", "label": ["1", "1", "2", "2"], "kind": "label",
    ...                       "geometry": None, "final_label": ["1", "7", None, None], "final_kind": "label",
    ...                       "final_geometry": None, "review_s": [2.0, 6.0, 1.0, None]})
    >>> r = prelabel_report(frame)
    >>> r.by_source.loc["pool", ["reviewed", "accepted", "pending"]].tolist(), r.summary()["acceptance_rate"]
    ([3, 1, 1], 0.3333333333333333)
    >>> r.edits["class_changed"].tolist(), r.summary()["median_review_s"]
    ([True], 2.0)
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame is a {type(frame).__name__}; expected the DataFrame of project.proposals(None)")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"the proposals table lacks columns {missing}; found {list(frame.columns)}. "
                         "Pass project.proposals(None)")
    bad = sorted(set(frame["state"].dropna()) - set(_STATES))
    if bad or frame["state"].isna().any():
        raise ValueError(f"state must be one of {list(_STATES)} in every row; found {bad or ['missing']}")
    if drawn is not None and not {"source", "provenance"} <= set(drawn.columns):
        raise ValueError(f"drawn needs columns 'source' and 'provenance'; found {list(drawn.columns)}")
    edits = _edits(frame)
    return PrelabelReport(by_source=_rates(frame, "source", edits), by_class=_rates(frame, "label", edits),
                          edits=edits, seconds=_seconds(frame, drawn))


def _rates(frame: pd.DataFrame, by: str, edits: pd.DataFrame) -> pd.DataFrame:
    counts = pd.crosstab(frame[by], frame["state"]).reindex(columns=list(_STATES), fill_value=0)
    out = pd.DataFrame({"proposals": counts.sum(axis=1), "pending": counts["proposed"]})
    out["reviewed"] = counts[["accepted", "edited", "rejected"]].sum(axis=1)
    for state in ("accepted", "edited", "rejected"):
        out[state] = counts[state]
    reviewed = out["reviewed"].where(out["reviewed"] > 0)
    out["acceptance_rate"] = out["accepted"] / reviewed
    out["edit_rate"] = out["edited"] / reviewed
    out["rejection_rate"] = out["rejected"] / reviewed
    keys = frame.loc[edits.index, by] if len(edits) else pd.Series(dtype=object)
    out["mean_edit_iou"] = edits["iou"].groupby(keys.to_numpy()).mean().reindex(out.index) if len(edits) \
        else np.nan
    out.index.name = by
    return out.astype({c: int for c in ("proposals", "pending", "reviewed", "accepted", "edited", "rejected")})


def _edits(frame: pd.DataFrame) -> pd.DataFrame:
    e = frame[frame["state"] == "edited"]
    ious = [object_iou(k, g, fk, fg) for k, g, fk, fg in zip(e["kind"], e["geometry"], e["final_kind"],
                                                                e["final_geometry"])]
    return pd.DataFrame({"source": e["source"], "label": e["label"], "final_label": e["final_label"],
                         "class_changed": (e["label"] != e["final_label"]).to_numpy(dtype=bool),
                         "iou": np.asarray(ious, dtype=float)}, index=e.index)


def object_iou(kind: str, geometry: Any, final_kind: Any, final_geometry: Any) -> float:
    """IoU of a proposal's object and the object that replaced it; NaN when either has no area.

    Boxes are compared as boxes; any other pair is rasterised (to the mask's size when one
    is a mask, else to the pair's joint extent).

    Examples
    --------
    >>> object_iou("box", [0, 0, 2, 2], "box", [1, 0, 3, 2])
    0.3333333333333333
    >>> object_iou("label", None, "label", None)
    nan
    """
    from labkit.geometry import box_iou, geometry_bounds, geometry_to_mask

    area = ("box", "polygon", "ellipse", "mask")
    if kind not in area or final_kind not in area or geometry is None or final_geometry is None:
        return float("nan")
    if kind == "box" and final_kind == "box":
        return float(box_iou([geometry], [final_geometry])[0, 0])
    sizes = [tuple(g["size"]) for k, g in ((kind, geometry), (final_kind, final_geometry)) if k == "mask"]
    if sizes:
        h, w = sizes[0]
    else:
        bounds = [geometry_bounds(k, g) for k, g in ((kind, geometry), (final_kind, final_geometry))]
        w = int(np.ceil(max(b[2] for b in bounds))) + 1
        h = int(np.ceil(max(b[3] for b in bounds))) + 1
    a = geometry_to_mask(kind, geometry, h, w)
    b = geometry_to_mask(final_kind, final_geometry, h, w)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")


def _seconds(frame: pd.DataFrame, drawn: pd.DataFrame | None) -> pd.DataFrame:
    review = pd.to_numeric(frame["review_s"], errors="coerce")
    decided = frame["state"].map(_DECIDED)
    groups: dict[str, pd.Series] = {f"review: {d}": review[decided == d].dropna() for d in ("accept", "edit", "reject")}
    groups["review"] = review[decided.notna()].dropna()
    groups["drawn from scratch"] = _drawn_seconds(drawn)
    rows = {k: {"objects": len(v), "mean_s": float(v.mean()) if len(v) else np.nan,
                "median_s": float(v.median()) if len(v) else np.nan} for k, v in groups.items()}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "work"
    return out.astype({"objects": int})


def _drawn_seconds(drawn: pd.DataFrame | None) -> pd.Series:
    if drawn is None or drawn.empty:
        return pd.Series(dtype=float)
    keep = drawn["source"].isin(DRAWN_SOURCES)
    if "state" in drawn.columns:
        keep &= drawn["state"].isna()
    values = []
    for prov in drawn.loc[keep, "provenance"]:
        if isinstance(prov, Mapping) and "replaces" not in prov and isinstance(prov.get("time_spent_s"), (int, float)):
            values.append(float(prov["time_spent_s"]))
    return pd.Series(values, dtype=float)
