"""Members of a project: people (and simulated annotators), their roles and logins."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from labkit._util.checks import name_problem, unknown_names
from labkit._util.clock import utc_now
from labkit.store import pg_access
from labkit.store import schema as S
from labkit.store.context import StoreContext
from labkit.store.engine import inserted_id
from labkit.store.errors import PROJECT, AccessDenied, Fix, ProjectError, command

__all__ = ["MemberRepository", "pg_identity", "unknown_annotators", "unmapped_login"]


class MemberRepository:
    """People and programs who work on the project (table ``annotators``), and blind mode."""

    def __init__(self, ctx: StoreContext):
        self._ctx = ctx

    def add(self, name: str, *, role: str = "annotator", simulated: bool = False,
            password: str | None = None, db_user: str | None = None) -> int:
        """Register a person (or a simulated annotator) and return its id. Admins only.

        Parameters
        ----------
        role : {"admin", "annotator", "viewer"}
            What the person may do; see :mod:`labkit.store.policy`.
        simulated : bool
            True for a program standing in for a person (demos, tests). Its annotations
            are recorded with ``source="simulated"`` so they are never mistaken for human work.
        password : str, optional
            PostgreSQL only: create the person's own database login (``db_user``, default
            ``name``) with this password. They then open the project with
            ``postgresql://<db_user>:<password>@host/db`` and the database enforces their role.
        db_user : str, optional
            PostgreSQL only: the login to map to this person. Without ``password`` it must
            already exist on the server (one login for several projects).
        """
        problem = name_problem(name, "annotator name")
        if problem is not None:
            raise ProjectError(problem)
        if role not in S.ROLES:
            raise ProjectError(unknown_names([role], S.ROLES, "role"))
        login = db_user or (name if password is not None else None)
        if login is not None and self._ctx.backend != "postgresql":
            raise ProjectError("database logins are for PostgreSQL projects; a folder (SQLite) project is "
                               "protected by the folder's file permissions",
                               fix=Fix("leave out password= and db_user=", "leave out --password and --db-user"))
        if login is not None and simulated:
            raise ProjectError("a simulated annotator cannot have a database login")

        def fn(conn: sa.Connection) -> int:
            self._ctx.policy.require_admin(conn, "add_annotator", "add people to the project")
            if conn.execute(sa.select(S.annotators.c.id).where(S.annotators.c.name == name)).first():
                raise ProjectError(f"annotator {name!r} already exists", fix=Fix(
                    f"pick another name, or change their role with project.set_role({name!r}, {role!r})",
                    "pick another name, or change their role with "
                    + command("annotators", "set-role", "-P", PROJECT, name, role)))
            if login is not None:
                _pg_login(conn, login, password, role)
            aid = inserted_id(conn.execute(sa.insert(S.annotators).values(
                name=name, role=role, simulated=bool(simulated), created_at=utc_now(),
                db_user=login)))
            self._ctx.audit(conn, "add_annotator", target="annotators", target_id=aid, name=name, role=role,
                            simulated=bool(simulated), db_user=login)
            return aid
        return self._ctx.write(fn)

    def set_role(self, name: str, role: str) -> None:
        """Change a member's role (admins only); on PostgreSQL their grants change with it."""
        if role not in S.ROLES:
            raise ProjectError(unknown_names([role], S.ROLES, "role"))

        def fn(conn: sa.Connection) -> None:
            self._ctx.policy.require_admin(conn, "set_role", "change roles")
            row = self.row(conn, name)
            admins = conn.execute(sa.select(sa.func.count()).select_from(S.annotators).where(
                S.annotators.c.role == "admin")).scalar()
            if row.role == "admin" and role != "admin" and admins == 1:
                raise ProjectError(f"{name!r} is the project's only admin", fix=Fix(
                    "make someone else admin first: project.set_role('name', 'admin')",
                    "make someone else admin first: " + command("annotators", "set-role", "-P", PROJECT,
                                                                "NAME", "admin")))
            conn.execute(sa.update(S.annotators).where(S.annotators.c.id == row.id).values(role=role))
            login = conn.execute(sa.select(S.annotators.c.db_user).where(S.annotators.c.id == row.id)).scalar()
            if login and self._ctx.backend == "postgresql":
                pg_access.grant(conn, login, role)
            self._ctx.audit(conn, "set_role", target="annotators", target_id=row.id, name=name, before=row.role,
                            after=role)
        self._ctx.write(fn)

    def set_blind(self, blind: bool = True) -> None:
        """Blind mode (default on): annotators see only their own annotations (admins only)."""
        def fn(conn: sa.Connection) -> None:
            self._ctx.policy.require_admin(conn, "set_blind", "change blind mode")
            conn.execute(sa.delete(S.meta).where(S.meta.c.key == "blind"))
            conn.execute(sa.insert(S.meta).values(key="blind", value=bool(blind)))
            self._ctx.audit(conn, "set_blind", target="project", blind=bool(blind))
        self._ctx.write(fn)

    def table(self) -> pd.DataFrame:
        """Members indexed by name: id, role, simulated, created_at, and for admins db_user.

        What each role sees (``docs/privacy.md``, Roles): admins everyone, with their
        database logins; viewers everyone, without logins; annotators their own row, and
        everyone's names and roles only when blind mode is off.
        """
        w = S.annotators

        def fn() -> pd.DataFrame:
            with self._ctx.connect() as conn:
                me = self._ctx.policy.actor(conn)
                q = sa.select(*(w.c if me.role == "admin" else S.MEMBER_COLUMNS)).order_by(w.c.id)
                if me.role == "annotator" and self._ctx.policy.blind(conn):
                    q = q.where(w.c.id == me.id)
                return self._ctx.read_frame(q, conn).set_index("name")
        return self._ctx.guard(fn)

    def whoami(self) -> dict[str, Any]:
        """The acting user: ``name``, ``role`` and (PostgreSQL) ``db_user``, the login it connects with."""
        with self._ctx.connect() as conn:
            row = self._ctx.policy.actor(conn)
            login = conn.exec_driver_sql("SELECT session_user").scalar() if self._ctx.backend == "postgresql" else None
        return {"name": row.name, "role": row.role, "db_user": login}

    # ------------------------------------------------- inside a transaction --
    def row(self, conn: sa.Connection, name: str) -> Any:
        """The ``annotators`` row of ``name``; ProjectError naming the known ones if there is none."""
        return self.rows(conn, [name])[name]

    def rows(self, conn: sa.Connection, names: Sequence[str]) -> dict[str, Any]:
        """The ``annotators`` rows of ``names``, by name; one ProjectError naming every unknown one."""
        found = self.find(conn, names)
        unknown = [n for n in dict.fromkeys(names) if n not in found]
        if unknown:
            raise self.unknown(conn, unknown)
        return found

    def find(self, conn: sa.Connection, names: Sequence[str]) -> dict[str, Any]:
        """The ``annotators`` rows of those of ``names`` that are members, by name (one query)."""
        names = list(dict.fromkeys(names))
        return {r.name: r for r in conn.execute(sa.select(*S.MEMBER_COLUMNS).where(S.annotators.c.name.in_(names)))}

    def unknown(self, conn: sa.Connection, names: Sequence[str]) -> ProjectError:
        """The error for ``names`` that are not members (see :func:`unknown_annotators`)."""
        known = list(conn.execute(sa.select(S.annotators.c.name).order_by(S.annotators.c.id)).scalars())
        return unknown_annotators(names, known)

    def ensure(self, conn: sa.Connection, names: Sequence[str]) -> tuple[dict[str, int], list[str]]:
        """Ids of ``names``, registering missing ones as (human) annotators; and which were new.

        For imports, whose annotators are named by the file; the caller checked the rights.
        """
        ids: dict[str, int] = {}
        added: list[str] = []
        for n in names:
            found = conn.execute(sa.select(S.annotators.c.id).where(S.annotators.c.name == n)).scalar()
            if found is None:
                found = inserted_id(conn.execute(sa.insert(S.annotators).values(
                    name=n, role="annotator", simulated=False, created_at=utc_now())))
                added.append(n)
            ids[n] = int(found)
        return ids, added


