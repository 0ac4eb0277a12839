"""The review queue: one reviewer walks a project's proposals, least confident first. No widget.

:class:`ReviewQueue` holds the proposals left to review (``project.proposals()``: those
of images assigned to the reviewer when it has assignments, else all it may read),
ordered by score, lowest first (unknown scores first), and records each decision with
:meth:`labkit.Project.review`, with the seconds between the proposal appearing and the
decision in its provenance (``review.seconds``). :class:`labkit.widgets.Labeler` with
``review=True`` is the view over it: Enter accepts, Delete rejects, a prompt starts an
edit that Enter saves, the class keys change the class (an edit too).
"""
from __future__ import annotations

import html
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from labkit.widgets.session import Prompt

if TYPE_CHECKING:
    from labkit.services.project import Project

__all__ = ["ReviewQueue", "proposal_mask", "review_text", "seed_prompts"]


class ReviewQueue:
    """The proposals ``reviewer`` reviews, in order, and its decisions.

    Parameters
    ----------
    project : labkit.Project
    reviewer : str
        Who reviews (yourself, or for admins another member): decisions are recorded as its.
    source : str, optional
        Only proposals of this source (``"grabcut"``, ``"sam"``, ``"pool"``, ...).
    """

    def __init__(self, project: Project, reviewer: str, *, source: str | None = None):
        self.project, self.reviewer = project, reviewer
        progress = project.progress(by="annotator")
        assigned = reviewer in progress.index and int(progress.loc[reviewer, "assigned"]) > 0
        df = project.proposals("proposed", source=source, assigned_to=reviewer if assigned else None)
        order = df["score"].astype(float).fillna(-np.inf)
        self.table = df.loc[order.sort_values(kind="stable").index]
        self.ids: list[int] = [int(i) for i in self.table.index]
        self.decisions: dict[int, str] = {}
        self.results: dict[int, int | None] = {}
        self.pos = 0
        self._shown_at: float | None = None

    # ---------------------------------------------------------------- what is shown --
    @property
    def current(self) -> int | None:
        """The proposal on screen (an annotation id), or None when none is left."""
        return self.ids[self.pos] if self.ids and self.pos < len(self.ids) else None

    @property
    def row(self) -> pd.Series:
        """The current proposal's row of ``project.proposals()``."""
        if self.current is None:
            raise IndexError("no proposal is left to review")
        return self.table.loc[self.current]

    @property
    def images(self) -> list[int]:
        """The images of the proposals, in review order, each once."""
        return list(dict.fromkeys(int(t) for t in self.table["task"]))

    def shown(self) -> None:
        """The current proposal appeared on screen: its review time starts now."""
        self._shown_at = time.monotonic()

    @property
    def seconds(self) -> float:
        """Seconds since the current proposal appeared."""
        return 0.0 if self._shown_at is None else time.monotonic() - self._shown_at

    def counts(self) -> dict[str, int]:
        """How many are left, and how many were accepted, edited, rejected in this queue."""
        done = list(self.decisions.values())
        return {"left": len(self.ids) - len(done), "accepted": done.count("accept"), "edited": done.count("edit"),
                "rejected": done.count("reject"), "total": len(self.ids)}

    def counts_text(self) -> str:
        c = self.counts()
        return (f"{c['left']} of {c['total']} proposals left · {c['accepted']} accepted · {c['edited']} edited · "
                f"{c['rejected']} rejected")

    # ------------------------------------------------------------------ moving --
    def next(self) -> bool:
        """Show the next proposal not decided yet (after the current one, then from the start)."""
        n = len(self.ids)
        for step in range(1, n + 1):
            i = (self.pos + step) % n
            if self.ids[i] not in self.decisions:
                self.pos = i
                return True
        self.pos = n  # none left
        return False

    def prev(self) -> bool:
        """Show the previous proposal not decided yet."""
        for i in range(min(self.pos, len(self.ids)) - 1, -1, -1):
            if self.ids[i] not in self.decisions:
                self.pos = i
                return True
        return False

    # --------------------------------------------------------------- deciding --
    def decide(self, decision: str, **edit: Any) -> int | None:
        """Record ``decision`` (``accept``, ``edit`` with ``geometry``/``label``/... or ``reject``) on the
        current proposal and move on; return the delivered annotation's id (None for a rejection)."""
        aid = self.current
        if aid is None:
            raise ValueError("no proposal is left to review")
        result = self.project.review(aid, decision, by=self.reviewer, seconds=round(self.seconds, 3), **edit)
        self.decisions[aid] = decision
        self.results[aid] = result
        self.next()
        return result


# ------------------------------------------------------------------ for the view --
def proposal_mask(queue: ReviewQueue) -> np.ndarray | None:
    """The current proposal as an ``(H, W)`` bool mask to draw, or None (an image-level label, none left)."""
    if queue.current is None:
        return None
    row = queue.row
    if row["kind"] == "label" or row["geometry"] is None:
        return None
    from labkit.geometry import decode_rle, geometry_to_mask

    if row["kind"] == "mask":
        return decode_rle(row["geometry"])
    image = queue.project.images().loc[int(row["task"])]
    return geometry_to_mask(row["kind"], row["geometry"], int(image["height"]), int(image["width"]))


def review_text(queue: ReviewQueue) -> str:
    """The review line: what is left and decided, and what the proposal on screen is (HTML)."""
    counts = f"<span class='labkit-review-counts'>{html.escape(queue.counts_text())}</span>"
    if queue.current is None:
        return f"<b>Review</b> · {counts} · every proposal is reviewed"
    row = queue.row
    prov = row["provenance"] if isinstance(row["provenance"], Mapping) else {}
    score = "" if row["score"] is None or row["score"] != row["score"] else f", score {float(row['score']):.2f}"
    doubt = "".join(f", {k.replace('_', '-')} {prov[k]:.2f}" for k in ("x_perplexity", "c_perplexity")
                    if isinstance(prov.get(k), (int, float)))
    return (f"<b>Review</b> · {counts} · proposal <b>#{queue.current}</b>: {html.escape(str(row['kind']))} "
            f"<b>{html.escape(str(row['label']))}</b> from {html.escape(str(row['source']))}{score}{doubt} · "
            "Enter accept · Del reject · draw or click to edit · class keys change its class")


def seed_prompts(provenance: Any) -> list[Prompt]:
    """The prompts a proposal was made from (its box, then its points), to refine it with more clicks."""
    prompts = provenance.get("prompts") if isinstance(provenance, Mapping) else None
    out = []
    for p in prompts if isinstance(prompts, list) else []:
        if isinstance(p, Mapping) and "box" in p:
            out.append(Prompt(box=[float(v) for v in p["box"]]))
        elif isinstance(p, Mapping) and "point" in p:
            out.append(Prompt(point=[float(v) for v in p["point"]], label=int(p.get("label", 1))))
    return out
