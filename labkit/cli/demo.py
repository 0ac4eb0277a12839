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
def demo(out, n_digits, seed, force):
    """Build the demo project from images that ship with installed packages and summarise it."""
    from labkit.demo import build_demo, summary

    p = build_demo(out, n_digits=n_digits, seed=seed, force=force)
    click.echo(summary(p))
