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
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from labkit._util.clock import utc_now
from labkit.store import schema as S
from labkit.store.context import StoreContext
from labkit.store.errors import PROJECT, Fix, ProjectError, command

__all__ = ["ERASED", "ErasedRecords", "SubjectRepository", "scrub_audit"]

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
    """

    subject: str
    root: Path
    counts: dict[str, int]
    sha256s: tuple[str, ...]
    stored_paths: tuple[str, ...]
    files: tuple[Path, ...]
    since: datetime

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

    def set_consent(self, subject: str, consent: str = "given", *, by: str, purpose: str | None = None) -> None:
        """Record a subject's consent (``"given"``, ``"withdrawn"``, ``"unknown"``) and purpose."""
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
            self._ctx.audit(conn, "set_consent", target="subjects", target_id=row.id, actor=by,
                            subject=subject, before=row.consent, after=consent, purpose=purpose)
        self._ctx.write(fn)

    def withdraw_consent(self, subject: str, *, by: str) -> None:
        """The subject withdrew consent: keep their data, stop processing it.

        From now on their images are left out of ``images()``, ``annotations()``, queues
        and new assignments, pool training and scoring, and exports; nobody but an admin
        can read them. ``set_consent(subject, "given", ...)`` undoes it;
        ``forget_subject`` erases them.
        """
        self.set_consent(subject, "withdrawn", by=by)

    def set_retention(self, days: int | None, *, by: str) -> None:
        """Keep subjects' data for ``days`` after collection (``None``: no period). Admins only."""
        if days is not None and (not isinstance(days, int) or days <= 0):
            raise ValueError(f"retention must be a positive number of days or None, got {days!r}")

        def fn(conn: sa.Connection) -> None:
            self._ctx.policy.check_by(conn, "set_retention", by)
            self._ctx.policy.require_admin(conn, "set_retention", "set the retention period")
            conn.execute(sa.delete(S.meta).where(S.meta.c.key == "retention_days"))
            conn.execute(sa.insert(S.meta).values(key="retention_days", value=days))
            self._ctx.audit(conn, "set_retention", target="project", actor=by, days=days)
        self._ctx.write(fn)

    def retention(self) -> int | None:
        """The retention period in days, or ``None``."""
        with self._ctx.connect() as conn:
            return conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "retention_days")).scalar()

    # ------------------------------------------------------------------ erasure --
    def erase_records(self, subject: str, *, by: str, tombstone: str) -> ErasedRecords:
        """Delete a subject's rows everywhere in one transaction; return what else to erase.

        The subject's images, their annotations and annotation history, assignments and
        the subject record are deleted, and every audit-log entry that names the subject,
        its image hashes or paths has them replaced by ``"<erased>"``. The audit log gets
        a tombstone (``forget_subject``, with ``tombstone`` and counts; never whom).
        Admins only, acting as themselves.
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
            counts = {
                "annotation_history": conn.execute(sa.delete(h).where(h.c.annotation_id.in_(ann_ids))).rowcount,
                "annotations": conn.execute(sa.delete(a).where(a.c.image_id.in_(ids))).rowcount,
                "assignments": conn.execute(sa.delete(S.assignments).where(
                    S.assignments.c.image_id.in_(ids))).rowcount,
                "images": conn.execute(sa.delete(im).where(im.c.id.in_(ids))).rowcount,
                "subjects": conn.execute(sa.delete(S.subjects).where(S.subjects.c.id == row.id)).rowcount,
            }
            # Only digests and paths go in needles: image ids are reused by nothing and say nothing.
            needles = [subject, *{r.sha256 for r in imgs}, *{r.path for r in imgs}]
            counts["audit_entries_scrubbed"] = scrub_audit(conn, needles)
            counts = {k: int(v) for k, v in counts.items()}
            self._ctx.audit(conn, "forget_subject", target="subjects", actor=by, tombstone=tombstone, **counts)
            return ErasedRecords(
                subject=subject, root=self._ctx.root, counts=counts,
                sha256s=tuple(sorted({r.sha256 for r in imgs})), stored_paths=tuple(r.path for r in imgs),
                files=tuple(self._ctx.resolve(r.path) for r in imgs),
                since=min((r.added_at for r in imgs), default=row.created_at))
        return self._ctx.write(fn)

    def compact(self) -> list[str]:
        """Make deleted rows unrecoverable from the database files, as far as the engine allows.

        SQLite overwrites freed pages (``secure_delete``, always on) and the write-ahead
        log is truncated here; PostgreSQL's tables are vacuumed. Returns warnings.
        """
        if self._ctx.backend == "sqlite":
            with self._ctx.connect() as conn:
                busy, log, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            if busy or log != done:
                return [f"the write-ahead log could not be truncated ({done} of {log} frames checkpointed; "
                        "another process is reading): erased rows leave it at the next checkpoint"]
            return []
        with self._ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for t in ("annotation_history", "annotations", "assignments", "images", "subjects", "audit_log"):
                try:
                    conn.exec_driver_sql(f"VACUUM {t}")
                except sa.exc.DBAPIError as exc:  # only the owner may vacuum
                    return [f"VACUUM {t} failed ({exc.orig}); dead rows stay on disk until autovacuum"]
        return []

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
        have = dict(conn.execute(sa.select(S.subjects.c.subject, S.subjects.c.consent)
                                 .where(S.subjects.c.subject.in_(names))).all()) if names else {}
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
            conn.execute(sa.insert(S.subjects), [
                {"subject": s, "consent": consent, "purpose": purpose, "created_at": t,
                 "consent_at": t if consent == "given" else None} for s in new])
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

    A string value equal to a needle is replaced whole; a needle of six characters or
    more is also replaced inside longer strings (a path naming the person). Shorter ids
    are not searched inside other text, where they would match unrelated words.
    """
    needles = sorted({n for n in needles if n}, key=len, reverse=True)
    exact, partial = set(needles), [n for n in needles if len(n) >= 6]

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            if value in exact:
                return ERASED
            for n in partial:
                value = value.replace(n, ERASED)
            return value
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, dict):
            return {(ERASED if k in exact else k): scrub(v) for k, v in value.items()}
        return value

    changed = 0
    for rid, details in conn.execute(sa.select(S.audit_log.c.id, S.audit_log.c.details)).all():
        new = scrub(details)
        if new != details:
            conn.execute(sa.update(S.audit_log).where(S.audit_log.c.id == rid).values(details=new))
            changed += 1
    return changed
