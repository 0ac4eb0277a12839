"""``labkit demo``: build the demo project and summarise it."""
from __future__ import annotations

import click

from labkit.cli._common import ErrorsCommand


@click.command(cls=ErrorsCommand)
@click.option("--out", default="demo_project", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo project.")
@click.option("--digits", "n_digits", default=300, show_default=True, help="How many digit images.")
@click.option("--seed", default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rebuild an existing demo project in --out.")
@click.option("--audit", is_flag=True,
              help="Then train the model pool and render the quality audit report (<out>/reports).")
def demo(out, n_digits, seed, force, audit):
    """Build the demo project from images that ship with installed packages and summarise it."""
    import time

    from labkit.demo import audit_demo, build_demo, summary

    t = time.perf_counter()
    click.echo(f"building the demo project in {out} ({n_digits} digits, 4 photos, simulated annotators) ...")
    p = build_demo(out, n_digits=n_digits, seed=seed, force=force)
    click.echo(f"building the demo project: done in {time.perf_counter() - t:.0f} s")
    click.echo(summary(p))
    if audit:
        result = audit_demo(p, f"{out}/reports", log=click.echo)
        click.echo(f"audit report: {result.html}")
        click.echo(_verdict_line(result.html.parent / "verdict.json"))


def _verdict_line(path) -> str:
    """``verdict FAIL: 1 of 9 clauses fail (agreement)`` from the audit's verdict.json."""
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    failed = [c["clause"] for c in data["clauses"] if c["status"] == "FAIL"]
    line = f"verdict {data['overall']}: {len(failed)} of {len(data['clauses'])} clauses fail"
    return line + (f" ({', '.join(failed)})" if failed else "")
