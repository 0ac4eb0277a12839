"""The taxonomy: class names in display order."""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from labkit._util.checks import name_problem, unknown_names
from labkit.store import schema as S
from labkit.store.context import StoreContext
from labkit.store.errors import PROJECT, Fix, ProjectError, command

__all__ = ["ClassRepository", "add_classes_fix", "check_class_names", "unknown_classes"]


class ClassRepository:
    """The project's classes (table ``classes``)."""

    def __init__(self, ctx: StoreContext):
        self._ctx = ctx

    def names(self) -> list[str]:
        """Class names in display order."""
        with self._ctx.connect() as conn:
            return list(conn.execute(sa.select(S.classes.c.name).order_by(S.classes.c.position)).scalars())

    def add(self, names: Sequence[str]) -> None:
        """Append classes to the taxonomy (existing names are an error). Admins only."""
        names = check_class_names(names)

        def fn(conn: sa.Connection) -> None:
            self._ctx.policy.require_admin(conn, "add_classes", "change the taxonomy")
            have = self.ids(conn)
            dup = [n for n in names if n in have]
            if dup:
                new = [n for n in names if n not in have]
                raise ProjectError(f"classes already in the project: {dup} (it has {list(have)[:30]}); "
                                   "nothing was added", fix=add_classes_fix(new, "add only the new ones with")
                                   if new else None)
            self.append(conn, names)
            self._ctx.audit(conn, "add_classes", target="classes", classes=list(names))
        self._ctx.write(fn)

    # ------------------------------------------------- inside a transaction --
    def ids(self, conn: sa.Connection) -> dict[str, int]:
        """``{name: id}`` of every class, in display order (messages list them so)."""
        return dict(conn.execute(sa.select(S.classes.c.name, S.classes.c.id).order_by(S.classes.c.position)).all())

    def append(self, conn: sa.Connection, names: Sequence[str]) -> None:
        """Insert new classes after the last one (the caller checked names and rights)."""
        if not names:
            return
        start = conn.execute(sa.select(sa.func.coalesce(sa.func.max(S.classes.c.position), -1))).scalar_one() + 1
        conn.execute(sa.insert(S.classes), [{"name": n, "position": start + i} for i, n in enumerate(names)])


def check_class_names(names: Sequence[str]) -> list[str]:
    """``names`` as a list, if they are unique valid names; else one ProjectError naming every bad one.

    The rules (:func:`labkit._util.checks.name_problem`) are the same for every way a
    class enters a project: ``Project.create``, ``add_classes`` and an import with
    ``add_classes=True``. A name is a string, not blank, at most 256 characters, without
    control characters.
    """
    if isinstance(names, str) or not isinstance(names, Sequence) and not hasattr(names, "__iter__"):
        raise ProjectError(f"classes must be a list of names, got {names!r}")
    names = list(names)
    bad = [p for n in names if (p := name_problem(n)) is not None]
    if bad:
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise ProjectError("invalid class names; nothing was added: " + "; ".join(bad[:10]) + more)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ProjectError(f"class names must be unique; repeated: {dup}")
    return names


def add_classes_fix(names: Sequence[str], how: str = "add them with", when: str = "") -> Fix:
    """The fix "add these classes": ``project.add_classes([...])``, ``labkit classes add -P ... NAME...``."""
    return Fix(f"{how} project.add_classes({list(names)!r}){when}",
               f"{how} {command('classes', 'add', '-P', PROJECT, *names)}{when}")


def unknown_classes(unknown: Sequence[str], known: Sequence[str]) -> ProjectError:
    """The error for class names the project lacks: all of them, close matches, and how to add them."""
    them, new = ("it", "it is new") if len(unknown) == 1 else ("them", "they are new")
    return ProjectError(unknown_names(unknown, known, "class", plural="classes",
                                      valid_as="the project's classes are"),
                        fix=add_classes_fix(unknown, f"add {them} with", f" if {new}"))
