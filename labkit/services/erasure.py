"""The right to erasure: remove one data subject from a project, database and derived files.

:func:`forget_subject` (``project.forget_subject``) runs it:

1. the store deletes the subject's rows in one transaction and scrubs the audit log
   (:meth:`labkit.store.subjects.SubjectRepository.erase_records`), which returns an
   :class:`~labkit.store.ErasedRecords` saying what else holds the subject's data;
2. the store makes the deleted rows unrecoverable from its files (``compact``);
3. every registered *eraser* removes the derived files it owns: the embedding cache,
   the model pools' folds and saved predictions, the reports that showed the images;
4. image files inside the project folder (copies labkit made) are deleted; the user's
   originals outside it are counted, never touched.

An eraser is any callable ``eraser(records) -> dict`` of counts (no personal data);
:func:`register_eraser` adds one, so a component that caches derived data elsewhere
takes part without the store knowing about it. One failing eraser does not stop the
others: its failure is a warning in the returned :class:`Erasure`.
"""
from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labkit.models.embeddings import forget_keys, project_cache_dir
from labkit.models.pool.forget import forget_images
from labkit.services.report_registry import forget_reports
from labkit.store.protocol import StoredProject
from labkit.store.subjects import ErasedRecords

__all__ = ["Erasure", "Eraser", "forget_subject", "list_erasers", "register_eraser"]

#: ``eraser(records) -> counts``: removes one kind of derived data of erased images.
Eraser = Callable[[ErasedRecords], dict[str, Any]]


@dataclass
class Erasure:
    """What :func:`forget_subject` removed (counts only: no personal data).

    ``tombstone`` identifies the audit-log entry; give it to the person who asked.
    """
    tombstone: str
    database: dict[str, int] = field(default_factory=dict)
    files: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _embeddings(records: ErasedRecords) -> dict[str, Any]:
    return forget_keys(project_cache_dir(records.root), records.sha256s)


def _pool(records: ErasedRecords) -> dict[str, Any]:
    return forget_images(records.root, records.sha256s)


def _reports(records: ErasedRecords) -> dict[str, Any]:
    return forget_reports(records.root, since=records.since, needles=records.needles)


_ERASERS: dict[str, Eraser] = {"embeddings": _embeddings, "pool": _pool, "reports": _reports}


def register_eraser(name: str, eraser: Eraser, *, replace: bool = False) -> None:
    """Have ``eraser(records)`` run on every erasure, its counts reported under ``name``.

    Parameters
    ----------
    name : str
        The key of its counts in ``Erasure.files``.
    eraser : callable
        Receives :class:`~labkit.store.ErasedRecords` (project folder, subject, image
        hashes, paths, since when); returns a dict of counts, with no personal data.
    replace : bool
        Allow replacing an eraser of the same name.
    """
    if not isinstance(name, str) or not name or name in ("image_files_removed", "image_files_outside_project_left"):
        raise ValueError(f"eraser name {name!r} must be a non-empty string other than the image-file counts")
    if not callable(eraser):
        raise ValueError(f"eraser {eraser!r} is not callable; expected eraser(records) -> dict of counts")
    if name in _ERASERS and not replace:
        raise ValueError(f"an eraser named {name!r} is registered; pass replace=True to replace it")
    _ERASERS[name] = eraser


def list_erasers() -> list[str]:
    """Names of the registered erasers, in the order they run."""
    return list(_ERASERS)


def forget_subject(project: StoredProject, subject: str, *, by: str) -> Erasure:
    """Erase everything of one data subject from the project (the right to erasure).

    In one transaction: the subject's images, their annotations and annotation
    history, assignments and the subject record are deleted, and every audit-log
    entry that names the subject, its image hashes or paths has them replaced by
    ``"<erased>"``. SQLite overwrites the freed pages (``secure_delete``) and the
    write-ahead log is truncated; PostgreSQL is vacuumed. Then derived files are
    purged by the registered erasers (:func:`list_erasers`): cached embeddings and
    saved pool predictions of those images, report outputs that contained them
    (replaced by a withdrawal notice); and image files inside the project folder
    (copies labkit made). Files outside the project folder (the user's originals) are
    not touched; their count is returned.

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
    store = project.store
    tombstone = uuid.uuid4().hex
    records = store.subjects.erase_records(subject, by=by, tombstone=tombstone)
    out = Erasure(tombstone=tombstone, database=dict(records.counts))
    out.warnings += store.subjects.compact()
    out.files = _purge_files(records, out.warnings)
    store.ctx.write(lambda conn: store.ctx.audit(conn, "forget_subject_files", target="subjects", actor=by,
                                                 tombstone=tombstone, **_counts_only(out.files)))
    return out


def _purge_files(records: ErasedRecords, notes: list[str]) -> dict[str, Any]:
    """Run every eraser, then delete labkit's own copies of the images."""
    files: dict[str, Any] = {}
    for name, eraser in _ERASERS.items() if records.root.is_dir() else ():  # no folder: no derived files
        try:
            files[name] = eraser(records)
        except Exception as exc:  # one kind of file failing must not stop the others
            notes.append(f"purging {name} failed: {type(exc).__name__}: {exc}")
            warnings.warn(notes[-1], stacklevel=3)
    inside, outside = 0, 0
    for path in records.files:
        if _is_within(path, records.root) and path.exists():
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
