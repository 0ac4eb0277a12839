"""Run a report notebook through papermill and render it to offline HTML.

``run_report("quality_audit", project=..., out_dir=...)`` finds
``notebooks/quality_audit.ipynb``, checks the parameters against the notebook's
``parameters`` cell (an unknown name is an error listing the valid ones; values are
checked as data against each parameter's type, never evaluated), executes it with
papermill in ``out_dir`` and writes there:

- ``NAME.ipynb``: the executed notebook (kept when a cell fails);
- ``NAME.html``: the report without code cells, readable offline (also on failure,
  showing the error);
- ``NAME.json``: the record: labkit's version, parameters, data hashes (with the head of the
  project's hash chain), times, status.

Each run is registered in the project (``<project>/reports/index.jsonl``, see
:mod:`labkit.services.report_registry`) with the files it wrote, so that the reports showing a
data subject's images can be withdrawn when the subject is erased, and with the chain head
it saw, which ``labkit verify`` checks is still in the chain.
"""
from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit._util.clock import utc_iso

from .provenance import data_fingerprint, environment
from .render import render_html

__all__ = ["ReportError", "ReportParameterError", "ReportResult", "list_reports", "notebooks_dir",
           "report_parameters", "coerce_parameters", "run_report"]


class ReportError(RuntimeError):
    """A report notebook failed; the executed notebook and an HTML with the error were written."""


class ReportParameterError(ValueError):
    """Parameters that the report notebook does not declare, or of the wrong type."""


@dataclass(frozen=True)
class ReportResult:
    name: str
    html: Path
    notebook: Path
    record: Path
    ok: bool
    parameters: dict


def notebooks_dir() -> Path:
    """Where report notebooks live: ``$LABKIT_NOTEBOOKS``, else ``notebooks/`` beside the labkit package."""
    env = os.environ.get("LABKIT_NOTEBOOKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "notebooks"


def _notebook_path(name: str | Path, folder: Path | None) -> Path:
    p = Path(name)
    if p.suffix == ".ipynb":
        if not p.is_file():
            raise FileNotFoundError(f"no notebook {p}")
        return p
    folder = folder or notebooks_dir()
    path = folder / f"{name}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"no report {name!r} in {folder}; available: {list_reports(folder)}")
    return path


def list_reports(folder: str | Path | None = None) -> list[str]:
    """Names of the notebooks in ``folder`` that have a ``parameters`` cell."""
    import nbformat

    folder = Path(folder) if folder is not None else notebooks_dir()
    names = []
    for p in sorted(folder.glob("*.ipynb")):
        try:
            nb = nbformat.read(str(p), as_version=4)
        except Exception:  # not a notebook we can read: not a report
            continue
        if any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
            names.append(p.stem)
    return names


def report_parameters(name: str | Path, *, folder: str | Path | None = None) -> dict[str, dict]:
    """The parameters a report declares: name -> ``{"type", "default", "help"}``.

    Read from the cell tagged ``parameters`` with papermill's Python translator (the
    report kernel is always ``python3``, whatever the notebook's own metadata says).
    """
    import nbformat
    from papermill.translators import PythonTranslator

    path = _notebook_path(name, Path(folder) if folder else None)
    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ReportParameterError(f"{path} has no cell tagged 'parameters'; tag one to make it a report")
    declared = {p.name: p._asdict() for p in PythonTranslator.inspect(cells[0])}
    out = {}
    for key, d in declared.items():
        try:
            default = ast.literal_eval(d["default"])  # the notebook's own literal, not user input
        except (ValueError, SyntaxError):
            default = d["default"]
        out[key] = {"type": _type_of(d.get("inferred_type_name"), default), "default": default,
                    "help": d.get("help", "")}
    return out


_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


def _type_of(annotation: str | None, default: Any) -> str:
    ann = (annotation or "None").replace("typing.", "").strip()
    m = re.fullmatch(r"Optional\[(\w+)\]|(\w+)\s*\|\s*None|None\s*\|\s*(\w+)", ann)
    if m:
        ann = next(g for g in m.groups() if g)
    if ann in _TYPES:
        return ann
    if default is None:
        return "any"
    return type(default).__name__ if type(default).__name__ in _TYPES else "any"


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "1", "yes", "on"):
        return True
    if t in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