def unknown_annotators(unknown: Sequence[str], known: Sequence[str]) -> ProjectError:
    """The error for names that are not members: all of them, close matches, and how to register them."""
    them, new = ("it", "it is new") if len(unknown) == 1 else ("them", "they are new")
    py = " and ".join(f"project.add_annotator({n!r})" for n in unknown)
    cli = " and ".join(command("annotators", "add", "-P", PROJECT, n) for n in unknown)
    return ProjectError(unknown_names(unknown, known, "annotator", valid_as="known:"), fix=Fix(
        f"register {them} with {py} if {new}", f"register {them} with {cli} if {new}"))


def _pg_login(conn: sa.Connection, login: str, password: str | None, role: str) -> None:
    """Create (or map an existing) PostgreSQL login for a new member and grant it ``role``."""
    if conn.execute(sa.select(S.annotators.c.name).where(S.annotators.c.db_user == login)).first():
        raise ProjectError(f"the database login {login!r} is already mapped to a member of this project")
    if pg_access.role_exists(conn, login):
        if password is not None:
            raise ProjectError(f"the database login {login!r} already exists on this server", fix=Fix(
                "pass password=None to give that login access, or db_user='...' for a new one",
                "leave out --password to give that login access, or pass --db-user NEW_LOGIN for a new one"))
    elif password is None:
        raise ProjectError(f"there is no database login {login!r}",
                           fix=Fix("pass password=... to create it", "pass --password to create it"))
    else:
        pg_access.create_login(conn, login, password)
    pg_access.grant(conn, login, role)


def unmapped_login(login: str, actor: str) -> AccessDenied:
    """The error for a PostgreSQL login that no member of the project is mapped to."""
    return AccessDenied(f"the database login {login!r} is not a member of this project", actor=actor,
                        action="open", fix=Fix(
                            f"an admin maps it with project.add_annotator('name', role=..., db_user={login!r}) "
                            "(or password=... for a new login)",
                            "an admin maps it with " + command("annotators", "add", "-P", PROJECT, "NAME",
                                                               "--role", "ROLE", "--db-user", login)))


def pg_identity(engine: sa.Engine, user: str | None) -> str:
    """The member a PostgreSQL login is mapped to (``annotators.db_user``)."""
    with engine.connect() as conn:
        login = conn.exec_driver_sql("SELECT session_user").scalar_one()
        try:  # members do not read others' logins: the database says whose this one is
            name = conn.exec_driver_sql("SELECT labkit_name()").scalar()
        except sa.exc.ProgrammingError:  # no EXECUTE grant at all: not a member
            name = None
    if name is None:
        raise unmapped_login(login, user or login)
    if user is not None and user != name:
        raise AccessDenied(f"on PostgreSQL you act as your database login: {login!r} is member {name!r}, "
                           f"not {user!r}; connect with {user!r}'s own credentials", actor=name, action="open")
    return str(name)
