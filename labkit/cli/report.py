"""``labkit report`` and ``labkit inspect``: run report notebooks; draw the inspection sample."""
from __future__ import annotations

import click

from labkit.cli._common import PROJECT, ErrorsCommand, open_project, remember_project


@click.command("report", cls=ErrorsCommand)
@click.argument("name", required=False)
@click.option("--project", "-P", "project", callback=remember_project,
              help="Project folder (SQLite) or postgresql:// URL.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Folder for the report files.")
@click.option("--contract", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Contract TOML file (sets the notebook's 'contract' parameter).")
@click.option("-p", "--param", "params", multiple=True, nargs=2, metavar="KEY VALUE",
              help="A notebook parameter; repeat for several. Unknown names are an error.")
@click.option("--list", "list_", is_flag=True, help="List the report notebooks and their parameters.")
def report(name, project, out_dir, contract, params, list_):
    """Run report notebook NAME (notebooks/NAME.ipynb) on a project and render offline HTML.

    Writes NAME.ipynb (executed), NAME.html (no code) and NAME.json (version, parameters,
    data hashes, time) to --out. Prints the HTML path.
    """
    from labkit.reports.runner import (
        ReportError,
        ReportParameterError,
        list_reports,
        report_parameters,
        run_report,
    )

    if list_:
        for r in list_reports():
            click.echo(r)
            for k, d in report_parameters(r).items():
                click.echo(f"  {k:<14} {d['type']:<6} default {d['default']!r:<22} {d['help']}")
        return
    if not name or not project or not out_dir:
        raise click.UsageError("give NAME, --project and --out (or --list)")
    values = dict(params)
    if len(values) != len(params):
        raise click.UsageError("a parameter is given twice with -p")
    if contract is not None:
        values["contract"] = contract
    try:
        result = run_report(name, project=project, out_dir=out_dir, params=values, from_strings=True)
    except (ReportError, ReportParameterError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(str(result.html))


@click.command("inspect", cls=ErrorsCommand)
@PROJECT
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="The inspection sheet to write (CSV).")
@click.option("--contract", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Contract TOML file (default: labkit's default contract).")
@click.option("--seed", default=-1, show_default=True, help="Sampling seed; -1: the contract's.")
@click.option("--force", is_flag=True, help="Overwrite an existing sheet.")
def inspect(project, out_path, contract, seed, force):
    """Draw the ISO 2859-1 sample for a contract and write its inspection sheet.

    Inspectors mark each image ok/defect (defect_type key or minor); pass the sheet to
    the audit with `labkit report quality_audit ... -p inspection SHEET`.
    """
    from labkit.quality.acceptance import load_contract
    from labkit.reports.audit import DEFAULT_CONTRACT, plan_inspection, write_sheet
    p = open_project(project)
    c = load_contract(contract or DEFAULT_CONTRACT)
    plan = plan_inspection(p.images().index, c, seed=seed)
    if not plan.plans:
        raise click.ClickException("the contract sets no key_error_rate or annotation_error_rate to inspect")
    for clause, pl in plan.plans.items():
        click.echo(f"{clause}: {pl.describe()}")
    try:
        path = write_sheet(p, plan, out_path, overwrite=force)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path} ({len(plan.sample)} images, seed {plan.seed})")
