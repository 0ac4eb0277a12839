"""Crowdsourced distribution (seed 001): assign images to annotators, queues and progress."""
from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from labkit._util.clock import utc_now
from labkit.store import schema as S
from labkit.store.context import StoreContext
from labkit.store.errors import PROJECT, Fix, ProjectError, command
from labkit.store.images import LIST_IMAGES
from labkit.store.members import MemberRepository

__all__ = ["AssignmentRepository"]


class AssignmentRepository:
    """Who should label which image (table ``assignments``): queues, submissions, progress."""

    def __init__(self, ctx: StoreContext, members: MemberRepository):
        self._ctx, self._members = ctx, members

    def assign(self, images: Sequence[int] | None, annotators: Sequence[str], *, overlap: int = 1) -> pd.DataFrame:
        """Give each image to ``overlap`` different annotators, keeping workloads balanced.

        Existing assignments count: an image already assigned to some of ``annotators``
        gets only the missing ones, and each annotator's current load (all its assignments
        in the project) is taken into account, so after the call the loads of
        ``annotators`` differ by at most one whenever they started equal.

        Parameters
        ----------
        images : sequence of int or None
            Image ids, in queue order; ``None`` means every image in the project.
        annotators : sequence of str
            Names of annotators with role ``annotator`` or ``admin``.
        overlap : int
            How many annotators label each image (the basis for agreement).

        Returns
        -------
        DataFrame
            The new assignments: ``image``, ``annotator``.
        """
        annotators = list(dict.fromkeys(annotators))
        if not isinstance(overlap, int) or overlap < 1:
            raise ValueError(f"overlap must be a positive integer, got {overlap!r}")
        if overlap > len(annotators):
            raise ValueError(f"overlap={overlap} needs at least {overlap} annotators; got {len(annotators)}: "
                             f"{annotators}")
        a = S.assignments

        def fn(conn: sa.Connection) -> Any:
            self._ctx.policy.require_admin(conn, "assign", "assign images")
            rows = self._members.rows(conn, annotators)
            viewers = [n for n, r in rows.items() if r.role == "viewer"]
            if viewers:
                raise ProjectError(f"viewers cannot be assigned images: {viewers}; nothing was assigned",
                                   fix=_make_annotators(viewers))
            ids = list(conn.execute(sa.select(S.images.c.id).order_by(S.images.c.id)).scalars()) \
                if images is None else [int(i) for i in images]
            known = dict(conn.execute(sa.select(S.images.c.id, S.images.c.consent)
                                      .where(S.images.c.id.in_(ids))).all())
            missing = [i for i in ids if i not in known]
            if missing:
                raise ProjectError(f"no such images: {missing[:20]}; nothing was assigned", fix=LIST_IMAGES)
            withdrawn = [i for i in ids if known[i] == "withdrawn"]
            if withdrawn and images is not None:
                raise ValueError(f"images {withdrawn[:20]} belong to subjects who withdrew consent; "
                                 "nothing was assigned")
            ids = [i for i in ids if known[i] != "withdrawn"]
            by_id = {r.id: n for n, r in rows.items()}
            load = dict.fromkeys(annotators, 0)
            for aid, cnt in conn.execute(sa.select(a.c.annotator_id, sa.func.count())
                                         .where(a.c.annotator_id.in_(list(by_id))).group_by(a.c.annotator_id)):
                load[by_id[aid]] = cnt
            have: dict[int, set[str]] = {}
            for img, aid in conn.execute(sa.select(a.c.image_id, a.c.annotator_id).where(a.c.image_id.in_(ids))):
                if aid in by_id:
                    have.setdefault(img, set()).add(by_id[aid])
            # Heap of (load, tie-break, name): the tie-break rotates so equal loads take turns.
            order = {n: i for i, n in enumerate(annotators)}
            tick = 0
            heap = [(load[n], order[n], n) for n in annotators]
            heapq.heapify(heap)
            new, t = [], utc_now()
            for img in dict.fromkeys(ids):
                need = overlap - len(have.get(img, ()))
                taken, skipped = [], []
                while need > 0 and heap:
                    ld, _, n = heapq.heappop(heap)
                    if n in have.get(img, ()):
                        skipped.append((ld, order[n], n))
                        continue
                    taken.append(n)
                    need -= 1
                for n in taken:
                    tick += 1
                    load[n] += 1
                    heapq.heappush(heap, (load[n], tick * len(annotators) + order[n], n))
                    new.append({"image_id": img, "annotator_id": rows[n].id, "status": "pending",
                                "assigned_at": t})
                for item in skipped:
                    heapq.heappush(heap, item)
            if new:
                conn.execute(sa.insert(a), new)
            self._ctx.audit(conn, "assign", target="assignments", count=len(new), overlap=overlap,
                        annotators=annotators)
            return pd.DataFrame({"image": [r["image_id"] for r in new],
                                 "annotator": [by_id[r["annotator_id"]] for r in new]})
        return self._ctx.write(fn)

    def requeue(self, images, annotator: str, *, reason: str = "") -> int:
        """Put images (back) in ``annotator``'s queue: assign them, or reopen done/skipped ones.

        For review work such as "send to relabel" from difficulty scoring; one
        transaction, audited with ``reason``. Returns how many images were (re)queued.
        """
        ids = list(dict.fromkeys(int(i) for i in images))
        a = S.assignments

        def fn(conn: sa.Connection) -> Any:
            self._ctx.policy.require_admin(conn, "requeue", "requeue images")
            who = self._members.row(conn, annotator)
            if who.role == "viewer":
                raise ProjectError(f"{annotator!r} is a viewer; viewers cannot be given images",
                                   fix=_make_annotators([annotator]))
            known = set(conn.execute(sa.select(S.images.c.id).where(S.images.c.id.in_(ids))).scalars())
            missing = [i for i in ids if i not in known]
            if missing:
                raise ProjectError(f"no such images: {missing[:20]}; nothing was queued", fix=LIST_IMAGES)
            have = dict(conn.execute(sa.select(a.c.image_id, a.c.status).where(
                a.c.annotator_id == who.id, a.c.image_id.in_(ids))).all())
            t = utc_now()
            new = [{"image_id": i, "annotator_id": who.id, "status": "pending", "assigned_at": t}
                   for i in ids if i not in have]
            if new:
                conn.execute(sa.insert(a), new)
            reopen = [i for i, st in have.items() if st != "pending"]
            if reopen:
                conn.execute(sa.update(a).where(a.c.annotator_id == who.id, a.c.image_id.in_(reopen))
                             .values(status="pending", done_at=None))
            self._ctx.audit(conn, "requeue", target="assignments", annotator=annotator, images=ids[:1000],
                        count=len(new) + len(reopen), reason=reason)
            return len(new) + len(reopen)
        return self._ctx.write(fn)

    def queue(self, annotator: str) -> list[int]:
        """Image ids still to do for ``annotator``, in the order they were assigned."""
        a = S.assignments

        def read():
            with self._ctx.connect() as conn:
                me = self._ctx.policy.actor(conn)
                if me.role == "annotator" and me.name != annotator:
                    self._ctx.policy.deny("queue", f"read {annotator!r}'s queue: annotators see only their own")
                who = self._members.row(conn, annotator)
                return list(conn.execute(sa.select(a.c.image_id).join(S.images, S.images.c.id == a.c.image_id)
                                         .where(a.c.annotator_id == who.id, a.c.status == "pending",
                                                S.not_withdrawn(S.images.c.consent))
                                         .order_by(a.c.id)).scalars())
        return self._ctx.guard(read)

    def submit(self, image: int, *, annotator: str, status: str = "done") -> None:
        """Mark an assigned image as ``done`` (or ``skipped``) for ``annotator``.

        Annotators submit their own work; an admin may submit for anyone (recorded as
        the admin's action, naming the annotator).
        """
        if status not in ("done", "skipped", "pending"):
            raise ValueError(f"status must be 'done', 'skipped' or 'pending', got {status!r}")
        a = S.assignments

        def fn(conn: sa.Connection) -> Any:
            self._ctx.policy.check_by(conn, "submit", annotator)
            who = self._members.row(conn, annotator)
            self._ctx.policy.require(conn, "submit", "admin", "annotator", what="submit work")
            res = conn.execute(sa.update(a).where(a.c.image_id == int(image), a.c.annotator_id == who.id)
                               .values(status=status, done_at=None if status == "pending" else utc_now()))
            if res.rowcount == 0:
                raise ProjectError(f"image {image} is not assigned to {annotator!r}",
                                   fix=Fix(f"project.queue({annotator!r}) lists their images"))
            self._ctx.audit(conn, "submit", target="images", target_id=int(image), annotator=annotator,
                            status=status)
        self._ctx.write(fn)

    def progress(self, *, by: str = "annotator") -> pd.DataFrame:
        """Done / total per annotator (``by="annotator"``) or per image (``by="image"``).

        Columns: ``assigned``, ``done``, ``skipped``, ``pending``, ``fraction_done``.
        Annotators see only their own assignments (their own row, and per image only
        their share); admins and viewers see everyone's.
        """
        if by not in ("annotator", "image"):
            raise ValueError(f"by must be 'annotator' or 'image', got {by!r}")
        a, w = S.assignments, S.annotators
        key = w.c.name.label("annotator") if by == "annotator" else a.c.image_id.label("image")
        stmt = sa.select(key, a.c.status).join(w, a.c.annotator_id == w.c.id)

        def read() -> pd.DataFrame:
            with self._ctx.connect() as conn:
                me = self._ctx.policy.actor(conn)
                q = stmt.where(a.c.annotator_id == me.id) if me.role == "annotator" else stmt
                return self._ctx.read_frame(q, conn)
        df = self._ctx.guard(read)
        cols = ["assigned", "done", "skipped", "pending", "fraction_done"]
        if df.empty:
            return pd.DataFrame(columns=cols).rename_axis(by)
        out = pd.crosstab(df[by], df["status"]).reindex(columns=["done", "skipped", "pending"], fill_value=0)
        out.insert(0, "assigned", out.sum(axis=1))
        out["fraction_done"] = (out["done"] + out["skipped"]) / out["assigned"]
        out.columns.name = None
        return out


def _make_annotators(viewers: list[str]) -> Fix:
    """The fix for viewers given work: an admin makes them annotators."""
    return Fix("make them annotators first with "
               + " and ".join(f"project.set_role({n!r}, 'annotator')" for n in viewers),
               "make them annotators first with "
               + " and ".join(command("annotators", "set-role", "-P", PROJECT, n, "annotator") for n in viewers))
