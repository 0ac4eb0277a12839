"""What every command module shares: the project option, opening a project, and showing errors.

labkit's errors carry their fix twice (:class:`labkit.store.errors.Fix`): as Python code,
which ``str(exc)`` shows, and as a ``labkit`` command. A command shows the second, with
the project it was given (``-P`` or ``LOCATION``) filled in, as one clean message (exit
status 1), not a traceback. Commands and groups get this by being
:class:`ErrorsCommand` / :class:`ErrorsGroup` (``@click.command(cls=ErrorsCommand)``;
commands added to an ``ErrorsGroup`` are ``ErrorsCommand`` already), so it holds whether a
command runs under ``labkit`` or on its own.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from labkit.services.project import Project

__all__ = ["LOCATION", "PROJECT", "SCHEDULER", "USER_ERRORS", "ErrorsCommand", "ErrorsGroup", "dask_client",
           "open_project", "remember_project", "user_error"]

_PROJECT_KEY = "labkit.project"  # in ctx.meta, which every context of one command line shares


def remember_project(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Option callback: errors of this command line fill ``value`` in as the project of their fixes."""
    if value is not None:
        ctx.meta[_PROJECT_KEY] = value
    return value


#: The ``--project/-P`` option of commands that act on a project.
PROJECT = click.option("--project", "-P", "project", required=True, callback=remember_project,
                       help="Project folder (SQLite) or postgresql:// URL.")

#: The ``LOCATION`` argument of commands that name a project's place (``labkit project create``).
LOCATION = click.argument("location", callback=remember_project)

#: The ``--scheduler`` option of commands whose heavy part can run on a Dask cluster.
SCHEDULER = click.option(
    "--scheduler", "scheduler", envvar="LABKIT_DASK_SCHEDULER", default=None, metavar="ADDRESS",
    help="Run the heavy part on the Dask cluster of this scheduler (e.g. tcp://10.0.0.5:8786; default: "
         "$LABKIT_DASK_SCHEDULER, else on this machine). Needs labkit[dask].")


@contextmanager
def dask_client(address: str | None, *, error: type[click.ClickException] = click.ClickException) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler at ``address`` for the block (``None``: no cluster, yields None).

    A scheduler that cannot be reached (or ``distributed`` missing) raises ``error``.
    """
    if not address:
        yield None
        return
    from labkit._util.dask import connect

    try:
        client = connect(address)
    except (ImportError, OSError, ValueError) as exc:
        raise error(str(exc)) from exc
    try:
        yield client
    finally:
        client.close()


def USER_ERRORS() -> tuple[type[Exception], ...]:
    """labkit's errors about bad input: shown as one clean message, not a traceback."""
    from labkit.services.interchange import ImportProblem
    from labkit.store.errors import FixableError, ImageError, ProjectError

    return (FixableError, ProjectError, ImageError, ImportProblem, ValueError, FileNotFoundError, PermissionError)


def user_error(exc: Exception, project: str | None = None, *,
               cls: type[click.ClickException] = click.ClickException) -> click.ClickException:
    """``exc`` as a command-line error: its fix as a ``labkit`` command for ``project``.

    ``project`` defaults to the one this command line was given. A URL's password is
    masked in the message.
    """
    from labkit.store.errors import FixableError

    if project is None:
        ctx = click.get_current_context(silent=True)
        project = ctx.meta.get(_PROJECT_KEY) if ctx is not None else None
    if not isinstance(exc, FixableError):
        return cls(str(exc))
    if project is not None and "://" in str(project):
        from labkit.store.engine import safe_location

        project = safe_location(str(project))
    return cls(exc.cli_message(None if project is None else str(project)))


def open_project(location: str, *, error: type[click.ClickException] = click.ClickException) -> Project:
    """Open the project at ``location`` as ``$LABKIT_USER`` (PostgreSQL: the URL's login).

    A project that cannot be opened raises ``error`` (a :class:`click.ClickException`,
    exit status 1, unless the command defines its own) with labkit's message.
    """
    from labkit.services.project import Project

    try:
        return Project.open(location)
    except USER_ERRORS() as exc:
        raise user_error(exc, location, cls=error) from exc


class ErrorsCommand(click.Command):
    """A command that shows labkit's errors (bad input) as one message speaking the command line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS() as exc:
            raise user_error(exc, ctx.meta.get(_PROJECT_KEY)) from exc


class ErrorsGroup(click.Group):
    """A command group that shows labkit's errors as :class:`ErrorsCommand` does; its commands are ErrorsCommands."""

    command_class = ErrorsCommand
    group_class = type  # subgroups are ErrorsGroups too

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS() as exc:
            raise user_error(exc, ctx.meta.get(_PROJECT_KEY)) from exc