def coerce_parameters(declared: dict[str, dict], params: dict[str, Any], *, from_strings: bool = False,
                      report: str = "report") -> dict[str, Any]:
    """Check ``params`` against ``declared``; with ``from_strings`` (the CLI), convert text to each type.

    Values are treated as data: strings are parsed as int/float/bool only where the
    parameter has that type, and never evaluated as code.
    """
    unknown = sorted(set(params) - set(declared))
    if unknown:
        listing = "; ".join(f"{k} ({d['type']}, default {d['default']!r})" for k, d in declared.items())
        raise ReportParameterError(f"unknown parameter(s) {unknown} for report {report!r}; its parameters "
                                   f"are: {listing}")
    out = {}
    for key, value in params.items():
        kind = declared[key]["type"]
        try:
            if from_strings and isinstance(value, str) and kind in ("int", "float", "bool"):
                parse: dict[str, Any] = {"int": int, "float": float, "bool": _bool}
                value = parse[kind](value)
            if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            ok = kind == "any" and (value is None or isinstance(value, (str, int, float, bool, list, dict))) \
                or kind != "any" and isinstance(value, _TYPES[kind]) \
                and not (kind in ("int", "float") and isinstance(value, bool))
            if not ok and value is None and declared[key]["default"] is None:
                ok = True
            if not ok:
                raise ValueError(f"expected {kind}, got {type(value).__name__}")
        except ValueError as exc:
            raise ReportParameterError(f"parameter {key}={value!r} of report {report!r}: {exc}") from None
        out[key] = value
    return out


def run_report(name: str | Path, *, project: str | Path, out_dir: str | Path, params: dict | None = None,
               from_strings: bool = False, folder: str | Path | None = None, timeout: int | None = 1800,
               kernel_name: str = "python3", workdir: str | Path | None = None) -> ReportResult:
    """Execute report ``name`` on ``project`` and render it; return where everything went.

    Parameters
    ----------
    name : str or path
        A notebook in :func:`notebooks_dir` (``"quality_audit"``) or a path to one.
    project : path or URL
        Passed as the notebook's ``project`` parameter (made absolute for folders).
    out_dir : path
        Created if missing; the notebook runs with this working directory.
    params : dict, optional
        Other parameters of the notebook's ``parameters`` cell.
    from_strings : bool
        Values are text from a command line: convert them to each parameter's type.
    workdir : path, optional
        For a PostgreSQL project opened with ``Project.open(url, workdir=...)``: its local
        folder, where the run is registered (see :mod:`labkit.services.report_registry`).

    Raises
    ------
    ReportParameterError
        Before running, for parameters the notebook does not declare or of a wrong type.
    ReportError
        When a cell fails; the executed notebook and an HTML showing the error are written first.
    """
    from labkit.store.engine import is_url

    path = _notebook_path(name, Path(folder) if folder else None)
    report = path.stem
    declared = report_parameters(path)
    if "project" not in declared:
        raise ReportParameterError(f"report {report!r} has no 'project' parameter; its parameters: {list(declared)}")
    given = dict(params or {})
    if "project" in given:
        raise ReportParameterError("pass the project as run_report(..., project=...), not in params")
    values = coerce_parameters(declared, given, from_strings=from_strings, report=report)
    if is_url(project):
        values["project"], password = _without_password(str(project))
    else:
        values["project"], password = str(Path(project).resolve()), None
    with _pgpassword(password):  # the kernel inherits it; the notebook and records never see it
        return _run(path, report, values, out_dir, kernel_name, timeout, workdir)


@contextlib.contextmanager
def _pgpassword(password: str | None):
    """Pass a database password to libpq (and the report's kernel) through ``PGPASSWORD``."""
    if password is None:
        yield
        return
    old = os.environ.get("PGPASSWORD")
    os.environ["PGPASSWORD"] = password
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PGPASSWORD", None)
        else:
            os.environ["PGPASSWORD"] = old


def _without_password(url: str) -> tuple[str, str | None]:
    import sqlalchemy as sa

    u = sa.make_url(str(url))
    return u.set(password=None).render_as_string(hide_password=False), u.password


