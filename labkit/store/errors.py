"""Errors of the project store."""


class ProjectError(ValueError):
    """A project cannot be created, opened or changed as asked; the message says why."""
