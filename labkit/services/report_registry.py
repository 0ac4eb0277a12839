"""Where a project's reports and exports went, and withdrawing them when a data subject is erased.

A report embeds evidence computed from the project's images (thumbnails, tables of ids
and paths), so a report made while a person's images were in the project holds their
data wherever it was written. :func:`~labkit.reports.run_report` therefore appends one
line per run to ``<project>/reports/index.jsonl`` (:func:`register`, :func:`registered`),
and :func:`forget_reports` withdraws the reports that may show erased images: their
executed notebook and the files the run wrote beside it are deleted, the HTML is replaced
by a short notice saying how to re-run the report, and the JSON record keeps only what
holds no personal data.

An export holds the records and image files themselves. ``project.export`` appends one
line per export to ``<project>/exports/index.jsonl`` (:func:`register_export`,
:func:`registered_exports`): the files it wrote inside the project folder, how many
outside it, and the head of the project's hash chain when it was made (``labkit verify``
checks it is still in the chain). :func:`forget_exports` withdraws the exports inside the
project folder that held an erased person (their files are deleted, a notice says how to
export again) and reports the ones outside it, which their recipients hold.
"""
from __future__ import annotations

import html
import json
import os
import re
import uuid
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labkit._util.atomic import write_text
from labkit._util.clock import utc_iso
from labkit.privacy.pseudonyms import IdMatcher
from labkit.store.subjects import ERASED

__all__ = ["EXPORTS", "INDEX", "chain_head", "forget_exports", "forget_reports", "register", "register_export",
           "registered", "registered_exports"]

#: The registry, relative to the project folder.
INDEX = Path("reports") / "index.jsonl"
#: The export registry, relative to the project folder.
EXPORTS = Path("exports") / "index.jsonl"
_EXPORT_REQUIRED = ("path", "format", "created_at", "files", "files_outside")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REQUIRED = ("name", "html", "notebook", "record", "created_at", "status")
#: Fields of a report's JSON record that hold no personal data; the rest is dropped on withdrawal.
_KEEP = ("report", "notebook_source", "environment", "started_at", "finished_at", "status", "sidecar_name",
         "notebook", "html")


def register(root: str | os.PathLike, record: dict[str, Any]) -> dict[str, Any]:
    """Append one report run to the project's registry, ``<root>/reports/index.jsonl``.

    Parameters
    ----------
    root : path
        The project folder (``project.root``).
    record : dict
        JSON-ready, with at least ``name``, ``html``, ``notebook``, ``record`` (the three
        files' paths), ``created_at`` (UTC ISO time) and ``status``; optionally
        ``finished_at``, ``out_dir``, ``project``, ``parameters`` (names only) and
        ``outputs`` (other files the run wrote). An ``id`` is added when missing.

    Returns
    -------
    dict
        The entry as stored. One ``write`` of one line in append mode, so concurrent runs
        do not interleave.

    Examples
    --------
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> entry = register(root, {"name": "audit", "html": "out/audit.html", "notebook": "out/audit.ipynb",
    ...                         "record": "out/audit.json", "created_at": "2025-01-02T03:04:05+00:00",
    ...                         "status": "ok"})
    >>> [e["name"] for e in registered(root)], len(entry["id"])
    (['audit'], 12)
    """
    if not isinstance(record, dict):
        raise ValueError(f"record is a {type(record).__name__}; expected a dict with {list(_REQUIRED)}")
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise ValueError(f"record lacks {missing}; it has {sorted(record)}; expected at least {list(_REQUIRED)}")
    _parse_time(record["created_at"], "record['created_at']")
    entry = {"id": uuid.uuid4().hex[:12], **record}
    try:
        line = json.dumps(entry, sort_keys=True)
    except TypeError as exc:
        raise ValueError(f"record is not JSON-ready ({exc}); give paths and times as strings") from None
    _append(Path(root) / INDEX, line)
    return entry


def registered(root: str | os.PathLike) -> list[dict[str, Any]]:
    """The registered report runs of a project, oldest first (empty when none)."""
    return _read(Path(root) / INDEX)[0]


