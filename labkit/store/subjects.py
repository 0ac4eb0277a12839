"""Data subjects: consent, purpose, withdrawal, retention, and the database side of erasure (seed 003).

An image may show a *data subject*, a person identified by an id such as AI-Hub's
``metaid``. labkit records each subject's consent status and purpose, lets an admin
withdraw consent (the data stays but is no longer processed) or erase a subject
entirely, and keeps a retention period for the privacy report.

Erasure spans more than the database (caches, predictions, reports), so its workflow is
:func:`labkit.services.erasure.forget_subject`. This module does the part that is the
store's: :meth:`SubjectRepository.erase_records` deletes the rows in one transaction and
returns an :class:`ErasedRecords` saying what the other parts must erase, and
:meth:`SubjectRepository.compact` makes the deleted rows unrecoverable from the files.
The blocks of the hash chain that held the deleted rows or the scrubbed audit entries
are restated in the same transaction (:mod:`labkit.store.chain`), so the erasure is a
legitimate change that ``labkit verify`` accepts, and no digest of the erased rows is left.
"""
from __future__ import annotations

import bisect
import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from labkit._util.clock import utc_now
from labkit.privacy.pseudonyms import MIN_INFIX, IdMatcher
from labkit.store import chain
from labkit.store import schema as S
from labkit.store.bulk import chunks, insert_many, stored_time
from labkit.store.context import StoreContext
from labkit.store.engine import BUSY_TIMEOUT_MS
from labkit.store.errors import PROJECT, Fix, ProjectError, command

__all__ = ["ERASED", "ErasedRecords", "SubjectRepository", "apply_scrub", "exports_holding", "scrub_audit",
           "scrub_plan"]

ERASED = "<erased>"


@dataclass(frozen=True)
class ErasedRecords:
    """What :meth:`SubjectRepository.erase_records` deleted, and what is left to erase elsewhere.

    Attributes
    ----------
    subject : str
    root : Path
        The project folder, where derived files live.
    counts : dict
        Rows deleted per table, and audit entries scrubbed.
    sha256s : tuple of str
        Content hashes of the erased images (caches and predictions are keyed by them).
    stored_paths : tuple of str
        The images' paths as stored (reports may show them).
    files : tuple of Path
        The images' files, absolute.
    since : datetime
        When the subject's first image was added (a report made since may show them).
    image_ids : tuple of int
        The erased images' ids (exports record the ids they held).
    exports : tuple of dict
        The audit log's ``export`` entries that held the erased images, read before the
        log was scrubbed: ``at``, ``actor`` and the entry's details (``path``,
        ``format``, ``recipient``, ``export_id``...). An entry made before labkit
        recorded an export's image ids is included when it was made since ``since``
        (``"image_ids"`` is then missing: it may hold them).
    """

    subject: str
    root: Path
    counts: dict[str, int]
    sha256s: tuple[str, ...]
    stored_paths: tuple[str, ...]
    files: tuple[Path, ...]
    since: datetime
    image_ids: tuple[int, ...] = ()
    exports: tuple[dict[str, Any], ...] = ()

    @property
    def needles(self) -> list[str]:
        """Text that identifies the subject's data: the id, the image hashes and paths."""
        return [self.subject, *self.sha256s, *self.stored_paths]


