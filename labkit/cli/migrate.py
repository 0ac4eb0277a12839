"""``labkit migrate``: upgrade an older project's schema in place."""
from __future__ import annotations

import click

from labkit.cli._common import PROJECT, ErrorsCommand


@click.command("migrate", cls=ErrorsCommand)
@PROJECT
def migrate(project):
    """Upgrade an older project's schema in place (a folder project is backed up first)."""
    from labkit.store.migrate import migrate as run

    steps = run(project)
    click.echo("\n".join(steps) if steps else "the project is already current")
