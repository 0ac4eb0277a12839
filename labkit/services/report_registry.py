"""Where a project's reports went, and withdrawing them when a data subject is erased.

A report embeds evidence computed from the project's images (thumbnails, tables of ids
and paths), so a report made while a person's images were in the project holds their
data wherever it was written. :func:`~labkit.reports.run_report` therefore appends one
line per run to ``<project>/reports/index.jsonl`` (:func:`register`, :func:`registered`),
and :func:`forget_reports` withdraws the reports that may show erased images: their
executed notebook and the files the run wrote beside it are deleted, the HTML is replaced
by a short notice saying how to re-run the report, and the JSON record keeps only what
holds no personal data.
"""
from __future__ import annotations

import html
import json
import os
import re
import uuid
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labkit._util.atomic import write_text
from labkit._util.clock import utc_iso

__all__ = ["INDEX", "forget_reports", "register", "registered"]

#: The registry, relative to the project folder.
INDEX = Path("reports") / "index.jsonl"
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
    path = Path(root) / INDEX
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
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


# ---------------------------------------------------------------------- helpers --
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
