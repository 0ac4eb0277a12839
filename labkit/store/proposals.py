"""Proposals: annotations a model or a vendor made, waiting for a person's review.

A proposal is a row of ``annotations`` whose ``state`` is not NULL (schema 5). Models
(``sam``, ``grabcut``, the model pool ``pool``) and vendors' pre-labels
(``import:<format>``) make them; a person reviews each one, once::

    proposed ──accept──▶ accepted   delivered as it is
             ──edit────▶ edited     a new annotation of the reviewer replaces it (replaced_by)
             ──reject──▶ rejected   never delivered

Only an ordinary annotation (state NULL) or an accepted proposal is a delivered label:
agreement, consensus, exports and the audit leave the others out unless asked
(``project.annotations(include_proposals=True)``). Who reviewed and when is stored with
the proposal; how long the review took goes to its provenance (``review``), next to the
model's own (prompts, segmenter or pool, model id and hash, score).

Rules (the database repeats them, :mod:`labkit.store.proposal_guards`): admins store
proposals; admins review any, annotators those on images assigned to them, as themselves;
viewers read them. :func:`labkit.models.prelabel` makes proposals in bulk; the
Labeler's review mode (``Labeler(project, annotator=..., review=True)``) walks them.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from labkit._util.checks import check_choice, check_json
from labkit._util.clock import utc_now
from labkit.store import schema as S
from labkit.store.annotations import AnnotationRepository
from labkit.store.classes import ClassRepository
from labkit.store.context import StoreContext
from labkit.store.errors import FixableError
from labkit.store.members import MemberRepository

__all__ = ["DECISIONS", "ProposalRepository", "is_proposal_source"]

#: What a reviewer decides, and the state it leaves the proposal in.
DECISIONS = {"accept": "accepted", "edit": "edited", "reject": "rejected"}


def is_proposal_source(source: Any) -> bool:
    """Whether annotations of ``source`` can be proposals: a model's or a vendor's import.

    Examples
    --------
    >>> is_proposal_source("grabcut"), is_proposal_source("import:coco"), is_proposal_source("human")
    (True, True, False)
    """
    return isinstance(source, str) and (source in S.PROPOSAL_SOURCES or (source.startswith("import:")
                                                                         and len(source) > 7))


class ProposalRepository:
    """Proposals in ``annotations`` (see the module docstring): store, list and review them.

    Depends on the annotations (validation of what is stored), the members (who reviews)
    and the classes of the same project.
    """

    def __init__(self, ctx: StoreContext, annotations: AnnotationRepository, members: MemberRepository,
                 classes: ClassRepository):
        self._ctx, self._annotations, self._members, self._classes = ctx, annotations, members, classes

    # ------------------------------------------------------------------ store --
    def add(self, records: Iterable[Mapping[str, Any]]) -> list[int]:
        """Store proposals (state ``proposed``) in one transaction, all or none; return their ids.

        Each record is an annotation as for ``project.add_annotations`` (``image``,
        ``kind``, ``label``, ``annotator``, ``geometry``, ``score``, ``source``,
        ``provenance``) whose ``source`` is a model's (``sam``, ``grabcut``, ``pool``) or
        an import's (``import:<format>``). Admins only.
        """
        records = list(records)

        def fn(conn: sa.Connection) -> list[int]:
            self._ctx.policy.require(conn, "add_proposals", "admin", what="store proposals")
            class_ids = self._classes.ids(conn)
            who, images = self._annotations.check_names(conn, records, class_ids, then="nothing was stored",
                                                        action="add_proposals")
            rows = []
            for i, r in enumerate(records):
                where = f"record {i}: " if len(records) > 1 else ""
                if not is_proposal_source(r.get("source")):
                    raise ValueError(f"{where}a proposal's source is {r.get('source')!r}; expected one of "
                                     f"{list(S.PROPOSAL_SOURCES)} or 'import:<format>'; nothing was stored")
                found = {"annotator_row": who.get(r.get("annotator")), "image_row": images.get(r.get("image"))}
                try:
                    rows.append(self._annotations.prepare(
                        conn, class_ids=class_ids, **{k: v for k, v in found.items() if v is not None}, **r))
                except (ValueError, TypeError) as exc:
                    if isinstance(exc, FixableError):
                        raise exc.reworded(where, "nothing was stored") from exc
                    raise type(exc)(f"{where}{exc}; nothing was stored") from exc
            if not rows:
                return []
            t, a = utc_now(), S.annotations
            values = [{**row, "state": "proposed", "version": 1, "created_at": t, "updated_at": t,
                       "updated_by": self._ctx.user} for row in rows]
            ids = [int(i) for i in conn.execute(sa.insert(a).returning(a.c.id, sort_by_parameter_order=True),
                                                values).scalars()]
            self._ctx.audit(conn, "add_proposals", target="annotations", count=len(ids), first_id=ids[0],
                            sources=sorted({str(r["source"]) for r in rows}))
            return ids
        return self._ctx.write(fn) if records else []

    # ------------------------------------------------------------------- read --
    def table(self, state: str | Sequence[str] | None = "proposed", *, source: str | None = None,
              image: int | None = None, assigned_to: str | None = None, include_deleted: bool = False
              ) -> pd.DataFrame:
        """Proposals in the long layout, one row per proposal, indexed by annotation id.

        Parameters
        ----------
        state : str, sequence of str or None, default "proposed"
            ``"proposed"`` (waiting for review), ``"accepted"``, ``"edited"``,
            ``"rejected"``, several of them, or None for every proposal.
        source : str, optional
            Only this source (``"grabcut"``, ``"sam"``, ``"pool"``, ``"import:coco"``...).
        image : int, optional
            Only this image's.
        assigned_to : str, optional
            Only those of images assigned to this member (a reviewer's queue).
        include_deleted : bool
            Also soft-deleted proposals.

        Returns
        -------
        pandas.DataFrame
            Index ``annotation``; columns ``task`` (image id), ``worker`` (in whose name it
            was stored), ``label``, ``kind``, ``geometry``, ``score``, ``source``,
            ``provenance``, ``state``, ``reviewed_by``, ``reviewed_at``, ``replaced_by``
            (the id of the annotation an edit made, else missing), ``final_label``,
            ``final_kind``, ``final_geometry`` (what was delivered: the proposal itself
            when accepted, its replacement when edited, missing otherwise), ``review_s``
            (seconds the review took, when the reviewer's tool recorded it), ``version``,
            ``created_at``, ``updated_at``, ``deleted``. Rows are in id order.

        Admins and viewers read every proposal, annotators those of images assigned to
        them; only admins read those of subjects who withdrew consent.
        """
        states = _states(state)
        a, c, w = S.annotations, S.classes, S.annotators
        r, rc = a.alias("r"), c.alias("rc")
        stmt = (sa.select(a.c.id.label("annotation"), a.c.image_id.label("task"), w.c.name.label("worker"),
                          c.c.name.label("label"), a.c.kind, a.c.geometry, a.c.score, a.c.source, a.c.provenance,
                          a.c.state, a.c.reviewed_by, a.c.reviewed_at, a.c.replaced_by,
                          rc.c.name.label("_r_label"), r.c.kind.label("_r_kind"), r.c.geometry.label("_r_geometry"),
                          r.c.annotator_id.label("_r_annotator"), a.c.version, a.c.created_at, a.c.updated_at,
                          a.c.deleted_at)
                .join(c, a.c.class_id == c.c.id)
                .outerjoin(w, a.c.annotator_id == w.c.id)  # PostgreSQL, blind mode: others' member rows are hidden
                .outerjoin(r, a.c.replaced_by == r.c.id).outerjoin(rc, r.c.class_id == rc.c.id)
                .where(a.c.state.in_(states)).order_by(a.c.id))
        if source is not None:
            stmt = stmt.where(a.c.source == source)
        if image is not None:
            stmt = stmt.where(a.c.image_id == int(image))
        if assigned_to is not None:
            m = S.annotators.alias("m")  # not the outer query's annotators
            stmt = stmt.where(a.c.image_id.in_(sa.select(S.assignments.c.image_id).join(
                m, S.assignments.c.annotator_id == m.c.id).where(m.c.name == assigned_to)))
        if not include_deleted:
            stmt = stmt.where(a.c.deleted_at.is_(None))

        def read() -> tuple[pd.DataFrame, Any, bool]:
            with self._ctx.connect() as conn:
                me = self._ctx.policy.actor(conn)
                q = stmt
                if me.role != "admin":
                    q = q.where(a.c.image_id.not_in(sa.select(S.images.c.id).where(S.images.c.consent == "withdrawn")))
                if me.role == "annotator":
                    q = q.where(a.c.image_id.in_(sa.select(S.assignments.c.image_id).where(
                        S.assignments.c.annotator_id == me.id)))
                blind = me.role == "annotator" and self._ctx.policy.blind(conn)
                return self._ctx.read_frame(q, conn), me, blind
        df, me, blind = self._ctx.guard(read)
        return _finish(df, hide_others=me.id if blind else None)

    def done_images(self, *, prelabel: str, model_id: str) -> set[int]:
        """Images holding live proposals of one pre-labeler and model (any state): resumable runs skip them.

        Admins only (who pre-label); reads two columns, not the geometry.
        """
        a = S.annotations

        def read() -> list[Any]:
            with self._ctx.connect() as conn:
                self._ctx.policy.require(conn, "add_proposals", "admin", what="store proposals")
                return list(conn.execute(sa.select(a.c.image_id, a.c.provenance).where(
                    a.c.state.is_not(None), a.c.deleted_at.is_(None), a.c.source != "human")).all())
        rows = self._ctx.guard(read)
        return {int(image) for image, prov in rows if isinstance(prov, Mapping) and prov.get("prelabel") == prelabel
                and prov.get("model_id") == model_id}

    # ----------------------------------------------------------------- review --
    def review(self, annotation_id: int, decision: str, *, by: str, geometry: Any = None, label: str | None = None,
               kind: str | None = None, source: str | None = None, provenance: Mapping[str, Any] | None = None,
               seconds: float | None = None) -> int | None:
        """Accept, edit or reject one proposal, as reviewer ``by``; return the delivered annotation's id.

        Parameters
        ----------
        annotation_id : int
            The proposal's id (state ``proposed``).
        decision : {"accept", "edit", "reject"}
            ``accept``: the proposal is delivered as it is. ``reject``: it never is.
            ``edit``: a new annotation of ``by`` (``geometry`` and/or ``label`` changed,
            the rest as proposed) replaces it; the proposal records its id
            (``replaced_by``) and the new one the proposal's (``provenance["replaces"]``).
        by : str
            Who reviewed: yourself, or (admins only) the member you record it for. An
            annotator reviews only proposals of images assigned to it.
        geometry, label : optional
            The edit (``decision="edit"`` only).
        kind, source, provenance : optional
            Of the new annotation of an edit: its kind (default: the proposal's), source
            (default ``"human"``; ``"sam"``/``"grabcut"`` when drawn with a segmenter) and
            provenance (prompts, ...).
        seconds : float, optional
            How long the review took (recorded in the proposal's provenance, ``review``).

        Returns
        -------
        int or None
            The proposal's id (accept), the new annotation's id (edit), or None (reject).
        """
        decision = check_choice(decision, list(DECISIONS), "review decision")
        if decision != "edit" and any(v is not None for v in (geometry, label, kind, source, provenance)):
            raise ValueError(f"decision={decision!r} takes no geometry, label, kind, source or provenance; "
                             "to change the proposal, review it with decision='edit'")
        if decision == "edit" and geometry is None and label is None:
            raise ValueError("decision='edit' needs the change: geometry=... and/or label=...")
        if seconds is not None and (isinstance(seconds, bool) or not np.isfinite(float(seconds)) or seconds < 0):
            raise ValueError(f"seconds is {seconds!r}; expected a number >= 0 (how long the review took)")
        extra = dict(check_json(provenance or {}, "provenance"))

        def fn(conn: sa.Connection) -> int | None:
            action = "review_proposal"
            policy = self._ctx.policy
            policy.check_by(conn, action, by)
            policy.require(conn, action, "admin", "annotator", what="review proposals")
            reviewer = self._members.row(conn, by)
            if reviewer.role not in ("admin", "annotator"):
                policy.deny(action, f"record a review by {by!r}, a {reviewer.role}: admins and annotators review")
            row = self._row(conn, annotation_id, action)
            if row.state is None:
                raise ValueError(f"annotation {annotation_id} is not a proposal (it is an ordinary annotation)")
            if row.state != "proposed":
                raise ValueError(f"proposal {annotation_id} was already reviewed: {row.state} by {row.reviewed_by} "
                                 f"at {row.reviewed_at}")
            if row.deleted_at is not None:
                raise ValueError(f"proposal {annotation_id} is deleted; restore it first")
            if reviewer.role == "annotator":
                image = int(row.image_id)
                facts = policy.image_facts(conn, [image], reviewer).get(image)
                if facts is not None and facts.withdrawn:
                    policy.deny(action, f"review proposal {annotation_id}: the subject of image {image} withdrew "
                                        "consent", image=image)
                if image not in policy.assigned(conn, reviewer.id, [image]):
                    policy.deny(action, f"record a review by {by!r} of proposal {annotation_id}: image {image} is "
                                        f"not assigned to {by!r}", image=image)
            new_id = None
            if decision == "edit":
                names = {v: k for k, v in self._classes.ids(conn).items()}
                record = {"image": int(row.image_id), "kind": kind or row.kind,
                          "label": label if label is not None else names[row.class_id], "annotator": by,
                          "geometry": geometry if geometry is not None else row.geometry,
                          "source": source or "human",
                          "provenance": {**extra, "replaces": int(row.id)}}
                if record["kind"] != row.kind and geometry is None:
                    raise ValueError(f"an edit to kind {record['kind']!r} needs its geometry")
                new = self._annotations.prepare(conn, **record)
                policy.check_annotation_writes(conn, action, [new["annotator_id"]], [new["image_id"]], by=by,
                                               sources=[new["source"]])
                t = utc_now()
                a = S.annotations
                new_id = int(conn.execute(sa.insert(a).returning(a.c.id), {
                    **new, "version": 1, "created_at": t, "updated_at": t,
                    "updated_by": self._ctx.user}).scalar_one())
            prov = dict(row.provenance) if isinstance(row.provenance, Mapping) else {}
            if seconds is not None:
                prov["review"] = {"decision": decision, "seconds": round(float(seconds), 3)}
            conn.execute(sa.update(S.annotations).where(S.annotations.c.id == row.id).values(
                state=DECISIONS[decision], reviewed_by=by, reviewed_at=utc_now(), replaced_by=new_id,
                provenance=prov, version=row.version + 1, updated_at=utc_now(), updated_by=self._ctx.user))
            self._ctx.audit(conn, action, target="annotations", target_id=int(row.id), on_behalf_of=by,
                            decision=decision, replaced_by=new_id)
            return int(row.id) if decision == "accept" else new_id
        return self._ctx.write(fn)

    def _row(self, conn: sa.Connection, annotation: int, action: str) -> Any:
        """The proposal's ``annotations`` row; refused (PostgreSQL: hidden) or ValueError if missing."""
        if isinstance(annotation, bool) or not isinstance(annotation, (int, np.integer)):
            raise ValueError(f"annotation is {annotation!r}; expected an annotation id (an int)")
        row = conn.execute(sa.select(S.annotations).where(S.annotations.c.id == int(annotation))).first()
        if row is not None:
            return row
        policy = self._ctx.policy
        me = policy.actor(conn)
        fact = policy.annotation_facts(conn, [int(annotation)], me).get(int(annotation))
        if fact is not None:
            policy.deny(action, f"review annotation {annotation}: it is on image {fact.image_id}, which is "
                                "not assigned to you", image=fact.image_id)
        raise ValueError(f"no annotation with id {annotation}")


def _states(state: str | Sequence[str] | None) -> list[str]:
    if state is None:
        return list(S.REVIEW_STATES)
    states = [state] if isinstance(state, str) else list(state)
    if not states:
        raise ValueError(f"state is empty; expected one of {list(S.REVIEW_STATES)}, several, or None for all")
    return [check_choice(s, list(S.REVIEW_STATES), "proposal state") for s in states]


def _finish(df: pd.DataFrame, *, hide_others: int | None) -> pd.DataFrame:
    """The read rows as :meth:`ProposalRepository.table` documents them."""
    if hide_others is not None:  # blind mode: another annotator's replacement is not shown
        others = df["_r_annotator"].notna() & (df["_r_annotator"] != hide_others)
        df.loc[others, ["_r_label", "_r_kind", "_r_geometry"]] = None
    accepted = df["state"] == "accepted"
    df["final_label"] = np.where(accepted, df["label"], df["_r_label"])
    df["final_kind"] = np.where(accepted, df["kind"], df["_r_kind"])
    df["final_geometry"] = [g if ok else rg for ok, g, rg in zip(accepted, df["geometry"], df["_r_geometry"])]
    df["final_label"] = df["final_label"].where(accepted | (df["state"] == "edited"), None)
    df["review_s"] = [float(p["review"]["seconds"]) if isinstance(p, Mapping) and isinstance(p.get("review"), Mapping)
                      and p["review"].get("seconds") is not None else np.nan for p in df["provenance"]]
    df["replaced_by"] = df["replaced_by"].astype("Int64")
    df["deleted"] = df.pop("deleted_at").notna()
    df = df.drop(columns=["_r_label", "_r_kind", "_r_geometry", "_r_annotator"]).set_index("annotation")
    cols = ["task", "worker", "label", "kind", "geometry", "score", "source", "provenance", "state", "reviewed_by",
            "reviewed_at", "replaced_by", "final_label", "final_kind", "final_geometry", "review_s", "version",
            "created_at", "updated_at", "deleted"]
    return df[cols]