def forget_reports(root: str | os.PathLike, *, since: datetime, needles: Sequence[str]) -> dict[str, int]:
    """Withdraw the registered reports that may show a data subject's erased images.

    A report is withdrawn when it finished at or after ``since`` (it may have read the
    images), or when its HTML, notebook, record or the files it wrote hold any of
    ``needles`` (as written, or escaped for HTML or JSON; a sha256 also by its first 12
    digits, as reports abbreviate hashes). Withdrawing deletes the executed notebook and
    the files the run wrote beside it (unless a later, kept run wrote them again),
    replaces the HTML by a notice with the command that re-runs the report, and rewrites
    the JSON record without parameter values, data fingerprints or error messages, adding
    ``"redacted": {"at", "reason"}``. The registry entry gets ``redacted_at``. Withdrawn
    reports are skipped next time, so this is idempotent.

    Parameters
    ----------
    root : path
        The project folder (``project.root``).
    since : datetime
        When the subject's first image was added. A naive datetime is read as UTC (what
        labkit stores).
    needles : sequence of str
        Text that identifies the subject's data: subject id, image sha256s, image paths.

    Returns
    -------
    dict
        Counts, no personal data: ``reports_scanned``, ``reports_withdrawn``,
        ``files_deleted``, ``html_replaced``, ``records_rewritten``.
    """
    if not isinstance(since, datetime):
        raise ValueError(f"since is {since!r}; expected a datetime (when the subject's first image was added)")
    since = since if since.tzinfo is not None else since.replace(tzinfo=timezone.utc)
    if isinstance(needles, (str, bytes)) or any(not isinstance(n, str) or not n for n in needles):
        raise ValueError(f"needles is {needles!r}; expected a list of non-empty strings (subject id, "
                         "image hashes, image paths)")
    patterns = sorted({v for n in needles for v in _escaped(n)})
    index = Path(root) / INDEX
    entries, size = _read(index)
    out = {"reports_scanned": 0, "reports_withdrawn": 0, "files_deleted": 0, "html_replaced": 0,
           "records_rewritten": 0}
    now = utc_iso()
    withdraw: list[int] = []
    for i, e in enumerate(entries):
        if e.get("redacted_at"):
            continue
        out["reports_scanned"] += 1
        when = _parse_time(e.get("finished_at") or e["created_at"], f"{index} entry {e.get('id')}")
        files = [e["html"], e["notebook"], e["record"], *e.get("outputs", [])]
        if when >= since or any(_holds(Path(f), patterns) for f in files):
            withdraw.append(i)
    gone_html, withdrawn = set(), set(withdraw)
    for i in withdraw:
        e = entries[i]
        kept_outputs = {f for j in range(i + 1, len(entries)) if j not in withdrawn
                        and not entries[j].get("redacted_at") for f in entries[j].get("outputs", [])}
        for f in [e["notebook"], *e.get("outputs", [])]:
            if f in kept_outputs and not _holds(Path(f), patterns):
                continue  # rewritten since by a run that is kept
            if _unlink(Path(f)):
                out["files_deleted"] += 1
        if Path(e["html"]).parent.is_dir():
            write_text(Path(e["html"]), _notice(e, now))
            out["html_replaced"] += 1
        if _redact_record(Path(e["record"]), now):
            out["records_rewritten"] += 1
        gone_html.add(e["html"])
        out["reports_withdrawn"] += 1
    if not gone_html:
        return out
    for e in entries:  # older runs into the same files now point at the notice too
        if e["html"] in gone_html and not e.get("redacted_at"):
            e["redacted_at"] = now
    _rewrite_index(index, entries, size)
    return out