class SubjectRepository:
    """The subjects register (table ``subjects``) and the project's retention period."""

    def __init__(self, ctx: StoreContext):
        self._ctx = ctx

    def table(self) -> pd.DataFrame:
        """Data subjects indexed by id: consent, purpose, dates, image count. Admins only."""
        def fn() -> pd.DataFrame:
            with self._ctx.connect() as conn:
                self._ctx.policy.require_admin(conn, "read_subjects", "read the subjects register")
                sub = self._ctx.read_frame(sa.select(S.subjects).order_by(S.subjects.c.id), conn)
                counts = self._ctx.read_frame(sa.select(S.images.c.subject, sa.func.count().label("images"),
                                                        sa.func.min(S.images.c.added_at).label("first_added"))
                                              .group_by(S.images.c.subject), conn)
            out = sub.drop(columns="id").merge(counts, on="subject", how="left").set_index("subject")
            out["images"] = out["images"].fillna(0).astype(int)
            return out
        return self._ctx.guard(fn)

    def set_consent(self, subject: str, consent: str = "given", *, by: str | None = None,
                    purpose: str | None = None) -> None:
        """Record a subject's consent (``"given"``, ``"withdrawn"``, ``"unknown"``) and purpose. Admins only.

        You are the actor; ``by`` (e.g. ``"dpo"``, whoever asked) is recorded as ``on_behalf_of``.
        """
        if consent not in S.CONSENT:
            raise ValueError(f"consent must be one of {S.CONSENT}, got {consent!r}")

        def fn(conn: sa.Connection) -> None:
            self._ctx.policy.check_by(conn, "set_consent", by)
            self._ctx.policy.require_admin(conn, "set_consent", "record consent")
            row = self.row(conn, subject)
            t = utc_now()
            values = {"consent": consent,
                      "consent_at": t if consent == "given" else row.consent_at,
                      "withdrawn_at": t if consent == "withdrawn" else None}
            if purpose is not None:
                values["purpose"] = purpose
            conn.execute(sa.update(S.subjects).where(S.subjects.c.id == row.id).values(**values))
            conn.execute(sa.update(S.images).where(S.images.c.subject == subject).values(consent=consent))
            self._ctx.audit(conn, "set_consent", target="subjects", target_id=row.id, on_behalf_of=by,
                            subject=subject, before=row.consent, after=consent, purpose=purpose)
        self._ctx.write(fn)

    def withdraw_consent(self, subject: str, *, by: str | None = None) -> None:
        """The subject withdrew consent: keep their data, stop processing it.

        From now on their images are left out of ``images()``, ``annotations()``, queues
        and new assignments, pool training and scoring, and exports; nobody but an admin
        can read them. ``set_consent(subject, "given", ...)`` undoes it;
        ``forget_subject`` erases them.
        """
        self.set_consent(subject, "withdrawn", by=by)

    def set_retention(self, days: int | None, *, by: str | None = None) -> None:
        """Keep subjects' data for ``days`` after collection (``None``: no period). Admins only."""
        if days is not None and (not isinstance(days, int) or days <= 0):
            raise ValueError(f"retention must be a positive number of days or None, got {days!r}")

        def fn(conn: sa.Connection) -> None:
            self._ctx.policy.check_by(conn, "set_retention", by)
            self._ctx.policy.require_admin(conn, "set_retention", "set the retention period")
            conn.execute(sa.delete(S.meta).where(S.meta.c.key == "retention_days"))
            conn.execute(sa.insert(S.meta).values(key="retention_days", value=days))
            self._ctx.audit(conn, "set_retention", target="project", on_behalf_of=by, days=days)
        self._ctx.write(fn)

    def retention(self) -> int | None:
        """The retention period in days, or ``None``."""
        with self._ctx.connect() as conn:
            return conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "retention_days")).scalar()

    # ------------------------------------------------------------------ erasure --
    def erase_records(self, subject: str, *, by: str | None = None, tombstone: str) -> ErasedRecords:
        """Delete a subject's rows everywhere in one transaction; return what else to erase.

        The subject's images, their annotations and annotation history, assignments and
        the subject record are deleted, and every audit-log entry that names the subject,
        its image hashes or paths has them replaced by ``"<erased>"`` (:func:`scrub_audit`).
        The hash chain's blocks that held them are restated (a block of kind
        ``"erasure"``), recording whether each still matched its seal just before. The
        audit log gets a tombstone (``forget_subject``, with ``tombstone`` and counts;
        never whom). The exports that held the images are returned
        (``ErasedRecords.exports``) for the export eraser. Admins only, acting as themselves.
        """
        a, h, im = S.annotations, S.annotation_history, S.images

        def fn(conn: sa.Connection) -> ErasedRecords:
            self._ctx.policy.check_by(conn, "forget_subject", by)
            self._ctx.policy.require_admin(conn, "forget_subject", "erase data subjects")
            row = self.row(conn, subject)
            imgs = conn.execute(sa.select(im.c.id, im.c.sha256, im.c.path, im.c.added_at)
                                .where(im.c.subject == subject)).all()
            ids = [r.id for r in imgs]
            ann_ids = sa.select(a.c.id).where(a.c.image_id.in_(ids))
            # Only digests and paths go in needles: image ids say nothing of the person.
            needles = [subject, *{r.sha256 for r in imgs}, *{r.path for r in imgs}]
            scrubbed = scrub_plan(conn, needles)
            held = chain.blocks_holding(conn, {
                "images": ids, "annotations": conn.execute(ann_ids).scalars().all(),
                "annotation_history": conn.execute(sa.select(h.c.id).where(h.c.annotation_id.in_(ann_ids)))
                .scalars().all(), "audit_log": list(scrubbed)})
            before = chain.intact(conn, held)  # an erasure must not launder an earlier edit
            counts = {
                "annotation_history": conn.execute(sa.delete(h).where(h.c.annotation_id.in_(ann_ids))).rowcount,
                "annotations": conn.execute(sa.delete(a).where(a.c.image_id.in_(ids))).rowcount,
                "assignments": conn.execute(sa.delete(S.assignments).where(
                    S.assignments.c.image_id.in_(ids))).rowcount,
                "images": conn.execute(sa.delete(im).where(im.c.id.in_(ids))).rowcount,
                "subjects": conn.execute(sa.delete(S.subjects).where(S.subjects.c.id == row.id)).rowcount,
            }
            since = min((r.added_at for r in imgs), default=row.created_at)
            exports = exports_holding(conn, ids, since)  # before the scrub rewrites their paths
            counts["audit_entries_scrubbed"] = apply_scrub(conn, scrubbed)
            counts = {k: int(v) for k, v in counts.items()}
            chain.seal(conn, "erasure", restate=held, intact=before)
            self._ctx.audit(conn, "forget_subject", target="subjects", on_behalf_of=by, tombstone=tombstone,
                            **counts)
            return ErasedRecords(
                subject=subject, root=self._ctx.root, counts=counts,
                sha256s=tuple(sorted({r.sha256 for r in imgs})), stored_paths=tuple(r.path for r in imgs),
                files=tuple(self._ctx.resolve(r.path) for r in imgs), since=since,
                image_ids=tuple(sorted(ids)), exports=exports)
        return self._ctx.write(fn)

    def compact(self, *, needles: Sequence[str] = (), wait: float = 10.0) -> list[str]:
        """Make deleted rows unrecoverable from the database files, as far as the engine allows.

        SQLite: labkit's connections overwrite deleted content (``secure_delete``); the
        write-ahead log, which still holds the old pages, is checkpointed into
        ``project.db`` and truncated to zero bytes (``PRAGMA wal_checkpoint(TRUNCATE)``),
        waiting up to ``wait`` seconds for other connections' reads to end. Then
        ``project.db`` is searched for ``needles`` (those of six characters or more, as
        whole tokens): deleted content that a tool without ``secure_delete`` left in free
        space is removed by rebuilding the file (``VACUUM``) and truncating the log again.
        PostgreSQL: the tables are vacuumed (the server's files are its own).

        Call it again after closing the other connections when it warned.

        Parameters
        ----------
        needles : sequence of str
            Text of the erased rows (subject id, image hashes, paths) to search the file for.
        wait : float
            Seconds to wait for other connections' read transactions.

        Returns
        -------
        list of str
            Warnings: what could not be done, and how to finish it.
        """
        if wait < 0:
            raise ValueError(f"wait is {wait!r}; expected a number of seconds >= 0")
        if self._ctx.backend == "sqlite":
            return self._compact_sqlite(Path(str(self._ctx.engine.url.database)), needles, wait)
        with self._ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for t in ("annotation_history", "annotations", "assignments", "images", "subjects", "audit_log"):
                try:
                    conn.exec_driver_sql(f"VACUUM {t}")
                except sa.exc.DBAPIError as exc:  # only the owner may vacuum
                    return [f"VACUUM {t} failed ({exc.orig}); dead rows stay on disk until autovacuum"]
        return []

    def _compact_sqlite(self, db: Path, needles: Sequence[str], wait: float) -> list[str]:
        found = _file_search(needles)
        raw = self._ctx.engine.raw_connection()  # VACUUM needs a connection outside any transaction
        try:
            con = raw.driver_connection
            if not isinstance(con, sqlite3.Connection):
                raise RuntimeError(f"expected a sqlite3 connection, got {type(con).__name__}")
            con.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
            try:
                blocked = _truncate_wal(con, wait)
                if blocked or not found(db):
                    return blocked
                try:
                    con.execute("VACUUM")
                except sqlite3.OperationalError as exc:  # a writer held the database past `wait`
                    return [f"VACUUM failed ({exc}); project.db may keep erased data in free space until "
                            "project.store.subjects.compact() runs again"]
                blocked = _truncate_wal(con, wait)
                if blocked or not found(db):
                    return blocked
                return ["project.db still names the erased subject after VACUUM: rows that were not erased "
                        "mention its id, an image hash or path (free text in other images' attributes or "
                        "annotations, or the same image file under another subject); edit them, then run "
                        "project.store.subjects.compact()"]
            finally:
                con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        finally:
            raw.close()

    # ------------------------------------------------- inside a transaction --
    def register(self, conn: sa.Connection, subjects: Sequence[str | None], *, consent: str,
                 purpose: str | None) -> dict[str, str]:
        """Create missing subjects; return every named subject's consent status."""
        if consent not in ("given", "unknown"):
            raise ValueError(f"consent for new subjects must be 'given' or 'unknown', got {consent!r}")
        names = sorted({s for s in subjects if s is not None})
        bad = [s for s in names if not isinstance(s, str) or not s.strip()]
        if bad:
            raise ValueError(f"subject ids must be non-empty strings, got {bad[:5]}")
        t = utc_now()
        have = {k: v for chunk in chunks(names) for k, v in conn.execute(  # IN lists under the bind limit
            sa.select(S.subjects.c.subject, S.subjects.c.consent).where(S.subjects.c.subject.in_(chunk))).all()}
        withdrawn = [s for s in names if have.get(s) == "withdrawn"]
        if withdrawn:
            first = withdrawn[0]
            raise ProjectError(
                f"{len(withdrawn)} subject(s) withdrew consent ({withdrawn[:10]}); their images cannot be added",
                fix=Fix(f"record new consent first with project.set_consent({first!r}, 'given', by=...)",
                        "record new consent first with "
                        + command("privacy", "consent", "-P", PROJECT, first, "--status", "given")))
        new = [s for s in names if s not in have]
        if new:
            at = stored_time(conn, S.subjects.c.created_at, t)
            insert_many(conn, S.subjects, ("subject", "consent", "purpose", "created_at", "consent_at"),
                        ((s, consent, purpose, at, at if consent == "given" else None) for s in new))
        return {**have, **dict.fromkeys(new, consent)}

    def row(self, conn: sa.Connection, subject: str) -> Any:
        row = conn.execute(sa.select(S.subjects).where(S.subjects.c.subject == subject)).first()
        if row is None:
            raise ProjectError(f"no data subject {subject!r} in the project",
                               fix=Fix("project.subjects() lists them",
                                       command("privacy", "subjects", "-P", PROJECT) + " lists them"))
        return row


