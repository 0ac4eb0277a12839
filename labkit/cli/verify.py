"""``labkit verify``: re-hash a project's files and recompute its hash chain; exit 1 on any difference."""
from __future__ import annotations

import json

import click

from labkit.cli._common import PROJECT, SCHEDULER, ErrorsCommand, dask_client, open_project

#: Exit codes: 0 every file and the chain match; 1 a file changed, is missing or unreadable, or the
#: chain is broken; 2 cannot verify.
EXIT_OK, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2


class CannotVerify(click.ClickException):
    """The project cannot be opened, so nothing was checked (exit status 2)."""

    exit_code = EXIT_ERROR


_SHOWN = ["status", "kind", "image", "member", "path", "expected", "actual", "error"]


@click.command("verify", cls=ErrorsCommand)
@PROJECT
@click.option("--all", "show_all", is_flag=True, help="List every file checked, not only the problems.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (summary and files).")
@SCHEDULER
def verify(project, show_all, as_json, scheduler):
    """Re-hash every image and trained-pool weight file and compare with the recorded sha256;
    recompute the project's hash chain.

    Prints the files that changed, are missing or cannot be read, then every break of the
    hash chain (rows of annotations, their history, the audit log, images, members or
    classes changed outside labkit, and chain heads recorded by reports and exports that
    the chain no longer holds), then a summary. Exit status: 0 when everything matches,
    1 when anything does not (use it to gate CI), 2 when the project cannot be opened.
    With --scheduler the files are hashed by that Dask cluster's workers, which must see
    them at the same paths.
    """
    from labkit.services.verify import verify_project

    p = open_project(project, error=CannotVerify)
    try:
        with dask_client(scheduler, error=CannotVerify) as client:
            report = verify_project(p, client=client)
    finally:
        p.close()
    summary = report.attrs["summary"]
    breaks = report[report["kind"] == "chain"]
    shown = report if show_all else report[report["status"] != "ok"]
    shown = shown[shown["kind"] != "chain"]
    if as_json:
        files = json.loads(shown.to_json(orient="records", date_format="iso"))
        click.echo(json.dumps({"project": str(project), "summary": summary, "files": files,
                               "chain": report.attrs["chain"]}, indent=2))
    else:
        if len(shown):
            table = shown.assign(expected=shown["expected_sha256"].str[:12],
                                 actual=shown["actual_sha256"].str[:12])[_SHOWN]
            table = table[[c for c in _SHOWN if c in ("status", "kind", "path") or table[c].notna().any()]]
            click.echo(table.astype(object).where(table.notna(), "-").to_string(index=False))
        for message in breaks["error"]:
            click.echo(f"CHAIN BROKEN: {message}")
        click.echo(_chain_line(report.attrs["chain"], len(breaks)))
        click.echo(_summary_line(report))
    ctx = click.get_current_context()
    ctx.exit(EXIT_OK if summary["ok"] == len(report) else EXIT_MISMATCH)


def _chain_line(info: dict, breaks: int) -> str:
    if not info["checked"]:
        return f"hash chain not checked: {info['why']}"
    head = info["head"]
    at = f"head #{head['seq']} {head['head'][:12]}" if head else "no head"
    held = f"{info['anchors']} head(s) recorded by reports and exports"
    if not breaks:
        return f"OK: the hash chain holds ({info['blocks']} blocks, {at}; {held} found in it)"
    return f"FAILED: the hash chain is broken in {breaks} place(s) ({info['blocks']} blocks, {at}; {held})"


def _summary_line(report) -> str:
    report = report[report["kind"] != "chain"]
    s = report["status"].value_counts()
    kinds = report["kind"].value_counts()
    what = f"{kinds.get('image', 0)} images, {kinds.get('pool_weights', 0)} pool weight files"
    if s.get("ok", 0) == len(report):
        return f"OK: all {len(report)} files match their recorded sha256 ({what})"
    bad = ", ".join(f"{s.get(k, 0)} {k}" for k in ("changed", "missing", "unreadable") if s.get(k, 0))
    return f"FAILED: {bad}; {s.get('ok', 0)} of {len(report)} files match ({what})"
