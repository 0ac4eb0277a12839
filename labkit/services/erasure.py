"""The right to erasure: remove one data subject from a project, database and derived files.

:func:`forget_subject` (``project.forget_subject``) runs it:

1. the store deletes the subject's rows in one transaction and scrubs the audit log
   (:meth:`labkit.store.subjects.SubjectRepository.erase_records`), which returns an
   :class:`~labkit.store.ErasedRecords` saying what else holds the subject's data;
2. every registered *eraser* removes the derived files it owns: the embedding cache,
   the model pools' folds and saved predictions, the reports that showed the images,
   the exports inside the project folder that held them (exports elsewhere, which
   their recipients hold, are reported);
3. image files inside the project folder (copies labkit made) are deleted; the user's
   originals outside it are counted, never touched;
4. last, the store makes the deleted rows unrecoverable from its files (``compact``:
   the write-ahead log is truncated, and the database rebuilt where it still holds them).

An eraser is any callable ``eraser(records) -> dict`` of counts (no personal data);
:func:`register_eraser` adds one, so a component that caches derived data elsewhere
takes part without the store knowing about it. It may return ``"warnings"`` (a list of
str): they go to the returned :class:`Erasure`. One failing eraser does not stop the
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
from labkit.services.report_registry import forget_exports, forget_reports
from labkit.store.protocol import StoredProject
from labkit.store.subjects import ErasedRecords

__all__ = ["Erasure", "Eraser", "forget_subject", "list_erasers", "register_eraser"]

#: ``eraser(records) -> counts``: removes one kind of derived data of erased images.
Eraser = Callable[[ErasedRecords], dict[str, Any]]


@dataclass
class Erasure:
    """What :func:`forget_subject` removed (counts only: no personal data of the person erased).

    ``tombstone`` identifies the audit-log entry; give it to the person who asked.
    ``warnings`` say what could not be erased and what to do: files outside the project
    folder, exports with their paths and recipients (the person's id replaced by
    ``<erased>``), another connection that kept the write-ahead log from being truncated.
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


def _exports(records: ErasedRecords) -> dict[str, Any]:
    return forget_exports(records.root, records.exports, needles=records.needles)


_ERASERS: dict[str, Eraser] = {"embeddings": _embeddings, "pool": _pool, "reports": _reports,
                               "exports": _exports}
#: Erasers that also run when the project has no folder yet (exports may be elsewhere).
_WITHOUT_FOLDER = {"exports"}


def register_eraser(name: str, eraser: Eraser, *, replace: bool = False) -> None:
    """Have ``eraser(records)`` run on every erasure, its counts reported under ``name``.

    Parameters
    ----------
    name : str
        The key of its counts in ``Erasure.files``.
    eraser : callable
        Receives :class:`~labkit.store.ErasedRecords` (project folder, subject, image
        hashes, paths, since when); returns a dict of counts, with no personal data, and
        optionally ``"warnings"``: a list of str for :attr:`Erasure.warnings`.
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


def forget_subject(project: StoredProject, subject: str, *, by: str, wait: float = 10.0) -> Erasure:
    """Erase everything of one data subject from the project (the right to erasure).

    In one transaction: the subject's images, their annotations and annotation
    history, assignments and the subject record are deleted, and every audit-log
    entry that names the subject, its image hashes or paths has them replaced by
    ``"<erased>"`` (ids shorter than six characters where they are a whole token).
    Then derived files are purged by the registered erasers (:func:`list_erasers`):
    cached embeddings and saved pool predictions of those images, report outputs that
    contained them (replaced by a withdrawal notice), exports inside the project folder
    that held them (deleted, with a notice; exports elsewhere are reported with their
    recipients); and image files inside the project folder (copies labkit made). Files
    outside the project folder (the user's originals) are not touched; their count is
    returned. Last, SQLite's write-ahead log is checkpointed and truncated to zero
    bytes, and the database rebuilt (``VACUUM``) if it still holds the erased data;
    PostgreSQL is vacuumed.

    The audit log gets a tombstone: who, when, how many records; no personal data.

    Parameters
    ----------
    subject : str
        The subject id.
    by : str
        The admin carrying out the request.
    wait : float
        Seconds to wait for other connections (notebooks, widgets, other processes) to
        finish reading before the write-ahead log is truncated. If they are still
        reading, a warning says so, and ``project.store.subjects.compact()`` finishes the
        job once they are closed.

    Returns
    -------
    Erasure
        Counts per table and per kind of file, the tombstone id, and warnings.
    """
    store = project.store
    tombstone = uuid.uuid4().hex
    records = store.subjects.erase_records(subject, by=by, tombstone=tombstone)
    out = Erasure(tombstone=tombstone, database=dict(records.counts))
    out.files = _purge_files(records, out.warnings)
    store.ctx.write(lambda conn: store.ctx.audit(conn, "forget_subject_files", target="subjects", actor=by,
                                                 tombstone=tombstone, **_counts_only(out.files)))
    out.warnings += store.subjects.compact(needles=records.needles, wait=wait)  # after the last write
    return out


def _purge_files(records: ErasedRecords, notes: list[str]) -> dict[str, Any]:
    """Run every eraser, then delete labkit's own copies of the images."""
    files: dict[str, Any] = {}
    for name, eraser in _ERASERS.items():
        if not records.root.is_dir() and name not in _WITHOUT_FOLDER:  # no folder: no derived files
            continue
        try:
            files[name] = dict(eraser(records))
        except Exception as exc:  # one kind of file failing must not stop the others
            notes.append(f"purging {name} failed: {type(exc).__name__}: {exc}")
            warnings.warn(notes[-1], stacklevel=3)
            continue
        notes += [str(w) for w in files[name].pop("warnings", None) or []]
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