def scrub_audit(conn: sa.Connection, needles: list[str]) -> int:
    """Replace needles inside audit-log details by ERASED; return how many entries changed.

    Needles are found as :class:`~labkit.privacy.pseudonyms.IdMatcher` finds ids,
    ignoring case, in every string, list item and dict key of the details: one of six
    characters or more anywhere, also inside longer text (a path naming the person); a
    shorter one (AI-Hub's ``metaid`` ``"017"``) wherever it is a whole token, delimited
    by anything but an ASCII letter or digit (``.../017/instances_017.json`` becomes
    ``.../<erased>/instances_<erased>.json``), never inside another word or number
    (``2017``, ``0170``).

    Examples
    --------
    >>> import sqlalchemy as sa
    >>> from labkit.store import schema as S
    >>> engine = sa.create_engine("sqlite://")
    >>> S.metadata.create_all(engine)
    >>> with engine.begin() as conn:
    ...     _ = conn.execute(sa.insert(S.audit_log).values(at=utc_now(), actor="dpo", action="import_annotations",
    ...                      details={"file": "/data/017/instances_017.json", "note": "lot 2017"}))
    ...     scrub_audit(conn, ["017"])
    ...     conn.execute(sa.select(S.audit_log.c.details)).scalar_one()
    1
    {'file': '/data/<erased>/instances_<erased>.json', 'note': 'lot 2017'}
    """
    return apply_scrub(conn, scrub_plan(conn, needles))


