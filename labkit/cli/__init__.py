"""The ``labkit`` command line: one module per command group, registered here.

A new command is a ``click`` command in its own module (copy :mod:`labkit.cli.migrate`),
added to :data:`COMMANDS` below. Command modules import only click at module level;
labkit's heavier parts load when a command runs. Commands are
:class:`~labkit.cli._common.ErrorsCommand` (groups :class:`~labkit.cli._common.ErrorsGroup`)
and take the project as ``PROJECT`` (``-P``) or ``LOCATION``: labkit's errors then show
their fix as a ``labkit`` command for that project, not as Python.
"""
from __future__ import annotations

import sys

import click

from labkit._version import __version__
from labkit.cli import (
    demo,
    embed,
    interchange,
    migrate,
    pool,
    prelabel,
    privacy,
    project,
    report,
    verify,
)
from labkit.cli._common import ErrorsGroup


@click.group(cls=ErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="labkit")
def main():
    """labkit: label images with SAM, score difficulty, measure agreement, audit quality."""


COMMANDS = [demo.demo, project.project, project.images, project.classes, project.annotators, project.assign,
            interchange.import_, interchange.export, interchange.formats, embed.embed, report.report,
            report.inspect, pool.pool, pool.issues, prelabel.prelabel, privacy.privacy, migrate.migrate,
            verify.verify]
for _command in COMMANDS:
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
