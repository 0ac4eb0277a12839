"""Annotations: add, edit, soft-delete and restore, with history and an audit trail."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from labkit._util.checks import check_json
from labkit._util.clock import utc_now
from labkit._util.memory import no_gc
from labkit.geometry import KINDS, normalize_geometry
from labkit.store import guards
from labkit.store import schema as S
from labkit.store.bulk import checked_insert, encode_many, insert_columns, raw, read_frame, stored_time
from labkit.store.classes import ClassRepository, unknown_classes
from labkit.store.context import StoreContext
from labkit.store.errors import Fix, FixableError, ProjectError, clauses
from labkit.store.images import ImageRepository, missing_images
from labkit.store.members import MemberRepository
from labkit.store.rows import check_source, checked_above, delivered, image_runs, shaped, valid_rows, warn_invalid

__all__ = ["AnnotationRepository"]

class AnnotationRepository:
    """Annotations (table ``annotations``) with their history (``annotation_history``).

    Depends on the images (sizes, for geometry checks), the members (who annotates) and
    the classes of the same project.
    """

    def __init__(self, ctx: StoreContext, images: ImageRepository, members: MemberRepository,
                 classes: ClassRepository):
        self._ctx, self._images, self._members, self._classes = ctx, images, members, classes

    def prepare(self, conn: sa.Connection, *, image: Any, kind: str, label: str, annotator: str | None,
                geometry: Any = None, score: float | None = None, source: str | None = None,
                provenance: Mapping[str, Any] | None = None, class_ids: Mapping[str, int] | None = None,
                image_row: Any = None, annotator_row: Any = None) -> dict:
        """Validate one annotation against the project; return the row to insert."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        class_ids = class_ids if class_ids is not None else self._classes.ids(conn)
        if label not in class_ids:
            raise unknown_classes([label], list(class_ids))
        img = image_row if image_row is not None else self._images.row(conn, image)
        if annotator_row is not None:
            who = annotator_row
        elif annotator is None:
            raise ValueError("an annotation needs annotator= (the registered annotator who made it)")
        else:
            who = self._members.row(conn, annotator)
        if source is None:
            source = "simulated" if who.simulated else "human"
        check_source(source)
        if who.simulated and source != "simulated":
            raise ValueError(f"annotator {who.name!r} is simulated; its annotations must have source='simulated'")
        if kind == "label":
            if geometry is not None:
                raise ValueError("an image-level label (kind='label') has no geometry; pass geometry=None")
            geom = None
        else:
            if geometry is None:
                raise ValueError(f"kind={kind!r} needs a geometry")
            geom = normalize_geometry(kind, geometry, width=img.width, height=img.height)
        if score is not None:
            score = float(score)
            if not math.isfinite(score):
                raise ValueError(f"score must be a finite number or None, got {score}")
        provenance = dict(check_json(provenance or {}, "provenance"))
        return {"image_id": img.id, "annotator_id": who.id, "kind": kind, "class_id": class_ids[label],
                "geometry": geom, "score": score, "source": source, "provenance": provenance}

    def add(self, *, image: int | str, kind: str, label: str, annotator: str,
                       geometry: Any = None, score: float | None = None, source: str | None = None,
                       provenance: Mapping[str, Any] | None = None) -> int:
        """Store one annotation and return its id.

        Parameters
        ----------
        image : int or path
            Image id (or its path).
        kind : {"label", "box", "polygon", "ellipse", "point", "mask"}
        label : str
            Class name; must be in the project's classes.
        annotator : str
            A registered annotator's name.
        geometry : optional
            Per kind, as in ``docs/data-model.md`` (``None`` for ``label``); validated against
            the image's size.
        score : float, optional
            Model confidence for machine-made annotations.
        source : str, optional
            ``human`` (default), ``sam``, ``grabcut``, ``consensus``, ``import:<format>``;
            ``simulated`` (forced) for simulated annotators.
        provenance : dict, optional
            Free-form record of how it was made (SAM prompts, model id, time spent, ...).
        """
        return self.add_many([dict(image=image, kind=kind, label=label, annotator=annotator,
                                          geometry=geometry, score=score, source=source,
                                          provenance=provenance)])[0]

    def add_many(self, records: Iterable[Mapping[str, Any]]) -> list[int]:
        """Store many annotations in one transaction (all or none); return their ids."""
        records = list(records)

        def fn(conn):
            self._ctx.policy.check_annotation_owners(
                conn, "add_annotations", [r.get("annotator") for r in records if isinstance(r, Mapping)])
            class_ids = self._classes.ids(conn)
            who, images = self.check_names(conn, records, class_ids, then="nothing was stored",
                                           action="add_annotations")
            t = utc_now()
            rows = []
            for i, r in enumerate(records):
                try:
                    rows.append(self.prepare(conn, class_ids=class_ids, **self._found(r, who, images), **r))
                except (ValueError, TypeError) as exc:
                    where = f"record {i}: " if len(records) > 1 else ""
                    if isinstance(exc, FixableError):
                        raise exc.reworded(where, "nothing was stored") from exc
                    raise type(exc)(f"{where}{exc}; nothing was stored") from exc
            self._ctx.policy.check_annotation_writes(conn, "add_annotations", [r["annotator_id"] for r in rows],
                                                     [r["image_id"] for r in rows],
                                                     sources=[r["source"] for r in rows])
            ids = self._insert_returning(conn, rows, t)
            self._ctx.audit(conn, "add_annotations", target="annotations", count=len(ids),
                            first_id=ids[0] if ids else None, on_behalf_of=_for_whom(records))
            return ids
        return self._ctx.write(fn) if records else []

    def check_names(self, conn: sa.Connection, records: Sequence[Any], class_ids: Mapping[str, int],
                    *, then: str | None = None, action: str = "add_annotations"
                    ) -> tuple[dict[Any, Any], dict[Any, Any]]:
        """The annotator and image rows ``records`` name; one ProjectError for every unknown name.

        Unknown classes, annotators and images are checked together, so a batch with
        several mistakes reports them all at once, with the records they are in (``then``
        ends the message). :meth:`prepare` then checks each record in full. An image the
        member's database login may not see is refused as ``action``.

        Returns
        -------
        annotators, images : dict
            The rows found, by the name or image id/path the records give.
        """
        def named(key: str, ok: Any) -> dict[Any, list[int]]:
            found: dict[Any, list[int]] = {}
            for i, r in enumerate(records):
                if isinstance(r, Mapping) and ok(r.get(key)):
                    found.setdefault(r[key], []).append(i)
            return found

        def where(names: dict[Any, list[int]], bad: Iterable[Any]) -> str:
            at = sorted({i for n in bad for i in names[n]})
            if len(records) == 1:
                return ""
            return f"record {at[0]}: " if len(at) == 1 else f"records {at[:20]}: "

        labels = named("label", lambda v: isinstance(v, str) and v not in class_ids)
        people = named("annotator", lambda v: isinstance(v, str))
        images = named("image", lambda v: isinstance(v, (Integral, str, Path)) and not isinstance(v, bool))
        who = self._members.find(conn, list(people))
        rows = dict(zip(images, self._images.find(conn, list(images))))
        errors: list[tuple[str, ProjectError]] = []
        if labels:
            errors.append((where(labels, labels), unknown_classes(list(labels), list(class_ids))))
        if unknown := [n for n in people if n not in who]:
            errors.append((where(people, unknown), self._members.unknown(conn, unknown)))
        if missing := [k for k, row in rows.items() if row is None]:
            self._ctx.policy.refuse_hidden_images(conn, action, [int(k) for k in missing
                                                                 if not isinstance(k, (str, Path))], write=True)
            errors.append((where(images, missing), missing_images(missing)))
        if errors:
            raise ProjectError(clauses(*(at + e.problem for at, e in errors), then),
                               fix=Fix.join(e.fix for _, e in errors))
        return who, rows

    @staticmethod
    def _found(record: Mapping[str, Any], who: Mapping[Any, Any], images: Mapping[Any, Any]) -> dict[str, Any]:
        """The rows :meth:`check_names` found for one record, as :meth:`prepare`'s ``*_row`` arguments."""
        found = {"annotator_row": who.get(record.get("annotator")), "image_row": images.get(record.get("image"))}
        return {k: v for k, v in found.items() if v is not None}

    def insert_rows(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        """Insert checked annotation rows (``image_id``, ``annotator_id``, ``kind``, ``class_id``,
        ``geometry``, ``score``, ``source``, ``provenance``) as version 1, in batched statements.

        The rows must have passed the API's checks (known kind and source, finite score,
        provenance an object, geometry from :func:`~labkit.geometry.bulk.normalize_many`):
        SQLite's row triggers, which repeat those checks, are suspended for a large batch
        (:func:`~labkit.store.bulk.checked_insert`).
        """
        if rows:
            self.insert_columns(conn, {k: [r[k] for r in rows] for k in rows[0]})

    def insert_columns(self, conn: sa.Connection, columns: Mapping[str, Sequence[Any]], *,
                       encoded: Sequence[str] = ()) -> None:
        """:meth:`insert_rows` of rows given column by column: each column a sequence of one value per row.

        The same columns, in any order (and any extra column, such as a proposal's
        ``state``); ``geometry`` and ``provenance`` hold Python values, encoded here, or
        their JSON text as :func:`~labkit.store.bulk.encode_json` writes it where
        ``encoded`` names them.
        """
        missing = [k for k in _ROW_KEYS if k not in columns]
        if missing:
            raise ValueError(f"annotation columns {missing} are missing")
        n = len(columns["kind"])
        if not n:
            return
        t = stored_time(conn, S.annotations.c.created_at, utc_now())
        values = {k: v if k in encoded or k not in ("geometry", "provenance") else encode_many(v)
                  for k, v in columns.items()}  # with any extra column, e.g. a proposal's state
        guards.stamp_as_acting(conn)  # rows that hold the database's stamps skip its row trigger
        with checked_insert(conn, S.annotations, n):
            insert_columns(conn, S.annotations, values,
                           constants={"version": 1, "created_at": t, "updated_at": t, "updated_by": self._ctx.user})

    def _insert_returning(self, conn: sa.Connection, rows: list[dict[str, Any]], t: Any) -> list[int]:
        """Insert checked rows as version 1 in batched statements; their ids in order."""
        if not rows:
            return []
        stmt = sa.insert(S.annotations).returning(S.annotations.c.id, sort_by_parameter_order=True)
        res = conn.execute(stmt, [{**row, "version": 1, "created_at": t, "updated_at": t,
                                   "updated_by": self._ctx.user} for row in rows])
        return [int(i) for i in res.scalars()]

    def _current(self, conn: sa.Connection, annotation: int, *, action: str, write: bool = True) -> Any:
        """The ``annotations`` row; ValueError if there is none.

        An annotation that exists but that the member's database login may not read
        (PostgreSQL: another's in blind mode, a withdrawn subject's) is refused as
        ``action`` with the API's reason, as on SQLite.
        """
        row = conn.execute(sa.select(S.annotations).where(S.annotations.c.id == int(annotation))).first()
        if row is not None:
            return row
        policy = self._ctx.policy
        me = policy.actor(conn)
        fact = policy.annotation_facts(conn, [int(annotation)], me).get(int(annotation))
        if fact is not None:
            if write:
                policy.check_annotation_writes(conn, action, [me.id if fact.mine else -1], [fact.image_id])
            else:
                self._check_reads(conn, action, int(annotation), fact.mine, fact.image_id, me)
        raise ValueError(f"no annotation with id {annotation}")

    def _check_reads(self, conn: sa.Connection, action: str, annotation: int, mine: bool, image: int,
                     me: Any) -> None:
        """Reading one annotation: blind mode for annotators, and no withdrawn subject's but for admins."""
        policy = self._ctx.policy
        if me.role == "admin":
            return
        if me.role == "annotator" and not mine and policy.blind(conn):
            policy.deny(action, f"read annotation {annotation}: in blind mode annotators see only their own work")
        if policy.image_facts(conn, [image], me).get(image, (False,))[0]:
            policy.deny(action, f"read annotation {annotation}: its subject withdrew consent")

    def update(self, annotation: int, *, by: str | None = None, label: str | None = None,
               geometry: Any = None, score: float | None = None,
               provenance: Mapping[str, Any] | None = None) -> int:
        """Change an annotation's class, geometry, score or provenance; return the new version.

        The database moves the previous version to the history
        (:meth:`annotation_history`), recording you as who changed it; the change goes to
        the audit log. ``by``, if it names someone other than you (admins only), is
        recorded there as ``on_behalf_of``.
        """
        def fn(conn):
            self._ctx.policy.check_by(conn, "update_annotation", by)
            row = self._current(conn, annotation, action="update_annotation")
            self._ctx.policy.check_annotation_writes(conn, "update_annotation", [row.annotator_id], [row.image_id],
                                                     by=by)
            if row.deleted_at is not None:
                raise ValueError(f"annotation {annotation} is deleted; restore it first")
            class_ids = self._classes.ids(conn)
            names = {v: k for k, v in class_ids.items()}
            who = conn.execute(sa.select(*S.MEMBER_COLUMNS).where(S.annotators.c.id == row.annotator_id)).first()
            new = self.prepare(
                conn, image=row.image_id, kind=row.kind, label=label if label is not None else names[row.class_id],
                annotator=None, annotator_row=who,
                geometry=geometry if geometry is not None else row.geometry,
                score=score if score is not None else row.score, source=row.source,
                provenance=provenance if provenance is not None else row.provenance, class_ids=class_ids)
            conn.execute(sa.update(S.annotations).where(S.annotations.c.id == row.id).values(
                class_id=new["class_id"], geometry=new["geometry"], score=new["score"],
                provenance=new["provenance"], version=row.version + 1, updated_at=utc_now(),
                updated_by=self._ctx.user))
            self._ctx.audit(conn, "update_annotation", target="annotations", target_id=row.id, on_behalf_of=by,
                            version=row.version + 1)
            return row.version + 1
        return self._ctx.write(fn)

    def delete(self, annotation: int, *, by: str | None = None) -> None:
        """Soft-delete: hidden from :meth:`annotations`, kept in history, restorable.

        ``by`` is a note, as in :meth:`update`.
        """
        self._set_deleted(annotation, by=by, deleted=True)

    def restore(self, annotation: int, *, by: str | None = None) -> None:
        """Undo :meth:`delete_annotation`."""
        self._set_deleted(annotation, by=by, deleted=False)

    def _flip_deleted(self, conn, annotation: int, *, by: str | None, deleted: bool):
        action = "delete_annotation" if deleted else "restore_annotation"
        self._ctx.policy.check_by(conn, action, by)
        row = self._current(conn, annotation, action=action)
        self._ctx.policy.check_annotation_writes(conn, action, [row.annotator_id], [row.image_id], by=by)
        if (row.deleted_at is not None) == deleted:
            raise ValueError(f"annotation {annotation} is {'already' if deleted else 'not'} deleted")
        t = utc_now()  # the database keeps the superseded version (store/guards.py)
        conn.execute(sa.update(S.annotations).where(S.annotations.c.id == row.id).values(
            deleted_at=t if deleted else None, version=row.version + 1, updated_at=t, updated_by=self._ctx.user))
        return row

    def _set_deleted(self, annotation: int, *, by: str | None, deleted: bool) -> None:
        def fn(conn):
            row = self._flip_deleted(conn, annotation, by=by, deleted=deleted)
            self._ctx.audit(conn, "delete_annotation" if deleted else "restore_annotation",
                            target="annotations", target_id=row.id, on_behalf_of=by)
        self._ctx.write(fn)

    def replace(self, delete: Iterable[int], add: Iterable[Mapping[str, Any]], *, by: str | None = None,
                restore: Iterable[int] = (), action: str = "replace_annotations",
                **details: Any) -> list[int]:
        """Soft-delete ``delete``, restore ``restore`` and store ``add``, in one transaction.

        For derived results that supersede earlier ones (a new consensus replacing the
        previous run, an adjudication and its undo): the old rows keep their history, the
        new ones are validated like :meth:`add_annotations`, and one audit entry
        (``action``, with ``details``) records it all. All or nothing. Returns the new ids.
        Only admins record other actions than ``"replace_annotations"``; ``by`` is a note,
        as in :meth:`update`.
        """
        delete, add, restore = [int(i) for i in delete], list(add), [int(i) for i in restore]

        def fn(conn):
            me = self._ctx.policy.check_annotation_owners(
                conn, action, [r.get("annotator") for r in add if isinstance(r, Mapping)])
            if action != "replace_annotations":
                self._ctx.policy.require(conn, action, "admin", what=f"record {action!r}", me=me)
            class_ids = self._classes.ids(conn)
            who, images = self.check_names(conn, add, class_ids, then="nothing was changed", action=action)
            rows = [self.prepare(conn, class_ids=class_ids, **self._found(r, who, images), **r) for r in add]
            self._ctx.policy.check_annotation_writes(conn, action, [r["annotator_id"] for r in rows],
                                                     [r["image_id"] for r in rows], by=by,
                                                     sources=[r["source"] for r in rows])
            for aid in delete:
                self._flip_deleted(conn, aid, by=by, deleted=True)
            for aid in restore:
                self._flip_deleted(conn, aid, by=by, deleted=False)
            t = utc_now()
            ids = self._insert_returning(conn, rows, t)
            self._ctx.audit(conn, action, target="annotations", on_behalf_of=by, count=len(ids),
                            first_id=ids[0] if ids else None, replaced=delete, restored=restore, **details)
            return ids
        return self._ctx.write(fn)

    def history(self, annotation: int) -> pd.DataFrame:
        """Every version of one annotation, oldest first; the last row is the current state."""
        h = S.annotation_history

        def read():
            with self._ctx.connect() as conn:
                cur = self._current(conn, annotation, action="annotation_history", write=False)
                me = self._ctx.policy.actor(conn)
                self._check_reads(conn, "annotation_history", cur.id, cur.annotator_id == me.id, cur.image_id, me)
                names = {v: k for k, v in self._classes.ids(conn).items()}
                old = conn.execute(sa.select(h).where(h.c.annotation_id == cur.id).order_by(h.c.version)).all()
            return cur, names, old
        cur, names, old = self._ctx.guard(read)
        rows = [{"version": r.version, "label": names.get(r.class_id), "geometry": r.geometry, "score": r.score,
                 "provenance": r.provenance, "deleted": r.deleted_at is not None, "valid_from": r.valid_from,
                 "valid_to": r.valid_to, "superseded_by": r.change, "changed_by": r.changed_by} for r in old]
        rows.append({"version": cur.version, "label": names.get(cur.class_id), "geometry": cur.geometry,
                     "score": cur.score, "provenance": cur.provenance, "deleted": cur.deleted_at is not None,
                     "valid_from": cur.updated_at, "valid_to": None, "superseded_by": None, "changed_by": None})
        return pd.DataFrame(rows).set_index("version")

    def table(self, *, kind: str | None = None, image: int | None = None, annotator: str | None = None,
                    source: str | None = None, label: str | None = None,
                    include_deleted: bool = False, include_withdrawn: bool = False,
                    include_proposals: bool = False) -> pd.DataFrame:
        """Annotations in the long layout: one row per object, indexed by annotation id.

        Columns: ``task`` (image id), ``worker`` (annotator name), ``label`` (class name),
        ``kind``, ``geometry``, ``score``, ``source``, ``simulated``, ``provenance``,
        ``version``, ``created_at``, ``updated_at``, ``deleted``. With a single ``kind``, the
        geometry is also spread into columns: ``x0 y0 x1 y1`` (box), ``cx cy rx ry angle``
        (ellipse), ``x y`` (point, its first point). This is crowd-kit's layout, so its
        aggregators accept ``df[["task", "worker", "label"]]`` as is.

        Annotations of images whose subject withdrew consent are left out; an admin may
        ask for them with ``include_withdrawn`` (anyone else is refused). In blind mode
        (:meth:`set_blind`, on by default) an annotator sees only its own annotations.

        Machine proposals awaiting review, and those a reviewer rejected or replaced, are
        not delivered labels and are left out (accepted ones are in); with
        ``include_proposals=True`` every proposal is in, with a ``state`` column (``None`` for
        ordinary annotations; see ``project.proposals()``).

        A stored row that is not valid (an unknown kind or source, geometry that is not
        canonical for its kind or lies outside the image: rows written before the
        database checked them) is left out with a ``UserWarning`` naming it, so one bad
        row never stops a whole read or export.
        """
        query = self._query(kind=kind, image=image, annotator=annotator, source=source, label=label,
                            include_deleted=include_deleted, include_withdrawn=include_withdrawn,
                            include_proposals=include_proposals)

        def read():
            with self._ctx.connect() as conn:
                frame = read_frame(conn, query(conn), json=("geometry", "provenance"),
                                   times=("created_at", "updated_at"))
                return frame, checked_above(conn)
        with no_gc():
            df, bad = valid_rows(*self._ctx.guard(read))
        warn_invalid(bad, stacklevel=4)
        return shaped(df, kind)

    def batches(self, *, rows: int = 50_000, by_image: bool = False, kind: str | None = None,
                include_withdrawn: bool = False, include_proposals: bool = False) -> Iterator[pd.DataFrame]:
        """:meth:`table` a batch of about ``rows`` rows at a time, every batch from one snapshot.

        For reading a project too large to hold whole (exports stream with it). Batches
        follow the annotation id; with ``by_image`` each batch holds every row of a run of
        images (consecutive ids; more than ``rows`` rows when one image has more), rows in
        annotation id order within it. Roles, blind mode and withdrawn images apply as in
        :meth:`table`; stored rows that are not valid are left out with one ``UserWarning``
        after the last batch.

        The read holds one connection (SQLite: one read transaction; PostgreSQL:
        ``REPEATABLE READ``) until the iterator is exhausted or closed, so writes that land
        meanwhile are not half seen.

        Examples
        --------
        Count a project's boxes without holding them all::

            n = sum(len(b) for b in project.store.annotations.batches(rows=10_000, kind="box"))
        """
        if rows < 1:
            raise ValueError(f"rows must be a positive number of rows, got {rows!r}")
        a = S.annotations
        query = self._query(kind=kind, image=None, annotator=None, source=None, label=None, include_deleted=False,
                            include_withdrawn=include_withdrawn, include_proposals=include_proposals)
        bad: dict[int, str] = {}
        with self._ctx.snapshot() as conn:
            q = self._ctx.guard(lambda: query(conn))
            above = checked_above(conn)

            def read(stmt: sa.Select) -> pd.DataFrame:
                with no_gc():
                    return read_frame(conn, stmt, json=("geometry", "provenance"), times=("created_at", "updated_at"))

            def frames() -> Iterator[pd.DataFrame]:
                if by_image:
                    sub = q.order_by(None).subquery()
                    counts = conn.execute(sa.select(sub.c.task, sa.func.count()).group_by(sub.c.task)
                                          .order_by(sub.c.task)).all()
                    for lo, hi in image_runs([(int(i), int(n)) for i, n in counts], rows):
                        yield read(q.where(a.c.image_id.between(lo, hi)))
                    return
                last = None
                while not (frame := read(q.limit(rows) if last is None else q.where(a.c.id > last).limit(rows))).empty:
                    last = int(frame["annotation"].iat[-1])
                    yield frame
            for frame in frames():
                with no_gc():
                    df, more = valid_rows(frame, above)
                bad.update(more)
                yield shaped(df, kind)
        warn_invalid(bad, stacklevel=3)

    def _query(self, *, kind: str | None, image: int | None, annotator: str | None, source: str | None,
               label: str | None, include_deleted: bool, include_withdrawn: bool,
               include_proposals: bool) -> Callable[[sa.Connection], sa.Select]:
        """The select of :meth:`table` for the member acting on ``conn`` (their role and blind mode)."""
        a, c, w, im = S.annotations, S.classes, S.annotators, S.images
        where = []
        if kind is not None:
            where.append(a.c.kind == kind)
        if image is not None:
            where.append(a.c.image_id == int(image))
        if annotator is not None:
            where.append(w.c.name == annotator)
        if source is not None:
            where.append(a.c.source == source)
        if label is not None:
            where.append(c.c.name == label)
        if not include_deleted:
            where.append(a.c.deleted_at.is_(None))
        if not include_withdrawn:
            where.append(a.c.image_id.not_in(sa.select(S.images.c.id).where(S.images.c.consent == "withdrawn")))

        def select(conn: sa.Connection) -> sa.Select:
            me = self._ctx.policy.actor(conn)
            self._ctx.policy.check_withdrawn_reads(conn, "read_annotations", include_withdrawn, me)
            blind = me.role == "annotator" and self._ctx.policy.blind(conn)
            return (sa.select(a.c.id.label("annotation"), a.c.image_id.label("task"), w.c.name.label("worker"),
                              c.c.name.label("label"), a.c.kind, raw(conn, a.c.geometry), a.c.score, a.c.source,
                              w.c.simulated, raw(conn, a.c.provenance), a.c.version, raw(conn, a.c.created_at),
                              raw(conn, a.c.updated_at), a.c.deleted_at.is_not(None).label("deleted"),
                              *([a.c.state] if include_proposals else []),
                              im.c.width.label("_width"), im.c.height.label("_height"))
                    .join(c, a.c.class_id == c.c.id).join(w, a.c.annotator_id == w.c.id)
                    .outerjoin(im, a.c.image_id == im.c.id).order_by(a.c.id)
                    .where(*where, *([a.c.annotator_id == me.id] if blind else []),
                           *([] if include_proposals else [delivered(conn.dialect.name)])))
        return select


_ROW_KEYS = ("image_id", "annotator_id", "kind", "class_id", "geometry", "score", "source", "provenance")


def _for_whom(records: Sequence[Mapping[str, Any]]) -> str | list[str] | None:
    """The annotators a batch was written for: one name, or the sorted names (an audit note)."""
    names = sorted({str(r["annotator"]) for r in records})
    return names[0] if len(names) == 1 else names