def scrub_plan(conn: sa.Connection, needles: list[str]) -> dict[int, Any]:
    """The audit-log entries :func:`scrub_audit` would change: ``{id: new details}``."""
    matcher = IdMatcher(needles)
    if not matcher:
        return {}
    plan = {}
    for rid, details in conn.execute(sa.select(S.audit_log.c.id, S.audit_log.c.details)).all():
        new = matcher.replace(details, ERASED)
        if new != details:
            plan[int(rid)] = new
    return plan


def apply_scrub(conn: sa.Connection, plan: dict[int, Any]) -> int:
    """Write the details of :func:`scrub_plan`; return how many entries changed."""
    for rid, details in plan.items():
        conn.execute(sa.update(S.audit_log).where(S.audit_log.c.id == rid).values(details=details))
    return len(plan)


def exports_holding(conn: sa.Connection, image_ids: Sequence[int], since: datetime) -> tuple[dict[str, Any], ...]:
    """The audit log's ``export`` entries that held any of ``image_ids``.

    An export records the ids it held as ranges (``image_ids``); one made before labkit
    recorded them counts when it was made at or after ``since`` (it may hold them).
    Exports made before ``since`` cannot hold images added since.
    """
    if not image_ids:
        return ()
    ids = sorted(int(i) for i in image_ids)
    log = S.audit_log
    rows = conn.execute(sa.select(log.c.at, log.c.actor, log.c.details)
                        .where(log.c.action == "export", log.c.at >= since).order_by(log.c.id)).all()
    out = []
    for at, actor, details in rows:
        d = dict(details or {})
        ranges = d.get("image_ids")
        if isinstance(ranges, list) and not any(_overlaps(ids, lo, hi) for lo, hi in ranges):
            continue
        out.append({**d, "at": at, "actor": actor})
    return tuple(out)


