"""Errors of the project store. Each message names the problem and the fix."""
from __future__ import annotations

from typing import Any

__all__ = ["AccessDenied", "ImageError", "ProjectError"]


class ProjectError(ValueError):
    """A project cannot be created, opened or changed as asked; the message says why."""


class ImageError(ValueError):
    """One or more image files cannot be used; the message lists each with its problem."""


class AccessDenied(PermissionError):
    """The acting user's role does not allow this; nothing was changed (and it was logged)."""

    def __init__(self, message: str, *, actor: str, action: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.actor, self.action, self.details = actor, action, details or {}