# ---------------------------------------------------------------------- exports --
def register_export(root: str | os.PathLike, record: dict[str, Any]) -> dict[str, Any]:
    """Append one export to the project's export registry, ``<root>/exports/index.jsonl``.

    Parameters
    ----------
    root : path
        The project folder (``project.root``).
    record : dict
        JSON-ready, with at least ``path`` (the export's file or folder, absolute),
        ``format``, ``created_at`` (UTC ISO time), ``files`` (the files it wrote inside
        the project folder, relative to it, POSIX) and ``files_outside`` (how many it
        wrote elsewhere); optionally ``recipient``, ``anonymize``, ``actor``, ``images``,
        ``chain`` (``{"seq", "head"}``: the last block of the project's hash chain; when
        missing, it is read from the project open in this process at ``root``, or from
        ``root/project.db``; ``labkit verify`` checks it is still in the chain). An
        ``id`` is added when missing; the audit-log entry of the export names it.

    Returns
    -------
    dict
        The entry as stored.

    Examples
    --------
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> entry = register_export(root, {"path": f"{root}/exports/coco.json", "format": "coco",
    ...                                "created_at": "2025-01-02T03:04:05+00:00",
    ...                                "files": ["exports/coco.json"], "files_outside": 0})
    >>> [e["files"] for e in registered_exports(root)], len(entry["id"])
    ([['exports/coco.json']], 12)
    """
    if not isinstance(record, dict):
        raise ValueError(f"record is a {type(record).__name__}; expected a dict with {list(_EXPORT_REQUIRED)}")
    missing = [k for k in _EXPORT_REQUIRED if k not in record]
    if missing:
        raise ValueError(f"record lacks {missing}; it has {sorted(record)}; expected at least "
                         f"{list(_EXPORT_REQUIRED)}")
    _parse_time(record["created_at"], "record['created_at']")
    bad = [f for f in record["files"] if not isinstance(f, str) or Path(f).is_absolute() or ".." in Path(f).parts]
    if bad:
        raise ValueError(f"record['files'] has {bad[:3]}; expected paths relative to the project folder, inside it")
    head = record["chain"] if "chain" in record else chain_head(root)
    if head is not None and not (isinstance(head, dict) and isinstance(head.get("seq"), int)
                                 and isinstance(head.get("head"), str)):
        raise ValueError(f"record['chain'] is {head!r}; expected {{'seq': int, 'head': str}} "
                         "(project.store.ctx.chain_head().to_dict()) or None")
    entry = {"id": uuid.uuid4().hex[:12], **record, "chain": head}
    try:
        line = json.dumps(entry, sort_keys=True)
    except TypeError as exc:
        raise ValueError(f"record is not JSON-ready ({exc}); give paths and times as strings") from None
    _append(Path(root) / EXPORTS, line)
    return entry


def chain_head(root: str | os.PathLike) -> dict[str, Any] | None:
    """The last block of the hash chain of the project at ``root`` (``{"seq", "head"}``), or ``None``.

    Read from the project open in this process whose folder is ``root`` (a PostgreSQL
    project's working folder too), else from ``root/project.db``; ``None`` when neither
    is there (a folder that is not a project's).
    """
    from labkit.store.context import StoreContext

    ctx = StoreContext.opened_at(Path(root))
    if ctx is not None:
        head = ctx.chain_head()
        return head.to_dict() if head is not None else None
    if not (Path(root) / "project.db").is_file():
        return None
    import sqlalchemy as sa

    from labkit.store import chain
    from labkit.store.engine import create_engine, make_url

    engine = create_engine(make_url(Path(root)))
    try:
        with engine.connect() as conn:
            head = chain.head(conn)
    except sa.exc.OperationalError:  # a project.db before schema 4: no chain
        return None
    finally:
        engine.dispose()
    return head.to_dict() if head is not None else None


def registered_exports(root: str | os.PathLike) -> list[dict[str, Any]]:
    """The registered exports of a project, oldest first (empty when none)."""
    return _read(Path(root) / EXPORTS)[0]