def _overlaps(ids: list[int], lo: int, hi: int) -> bool:
    """Whether sorted ``ids`` has a value in ``[lo, hi]``."""
    k = bisect.bisect_left(ids, lo)
    return k < len(ids) and ids[k] <= hi


def _truncate_wal(con: sqlite3.Connection, wait: float) -> list[str]:
    """Checkpoint the write-ahead log and truncate it; a warning when readers kept it."""
    busy, log, done = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if not busy:
        return []
    return [f"another connection kept reading the project for {wait:g} s (a notebook, a Labeler, another "
            f"process), so the write-ahead log project.db-wal was not truncated ({done} of {log} pages "
            "checkpointed): it still holds the erased rows. Close the other connections, then run "
            "project.store.subjects.compact() (SQLite also empties it when the last connection closes)"]


def _file_search(needles: Sequence[str]) -> Callable[[Path], bool]:
    """``found(path)``: whether the file holds a needle (six characters or more) as a whole token.

    Searched as UTF-8 and as JSON writes it (``\\uXXXX`` escapes), in 16 MiB chunks.
    """
    forms = {f for n in needles if len(n) >= MIN_INFIX
             for f in (n.encode(), json.dumps(n)[1:-1].encode())}
    if not forms:
        return lambda path: False
    alnum = rb"[A-Za-z0-9]"
    pattern = re.compile(b"|".join(rb"(?<!" + alnum + rb")" + re.escape(f) + rb"(?!" + alnum + rb")"
                                   for f in sorted(forms, key=len, reverse=True)))
    overlap = max(len(f) for f in forms) + 1

    def found(path: Path) -> bool:
        try:
            with open(path, "rb") as fh:
                tail = b""
                while chunk := fh.read(1 << 24):
                    if pattern.search(tail + chunk):
                        return True
                    tail = chunk[-overlap:]
        except FileNotFoundError:
            return False
        return False
    return found