def _run(path: Path, report: str, values: dict, out_dir, kernel_name, timeout, workdir) -> ReportResult:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    for key in ("contract", "inspection", "predictions"):  # paths given relative to the caller
        v = values.get(key)
        if isinstance(v, str) and v and v not in ("auto", "none") and not Path(v).is_absolute() and Path(v).exists():
            values[key] = str(Path(v).resolve())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nb_out, html_out, rec_out = out / f"{report}.ipynb", out / f"{report}.html", out / f"{report}.json"
    before = _listing(out)
    record: dict[str, Any] = {"report": report, "notebook_source": str(path), "parameters": values,
                              "environment": environment(), "started_at": utc_iso(),
                              "sidecar_name": rec_out.name, "title": values.get("title") or report}
    record["data"] = data_fingerprint(values["project"])
    error = None
    try:
        with _kernel_sockets() as manager:
            pm.execute_notebook(str(path), str(nb_out), parameters=values, kernel_name=kernel_name,
                                language="python", cwd=str(out), progress_bar=False, log_output=False,
                                execution_timeout=timeout, **manager)
    except PapermillExecutionError as exc:
        error = exc
    record["finished_at"] = utc_iso()
    record["status"] = "failed" if error else "ok"
    if error is not None:
        record["error"] = {"cell": error.exec_count, "name": error.ename, "message": error.evalue}
    record.update(notebook=str(nb_out), html=str(html_out))
    render_html(nb_out, html_out, record=record)
    rec_out.write_text(json.dumps(record, indent=2, default=str))
    own = {nb_out.resolve(), html_out.resolve(), rec_out.resolve()}
    written = sorted(str(p) for p, stamp in _listing(out).items() if before.get(p) != stamp and p not in own)
    _register(values["project"], workdir, {
        "name": report, "html": str(html_out.resolve()), "notebook": str(nb_out.resolve()),
        "record": str(rec_out.resolve()), "out_dir": str(out.resolve()), "outputs": written,
        "parameters": sorted(k for k in values if k != "project"), "created_at": record["started_at"],
        "finished_at": record["finished_at"], "status": record["status"], "chain": record["data"].get("chain")})
    if error is not None:
        raise ReportError(f"report {report!r} failed in cell {error.exec_count}: {error.ename}: {error.evalue}. "
                          f"The executed notebook is {nb_out} and the HTML with the error is {html_out}")
    return ReportResult(name=report, html=html_out, notebook=nb_out, record=rec_out, ok=True, parameters=values)


@contextlib.contextmanager
def _kernel_sockets() -> Iterator[dict[str, Any]]:
    """Run the report's kernel on Unix sockets in a private folder (POSIX), not on TCP.

    Nothing then listens on the network, and the kernel does not warn that it runs over
    TCP without encryption. Yields papermill's ``kernel_manager_class`` option (none on
    Windows, which has no IPC transport).
    """
    if os.name == "nt":
        yield {}
        return
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    with tempfile.TemporaryDirectory(prefix="labkit-kernel-") as folder:  # created 0700
        sockets = str(Path(folder) / "kernel")

        class LocalKernelManager(AsyncKernelManager):
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(transport="ipc", ip=sockets, **kwargs)

            async def _async_interrupt_kernel(self) -> None:
                # jupyter_client sends SIGINT before it asks a kernel to shut down; one still
                # handling a message then logs "KeyboardInterrupt caught in kernel" into the
                # run's log. The notebook has run by then: ask without the interrupt (a kernel
                # that does not stop is still terminated, then killed, after shutdown_wait_time).
                if not self.shutting_down:
                    await super()._async_interrupt_kernel()

        yield {"kernel_manager_class": LocalKernelManager}


def _listing(folder: Path) -> dict[Path, tuple[int, int]]:
    """Files directly in ``folder`` (absolute) with their modification time and size."""
    out = {}
    for entry in os.scandir(folder):
        if entry.is_file():
            st = entry.stat()
            out[Path(entry.path).resolve()] = (st.st_mtime_ns, st.st_size)
    return out


def _register(location: str, workdir, entry: dict) -> None:
    """Record the run in the project's report registry; warn, never fail the report, when impossible."""
    import sqlalchemy as sa

    from labkit.services.report_registry import register
    from labkit.store.engine import is_url

    try:
        if is_url(location):
            from labkit.services.project import Project

            p = Project.open(location, workdir=workdir)
            try:
                root = p.root
            finally:
                p.close()
            entry["project"] = sa.make_url(location).render_as_string(hide_password=True)
        else:
            root, entry["project"] = Path(location), location
        register(root, entry)
    except Exception as exc:  # the report itself is done; erasure must know it was not registered
        why = (str(exc).splitlines() or [""])[0]
        warnings.warn(f"report {entry['name']!r} was not registered in the project ({type(exc).__name__}: "
                      f"{why}); labkit.reports.forget_reports will not find {entry['html']}",
                      RuntimeWarning, stacklevel=3)
