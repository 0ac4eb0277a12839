"""Data subjects: consent, purpose, withdrawal, erasure and retention (seed 003).

An image may show a *data subject*, a person identified by an id such as AI-Hub's
``metaid``. labkit records each subject's consent status and purpose, lets an admin
withdraw consent (the data stays but is no longer processed) or erase a subject
entirely, and keeps a retention period for the privacy report. The audit log keeps
a tombstone of every erasure: who, when and how many records, never whom.
"""
from __future__ import annotations

import uuid
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from labkit.store import schema as S

ERASED = "<erased>"


def not_withdrawn(consent_column):
    """SQL condition: the image's subject has not withdrawn consent (or it has no subject)."""
    return sa.or_(consent_column.is_(None), consent_column != "withdrawn")


@dataclass
class Erasure:
    """What :meth:`Project.forget_subject` removed (counts only: no personal data).

    ``tombstone`` identifies the audit-log entry; give it to the person who asked.
    """
    tombstone: str
    database: dict[str, int] = field(default_factory=dict)
    files: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SubjectsMixin:
    """Subject, consent and retention methods of :class:`labkit.Project`."""

    # ------------------------------------------------------------- registering --
    def _register_subjects(self, conn, subjects: Sequence[str | None], *, consent: str,
                           purpose: str | None) -> dict[str, str]:
        """Create missing subjects; return every named subject's consent status."""
        if consent not in ("given", "unknown"):
            raise ValueError(f"consent for new subjects must be 'given' or 'unknown', got {consent!r}")
        names = sorted({s for s in subjects if s is not None})
        bad = [s for s in names if not isinstance(s, str) or not s.strip()]
        if bad:
            raise ValueError(f"subject ids must be non-empty strings, got {bad[:5]}")
        t = self._now()
        have = dict(conn.execute(sa.select(S.subjects.c.subject, S.subjects.c.consent)
                                 .where(S.subjects.c.subject.in_(names))).all()) if names else {}
        withdrawn = [s for s in names if have.get(s) == "withdrawn"]
        if withdrawn:
            raise ValueError(f"{len(withdrawn)} subject(s) withdrew consent; their images cannot be added. "
                             "Record new consent first with project.set_consent(subject, 'given', ...)")
        new = [s for s in names if s not in have]
        if new:
            conn.execute(sa.insert(S.subjects), [
                {"subject": s, "consent": consent, "purpose": purpose, "created_at": t,
                 "consent_at": t if consent == "given" else None} for s in new])
        return {**have, **dict.fromkeys(new, consent)}

    def subjects(self) -> pd.DataFrame:
        """Data subjects indexed by id: consent, purpose, dates, image count. Admins only."""
        def fn():
            with self._engine.connect() as conn:
                self._require_admin(conn, "read_subjects", "read the subjects register")
                sub = self._read(sa.select(S.subjects).order_by(S.subjects.c.id), conn)
                counts = self._read(sa.select(S.images.c.subject, sa.func.count().label("images"),
                                              sa.func.min(S.images.c.added_at).label("first_added"))
                                    .group_by(S.images.c.subject), conn)
            out = sub.drop(columns="id").merge(counts, on="subject", how="left").set_index("subject")
            out["images"] = out["images"].fillna(0).astype(int)
            return out
        return self._guard(fn)

    def set_consent(self, subject: str, consent: str = "given", *, by: str,
                    purpose: str | None = None) -> None:
        """Record a subject's consent (``"given"``, ``"withdrawn"``, ``"unknown"``) and purpose."""
        if consent not in S.CONSENT:
            raise ValueError(f"consent must be one of {S.CONSENT}, got {consent!r}")

        def fn(conn):
            self._check_by(conn, "set_consent", by)
            self._require_admin(conn, "set_consent", "record consent")
            row = self._subject_row(conn, subject)
            t = self._now()
            values = {"consent": consent,
                      "consent_at": t if consent == "given" else row.consent_at,
                      "withdrawn_at": t if consent == "withdrawn" else None}
            if purpose is not None:
                values["purpose"] = purpose
            conn.execute(sa.update(S.subjects).where(S.subjects.c.id == row.id).values(**values))
            conn.execute(sa.update(S.images).where(S.images.c.subject == subject).values(consent=consent))
            self._audit(conn, "set_consent", target="subjects", target_id=row.id, actor=by,
                        subject=subject, before=row.consent, after=consent, purpose=purpose)
        self._write(fn)

    def withdraw_consent(self, subject: str, *, by: str) -> None:
        """The subject withdrew consent: keep their data, stop processing it.

        From now on their images are left out of :meth:`images`, :meth:`annotations`,
        queues and new assignments, pool training and scoring, and exports; nobody but an
        admin can read them. :meth:`set_consent` with ``"given"`` undoes it;
        :meth:`forget_subject` erases them.
        """
        self.set_consent(subject, "withdrawn", by=by)

    def _subject_row(self, conn, subject: str):
        row = conn.execute(sa.select(S.subjects).where(S.subjects.c.subject == subject)).first()
        if row is None:
            raise ValueError(f"no data subject {subject!r} in the project; project.subjects() lists them")
        return row

    # ----------------------------------------------------------------- erasure --
    def forget_subject(self, subject: str, *, by: str) -> Erasure:
        """Erase everything of one data subject from the project (the right to erasure).

        In one transaction: the subject's images, their annotations and annotation
        history, assignments and the subject record are deleted, and every audit-log
        entry that names the subject, its image hashes or paths has them replaced by
        ``"<erased>"``. SQLite overwrites the freed pages (``secure_delete``) and the
        write-ahead log is truncated; PostgreSQL is vacuumed. Then derived files are
        purged: cached embeddings and saved pool predictions of those images, report
        outputs that contained them (replaced by a withdrawal notice) and image files
        inside the project folder (copies labkit made). Files outside the project
        folder (the user's originals) are not touched; their count is returned.

        The audit log gets a tombstone: who, when, how many records; no personal data.

        Parameters
        ----------
        subject : str
            The subject id.
        by : str
            The admin carrying out the request.

        Returns
        -------
        Erasure
            Counts per table and per kind of file, and the tombstone id.
        """
        from labkit.store.project import now

        a, h, im = S.annotations, S.annotation_history, S.images
        tombstone = uuid.uuid4().hex

        def fn(conn):
            self._check_by(conn, "forget_subject", by)
            self._require_admin(conn, "forget_subject", "erase data subjects")
            row = self._subject_row(conn, subject)
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
            counts["audit_entries_scrubbed"] = _scrub_audit(conn, needles)
            self._audit(conn, "forget_subject", target="subjects", actor=by, tombstone=tombstone,
                        **{k: int(v) for k, v in counts.items()})
            return counts, imgs, min((r.added_at for r in imgs), default=row.created_at)
        counts, imgs, since = self._write(fn)
        out = Erasure(tombstone=tombstone, database={k: int(v) for k, v in counts.items()})
        out.warnings += self._compact_after_erasure()
        out.files = self._purge_files(subject, imgs, since, out.warnings)
        self._write(lambda conn: self._audit(conn, "forget_subject_files", target="subjects", actor=by,
                                             tombstone=tombstone, **_counts_only(out.files)))
        return out

    def _compact_after_erasure(self) -> list[str]:
        """Make deleted rows unrecoverable from the database files, as far as the engine allows."""
        if self.backend == "sqlite":
            with self._engine.connect() as conn:
                busy, log, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            if busy or log != done:
                return [f"the write-ahead log could not be truncated ({done} of {log} frames checkpointed; "
                        "another process is reading): erased rows leave it at the next checkpoint"]
            return []
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for t in ("annotation_history", "annotations", "assignments", "images", "subjects", "audit_log"):
                try:
                    conn.exec_driver_sql(f"VACUUM {t}")
                except sa.exc.DBAPIError as exc:  # only the owner may vacuum
                    return [f"VACUUM {t} failed ({exc.orig}); dead rows stay on disk until autovacuum"]
        return []

    def _purge_files(self, subject: str, imgs, since, notes: list[str]) -> dict[str, Any]:
        """Delete derived files (caches, predictions, report outputs) and labkit's own copies."""
        from labkit.models.embeddings import forget_keys, project_cache_dir
        from labkit.models.pool.forget import forget_images
        from labkit.reports.registry import forget_reports

        root = Path(self.root)
        hashes = sorted({r.sha256 for r in imgs})
        files: dict[str, Any] = {}
        steps = [("embeddings", lambda: forget_keys(project_cache_dir(self), hashes)),
                 ("pool", lambda: forget_images(root, hashes)),
                 ("reports", lambda: forget_reports(root, since=since,
                                                    needles=[subject, *hashes, *(r.path for r in imgs)]))]
        for name, step in steps if root.is_dir() else []:  # no folder yet: no derived files either
            try:
                files[name] = step()
            except Exception as exc:  # one kind of file failing must not stop the others
                notes.append(f"purging {name} failed: {type(exc).__name__}: {exc}")
                warnings.warn(notes[-1], stacklevel=3)
        inside, outside = 0, 0
        for r in imgs:
            path = self._resolve(r.path)
            if _is_within(path, root) and path.exists():
                path.unlink()
                inside += 1
            elif path.exists():
                outside += 1
        files["image_files_removed"] = inside
        files["image_files_outside_project_left"] = outside
        if outside:
            notes.append(f"{outside} image file(s) outside the project folder were not deleted (they are "
                         "the originals labkit was given); delete them at their source if the request covers them")
        return files

    # --------------------------------------------------------------- retention --
    def set_retention(self, days: int | None, *, by: str) -> None:
        """Keep subjects' data for ``days`` after collection (``None``: no period). Admins only."""
        if days is not None and (not isinstance(days, int) or days <= 0):
            raise ValueError(f"retention must be a positive number of days or None, got {days!r}")

        def fn(conn):
            self._check_by(conn, "set_retention", by)
            self._require_admin(conn, "set_retention", "set the retention period")
            conn.execute(sa.delete(S.meta).where(S.meta.c.key == "retention_days"))
            conn.execute(sa.insert(S.meta).values(key="retention_days", value=days))
            self._audit(conn, "set_retention", target="project", actor=by, days=days)
        self._write(fn)

    def privacy_report(self):
        """Subjects past retention, withdrawn consents, who accessed what, denials, erasures,
        exports; a :class:`~labkit.store.privacy_report.PrivacyReport`. Admins only.

        ``labkit privacy report --project P`` prints it.
        """
        from labkit.store.privacy_report import build

        return build(self)

    def retention(self) -> int | None:
        """The retention period in days, or ``None``."""
        with self._engine.connect() as conn:
            return conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "retention_days")).scalar()


def _scrub_audit(conn, needles: list[str]) -> int:
    """Replace needles inside audit-log details by ERASED; return how many entries changed.

    A string value equal to a needle is replaced whole; a needle of six characters or
    more is also replaced inside longer strings (a path naming the person). Shorter ids
    are not searched inside other text, where they would match unrelated words.
    """
    needles = sorted({n for n in needles if n}, key=len, reverse=True)
    exact, partial = set(needles), [n for n in needles if len(n) >= 6]

    def scrub(value):
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


def _counts_only(files: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in files.items():
        if isinstance(v, dict):
            out[k] = {kk: vv for kk, vv in v.items() if isinstance(vv, (int, float, list))}
        else:
            out[k] = v
    return out


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False