def forget_exports(root: str | os.PathLike, exports: Sequence[Mapping[str, Any]], *,
                   needles: Sequence[str]) -> dict[str, Any]:
    """Withdraw the exports inside the project folder that held an erased person; report the others.

    ``exports`` are the audit-log entries of the exports that held the person's images
    (``ErasedRecords.exports``). For each one:

    - the files it wrote inside the project folder (as registered) are deleted, unless a
      later export that is kept wrote them again; folders left empty are removed, and
      ``<export>.withdrawn.txt`` says when and why, and how to export again. The
      registry entry gets ``withdrawn_at`` and loses its file list;
    - if it wrote files outside the project folder, they are left alone: the
      recipient holds them. They are counted, and a warning names the export, its date
      and recipient. The registry entry counts ``subjects_erased``;
    - an export inside the project folder that the registry does not list (made before
      labkit registered exports, or from another machine's working folder) is left alone
      with a warning: which files it wrote is unknown.

    ``needles`` (subject id, image hashes and paths) are replaced by ``<erased>`` in the
    paths this writes into the registry, notices and warnings.

    Returns
    -------
    dict
        Counts (``exports_held``, ``exports_withdrawn``, ``files_deleted``,
        ``exports_outside_project``, ``exports_unregistered``), ``recipients`` (sorted
        names of the recipients of exports outside the project folder) and ``warnings``
        (no personal data of the person erased).
    """
    root = Path(root)
    if isinstance(needles, (str, bytes)) or any(not isinstance(n, str) or not n for n in needles):
        raise ValueError(f"needles is {needles!r}; expected a list of non-empty strings (subject id, "
                         "image hashes, image paths)")
    matcher = IdMatcher(needles)
    index = root / EXPORTS
    entries, size = _read(index)
    position = {e.get("id"): i for i, e in enumerate(entries)}
    out: dict[str, Any] = {"exports_held": len(exports), "exports_withdrawn": 0, "files_deleted": 0,
                           "exports_outside_project": 0, "exports_unregistered": 0}
    recipients: set[str] = set()
    notes: list[str] = []
    now = utc_iso()
    withdraw: dict[int, Path] = {}  # registry position -> where its notice goes
    for x in exports:
        i = position.get(x.get("export_id"))
        what = _describe(x, matcher)
        if i is None:
            if x.get("path") and _within(Path(str(x["path"])), root):
                out["exports_unregistered"] += 1
                notes.append(f"{what} is inside the project folder, but labkit did not register which files it "
                             "wrote (an export made before labkit registered them, or from another working "
                             "folder): delete it by hand")
            else:
                out["exports_outside_project"] += 1
                recipients.add(str(x.get("recipient") or "(no recipient named)"))
                notes.append(f"{what} is outside the project folder and held this person's data: it was not "
                             "changed; its recipient holds it")
            continue
        e = entries[i]
        if e.get("files") and not e.get("withdrawn_at"):
            withdraw[i] = _export_notice_path(root, e, matcher)  # from the path as written, before the scrub
        if e.get("files_outside"):
            out["exports_outside_project"] += 1
            recipients.add(str(x.get("recipient") or "(no recipient named)"))
            e["subjects_erased"] = int(e.get("subjects_erased", 0)) + 1
            notes.append(f"{what} wrote {e['files_outside']} file(s) outside the project folder that held this "
                         "person's data: they were not changed; its recipient holds them")
        e["path"] = matcher.replace(e.get("path"), ERASED)
    for i in sorted(withdraw):
        e = entries[i]
        kept = {f for j in range(i + 1, len(entries)) if j not in withdraw and not entries[j].get("withdrawn_at")
                for f in entries[j].get("files", [])}
        deleted = 0
        for f in e["files"]:
            path = root / f
            if f not in kept and _within(path, root) and _unlink(path):
                deleted += 1
                _prune_empty(path.parent, root)
        write_text(withdraw[i], _export_notice(e, now, deleted))
        e.update(withdrawn_at=now, files=[], files_deleted=deleted)
        out["files_deleted"] += deleted
        out["exports_withdrawn"] += 1
    out["recipients"] = sorted(recipients)
    out["warnings"] = notes
    if exports and entries:
        _rewrite_index(index, entries, size)
    return out


def _describe(export: Mapping[str, Any], matcher: IdMatcher) -> str:
    at = export.get("at")
    when = at.strftime("%Y-%m-%d %H:%M UTC") if isinstance(at, datetime) else str(at)
    recipient = export.get("recipient")
    to = f"for {recipient!r}" if recipient else "with no recipient named"
    path = matcher.replace(str(export.get("path")), ERASED)
    return f"the {export.get('format')} export of {when} {to} ({path})"


def _export_notice_path(root: Path, entry: dict[str, Any], matcher: IdMatcher) -> Path:
    """``<export>.withdrawn.txt`` beside the export, its name scrubbed of needles.

    In ``exports/`` instead when the export is outside the project folder, or inside a
    folder whose name holds a needle (the notice must not recreate that name).
    """
    path = Path(str(entry.get("path") or ""))
    if path.name and _within(path.parent, root):
        folder = path.parent.resolve().relative_to(root.resolve()).as_posix()
        if not matcher.found(folder):
            return path.parent / f"{matcher.replace(path.name, 'erased')}.withdrawn.txt"
    return root / EXPORTS.parent / f"{entry['id']}.withdrawn.txt"


