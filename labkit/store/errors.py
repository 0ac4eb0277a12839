"""Errors of the project store. Each message names the problem and the fix.

The fix is said in the language of whoever called. Raised to Python code, ``str(exc)``
shows it as Python::

    unknown annotator 'zed'; known: ['ana']; register it with project.add_annotator('zed') if it is new

and the ``labkit`` command line shows it as a command (:meth:`FixableError.cli_message`,
with the project it was given)::

    unknown annotator 'zed'; known: ['ana']; register it with `labkit annotators add -P proj zed` if it is new

Code that raises one says both, once, where it knows what went wrong::

    raise ProjectError(f"unknown annotator {name!r}; known: {known}", fix=Fix(
        f"register it with project.add_annotator({name!r}) if it is new",
        f"register it with {command('annotators', 'add', '-P', PROJECT, name)} if it is new"))

:data:`PROJECT` marks where the command line puts the project it was given (``-P``).

This module imports only the standard library, so every layer may raise these errors.
"""
from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["PROJECT", "AccessDenied", "Fix", "FixableError", "ImageError", "ProjectError", "clauses", "command"]

#: Placeholder in :attr:`Fix.cli` for the project location; the command line fills in its ``-P`` value.
PROJECT = "{project}"


def command(*words: str) -> str:
    """A ``labkit`` command line for a :class:`Fix`, in backticks, each word shell-quoted.

    :data:`PROJECT` is kept as the placeholder; the command line quotes what it puts there.

    Examples
    --------
    >>> command("annotators", "add", "-P", PROJECT, "Dr. Ana")
    "`labkit annotators add -P {project} 'Dr. Ana'`"
    """
    return "`labkit " + " ".join(w if w == PROJECT else shlex.quote(str(w)) for w in words) + "`"


@dataclass(frozen=True)
class Fix:
    """How to fix an error, twice: as Python code and as a ``labkit`` command.

    Attributes
    ----------
    python : str
        The fix for Python code, e.g. ``"register it first with project.add_annotator('zed')"``.
    cli : str or None
        The same fix on the command line (:func:`command` builds the commands; :data:`PROJECT`
        stands for the project). ``None`` when no command does it: the command line then
        shows the problem alone rather than Python code.
    """

    python: str
    cli: str | None = None

    @staticmethod
    def join(fixes: Iterable[Fix | None]) -> Fix | None:
        """One fix saying each of ``fixes`` (duplicates and ``None`` dropped), or ``None``."""
        distinct = list(dict.fromkeys(f for f in fixes if f is not None))
        if len(distinct) <= 1:
            return distinct[0] if distinct else None
        cli = [f.cli for f in distinct if f.cli]
        return Fix("; ".join(f.python for f in distinct), "; ".join(cli) if cli else None)


def clauses(*parts: str | None) -> str:
    """``parts`` as one message: joined by "; ", or as new sentences after a question or a list of lines.

    Examples
    --------
    >>> clauses("unknown class 'cow'", "nothing was stored")
    "unknown class 'cow'; nothing was stored"
    >>> clauses("unknown class 'Cat'; did you mean 'cat'?", "nothing was stored")
    "unknown class 'Cat'; did you mean 'cat'? Nothing was stored"
    """
    out = ""
    for part in parts:
        if not part:
            continue
        if not out:
            out = part
        elif "\n" in out:
            out += f"\n{part[:1].upper()}{part[1:]}"
        elif out.endswith("?"):  # after "did you mean ...?" a new sentence
            out += f" {part[:1].upper()}{part[1:]}"
        else:
            out += f"; {part}"
    return out


def _restore(cls: type[FixableError], args: tuple[Any, ...]) -> FixableError:
    exc = cls.__new__(cls, *args)
    BaseException.__init__(exc, *args)
    return exc


class FixableError(Exception):
    """A labkit error that says what went wrong (``problem``) and how to fix it (``fix``).

    ``str(exc)`` is the problem and the Python fix; :meth:`cli_message` is the problem
    and the command-line fix.
    """

    def __init__(self, problem: str, *, fix: Fix | None = None):
        self.problem, self.fix = problem, fix
        super().__init__(clauses(problem, fix.python if fix else None))

    def cli_message(self, project: str | None = None) -> str:
        """The message for the command line, with ``project`` (the ``-P`` value) in its commands."""
        cli = self.fix.cli if self.fix else None
        if cli is not None:
            cli = cli.replace(PROJECT, shlex.quote(str(project)) if project else "PROJECT")
        return clauses(self.problem, cli)

    def reworded(self, prefix: str = "", then: str | None = None) -> FixableError:
        """The same error and fix, its problem said as ``prefix + problem``, followed by the clause ``then``."""
        exc = _restore(type(self), self.args)
        exc.__dict__.update(self.__dict__)
        FixableError.__init__(exc, clauses(prefix + self.problem, then), fix=self.fix)
        return exc

    def __reduce__(self) -> Any:  # keyword-only arguments: pickle the state, not the constructor call
        return _restore, (type(self), self.args), self.__dict__


class ProjectError(FixableError, ValueError):
    """A project cannot be created, opened or changed as asked; the message says why."""


class ImageError(FixableError, ValueError):
    """One or more image files cannot be used; the message lists each with its problem."""


class AccessDenied(FixableError, PermissionError):
    """The acting user's role does not allow this; nothing was changed (and it was logged)."""

    def __init__(self, message: str, *, actor: str, action: str, details: dict[str, Any] | None = None,
                 fix: Fix | None = None):
        super().__init__(message, fix=fix)
        self.actor, self.action, self.details = actor, action, details or {}
