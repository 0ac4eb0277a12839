"""What every command module shares: the ``--project`` option and opening a project."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from labkit.services.project import Project

__all__ = ["PROJECT", "USER_ERRORS", "ErrorsGroup", "open_project"]

#: The ``--project/-P`` option of commands that act on a project.
PROJECT = click.option("--project", "-P", "project", required=True,
                       help="Project folder (SQLite) or postgresql:// URL.")


def USER_ERRORS() -> tuple[type[Exception], ...]:
    """labkit's errors about bad input: shown as one clean message, not a traceback."""
    from labkit.services.interchange import ImportProblem
    from labkit.store.errors import ImageError, ProjectError

    return (ProjectError, ImageError, ImportProblem, ValueError, FileNotFoundError, PermissionError)


def open_project(location: str, *, error: type[click.ClickException] = click.ClickException) -> Project:
    """Open the project at ``location`` as ``$LABKIT_USER`` (PostgreSQL: the URL's login).

    A project that cannot be opened raises ``error`` (a :class:`click.ClickException`,
    exit status 1, unless the command defines its own) with labkit's message.
    """
    from labkit.services.project import Project

    try:
        return Project.open(location)
    except USER_ERRORS() as exc:  # also when a command runs without the `labkit` group around it
        raise error(str(exc)) from exc


class ErrorsGroup(click.Group):
    """A command group that shows labkit's own errors (bad input) as one message, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except USER_ERRORS() as exc:
            raise click.ClickException(str(exc)) from exc
