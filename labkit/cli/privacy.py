"""``labkit privacy ...``: consent, erasure, retention and the privacy report.

Commands act as ``$LABKIT_USER`` (default: the login name), who must be an admin of
the project; on PostgreSQL, as the login in the URL.
"""
from __future__ import annotations

import json

import click

from labkit.cli._common import PROJECT, ErrorsGroup, open_project


@click.group(cls=ErrorsGroup)
def privacy():
    """Data subjects: consent, erasure, retention and the privacy report."""


@privacy.command("report")
@PROJECT
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the report as a self-contained HTML page.")
def privacy_report(project, as_json, html_out):
    """Subjects past retention, withdrawn consents, who accessed what, denials, erasures, exports."""
    from pathlib import Path

    rep = open_project(project).privacy_report()
    if html_out:
        Path(html_out).write_text(f"<!doctype html><meta charset='utf-8'><title>Privacy report</title>"
                                  f"<body>{rep._repr_html_()}</body>", encoding="utf-8")
    click.echo(json.dumps(rep.to_dict(), indent=2, default=str) if as_json else rep.to_text())


@privacy.command("subjects")
@PROJECT
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def privacy_subjects(project, as_json):
    """List the data subjects: consent, purpose, dates and image counts (admins only)."""
    table = open_project(project).subjects()
    if as_json:
        click.echo(table.reset_index().to_json(orient="records", date_format="iso", indent=2))
    else:
        click.echo(table.to_string() if len(table) else "no data subjects")


@privacy.command("consent")
@PROJECT
@click.argument("subject")
@click.option("--status", type=click.Choice(["given", "withdrawn", "unknown"]), default="given", show_default=True)
@click.option("--purpose", default=None, help="What the subject's data may be used for.")
def privacy_consent(project, subject, status, purpose):
    """Record SUBJECT's consent status (and purpose)."""
    p = open_project(project)
    p.set_consent(subject, status, by=p.user, purpose=purpose)
    click.echo(f"consent of {subject}: {status}")


@privacy.command("withdraw")
@PROJECT
@click.argument("subject")
def privacy_withdraw(project, subject):
    """SUBJECT withdrew consent: keep the data, stop all processing of it."""
    p = open_project(project)
    p.withdraw_consent(subject, by=p.user)
    click.echo(f"consent of {subject} withdrawn; their images are excluded from assignments, training, "
               "scoring and exports")


@privacy.command("forget")
@PROJECT
@click.argument("subject")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def privacy_forget(project, subject, yes):
    """Erase SUBJECT: images, annotations, caches, predictions, report evidence. Irreversible."""
    p = open_project(project)
    if not yes:
        click.confirm(f"Erase every record of subject {subject!r} from {p!r}? This cannot be undone", abort=True)
    out = p.forget_subject(subject, by=p.user)
    click.echo(json.dumps(out.to_dict(), indent=2))


@privacy.command("retention")
@PROJECT
@click.argument("days", type=int, required=False)
@click.option("--clear", is_flag=True, help="Remove the retention period.")
def privacy_retention(project, days, clear):
    """Show, set (DAYS) or --clear the project's retention period."""
    p = open_project(project)
    if clear or days is not None:
        p.set_retention(None if clear else days, by=p.user)
    click.echo(f"retention period: {p.retention() or 'not set'}" + (" days" if p.retention() else ""))