def _export_notice(entry: dict[str, Any], now: str, deleted: int) -> str:
    recipient = entry.get("recipient")
    fmt = entry.get("format")
    options = "".join(f", {k}={entry[k]!r}" for k in ("anonymize",) if entry.get(k))
    return (f"Export withdrawn\n\n"
            f"The {fmt} export written here on {entry.get('created_at')} (UTC)"
            f"{f' for {recipient!r}' if recipient else ''} was withdrawn on {now} (UTC) after a request to "
            f"erase a person's data: it held records or images of a person who is no longer in the project. "
            f"Its {deleted} file(s) in the project folder were deleted.\n\n"
            f"Export again to get a current copy:\n\n"
            f"    project.export(PATH, format={fmt!r}{options}, recipient=...)\n"
            f"    labkit export -P PROJECT PATH --format {fmt}\n")


def _within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


def _prune_empty(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents while they are empty, up to (not including) ``root``."""
    root = root.resolve()
    folder = folder.resolve()
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty, or gone
            return
        folder = folder.parent


# ---------------------------------------------------------------------- helpers --
def _append(path: Path, line: str) -> None:
    """One ``write`` of one line in append mode, so concurrent writers do not interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _read(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Entries of the index and its size in bytes; a torn last line is skipped with a warning."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    entries = []
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            warnings.warn(f"{path} line {n} is not a JSON record (an interrupted write?); skipped",
                          RuntimeWarning, stacklevel=3)
    return entries, len(data)


def _rewrite_index(path: Path, entries: list[dict[str, Any]], size: int) -> None:
    text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
    appended = path.read_bytes()[size:]  # runs registered while we worked are kept
    write_text(path, text + appended.decode("utf-8", errors="replace"))


def _parse_time(value: Any, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{what} is {value!r}; expected an ISO time such as 2025-01-02T03:04:05+00:00") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def _escaped(needle: str) -> set[str]:
    """``needle`` as it may appear in HTML, a notebook (JSON) or a record (JSON, ASCII-escaped).

    A sha256 also as its first 12 digits, as reports show hashes (``86f2c44718e8…``).
    """
    forms = {needle, html.escape(needle), html.escape(needle, quote=False)}
    if _SHA256.fullmatch(needle):
        forms.add(needle[:12])
    return {g for f in forms for g in (f, json.dumps(f)[1:-1], json.dumps(f, ensure_ascii=False)[1:-1])}


def _holds(path: Path, patterns: list[str]) -> bool:
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return False
    return any(p in text for p in patterns)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _redact_record(path: Path, now: str) -> bool:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except ValueError:
        record = {}  # unreadable: nothing of it is kept
    kept = {k: record[k] for k in _KEEP if k in record}
    kept["parameter_names"] = sorted(record.get("parameters") or {})
    images = (record.get("data") or {}).get("images") or {}
    if "count" in images:
        kept["data"] = {"images": {"count": images["count"]}}
    if isinstance(record.get("error"), dict):
        kept["error"] = {k: record["error"][k] for k in ("cell", "name") if k in record["error"]}
    kept["redacted"] = {"at": now, "reason": "data subject erased; re-run the report"}
    write_text(path, json.dumps(kept, indent=2))
    return True


def _notice(entry: dict[str, Any], now: str) -> str:
    name = str(entry["name"])
    project = entry.get("project") or "PROJECT"
    out_dir = entry.get("out_dir") or str(Path(entry["html"]).parent)
    params = ", ".join(entry.get("parameters") or [])
    e = html.escape
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Report withdrawn: {e(name)}</title>
<style>body{{font-family:-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1f2328;max-width:760px;
margin:40px auto;padding:0 24px;line-height:1.5}}code,pre{{background:#f6f8fa;border-radius:6px}}
pre{{padding:12px;overflow-x:auto}}</style></head>
<body><main>
<h1>Report withdrawn</h1>
<p>The report <code>{e(name)}</code> made here was withdrawn on {e(now)} (UTC) after a request
to erase a person's data: it showed images that are no longer in the project. Its executed
notebook and evidence files were deleted.</p>
<p>Re-run it to get a current report:</p>
<pre>labkit report {e(name)} --project {e(str(project))} --out {e(out_dir)}</pre>
{f"<p>Give the parameters it was run with again ({e(params)}) as <code>-p KEY VALUE</code>.</p>" if params else ""}
</main></body></html>
"""
