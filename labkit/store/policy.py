"""Who may do what: the roles every repository asks before it reads or writes.

Every :class:`~labkit.Project` acts as one person, ``project.user``, a registered
annotator whose role decides what the store lets through:

=========  ===================================================================
role       may
=========  ===================================================================
viewer     read: images, annotations, progress, reports. No writes.
annotator  read the images assigned to it (subject ids hidden) and, in blind
           mode, only its own annotations; write only its own annotations, on
           images assigned to it; submit its own assignments.
admin      everything: images, classes, people, assignments, consent and
           erasure, imports and exports, consensus and adjudication, and writing
           annotations on behalf of others (simulated annotators, imports).
=========  ===================================================================

A denied action raises :class:`~labkit.store.errors.AccessDenied` (a
:class:`PermissionError`) whose message names the rule, the role that would allow it and
the admins who can grant it, changes nothing, and is written to the audit log as
``denied``. On SQLite the folder's file permissions are the only protection against
someone who bypasses labkit; on PostgreSQL each person logs in with their own
credentials and the database enforces the same rules with grants and row-level security
(:mod:`labkit.store.pg_access`), so raw SQL cannot bypass them either.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

import sqlalchemy as sa

from labkit.store import schema as S
from labkit.store.errors import PROJECT, AccessDenied, Fix, command

__all__ = ["AccessPolicy"]


class AccessPolicy:
    """The role rules for one acting member, ``user``; every check reads the database on ``conn``.

    Each :class:`~labkit.store.context.StoreContext` holds one (``ctx.policy``).
    """

    def __init__(self, user: str):
        self.user = user

    def actor(self, conn: sa.Connection) -> Any:
        """The acting member's ``annotators`` row; AccessDenied if the user is not a member."""
        row = conn.execute(sa.select(S.annotators).where(S.annotators.c.name == self.user)).first()
        if row is None:
            admins = self._admins(conn)
            raise AccessDenied(f"{self.user!r} is not a member of this project", fix=Fix(
                f"{admins} adds you with project.add_annotator({self.user!r}, role='annotator') (or role='viewer' "
                "or 'admin'), or open the project as a member with Project.open(..., user='name')",
                f"{admins} adds you with "
                + command("annotators", "add", "-P", PROJECT, self.user, "--role", "annotator")
                + " (or --role viewer or admin), or act as a member: LABKIT_USER=name labkit ..."),
                actor=self.user, action="open")
        return row

    def deny(self, action: str, message: str, *, fix: Fix | None = None, **details: Any) -> NoReturn:
        raise AccessDenied(f"{self.user!r} may not {message}", actor=self.user, action=action, details=details,
                           fix=fix)

    def require(self, conn: sa.Connection, action: str, *roles: str, what: str | None = None,
                me: Any = None) -> Any:
        """The actor's row (``me``, if already read), if its role is one of ``roles``; else AccessDenied."""
        me = me if me is not None else self.actor(conn)
        if me.role not in roles:
            need = " or ".join(roles)
            grant = next(r for r in ("viewer", "annotator", "admin", *roles) if r in roles)  # the least one
            admins = self._admins(conn)
            self.deny(action, f"{what or action.replace('_', ' ')}: that needs the {need} role "
                              f"(you are {me.role})", role=me.role, fix=Fix(
                                  f"{admins} can grant it with project.set_role({me.name!r}, {grant!r})",
                                  f"{admins} can grant it with "
                                  + command("annotators", "set-role", "-P", PROJECT, me.name, grant)))
        return me

    @staticmethod
    def _admins(conn: sa.Connection) -> str:
        """Who can grant access: "an admin (ana, ben)", or "an admin" when the names cannot be read."""
        try:
            names = list(conn.execute(sa.select(S.annotators.c.name).where(S.annotators.c.role == "admin")
                                      .order_by(S.annotators.c.id).limit(6)).scalars())
        except sa.exc.DBAPIError:  # a login without SELECT on annotators (PostgreSQL): the rule still shows
            names = []
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        return f"an admin ({shown})" if names else "an admin"

    def require_admin(self, conn: sa.Connection, action: str, what: str | None = None) -> Any:
        return self.require(conn, action, "admin", what=what)

    def check_by(self, conn: sa.Connection, action: str, by: str | None) -> Any:
        """``by`` (who a change is recorded as) must be the actor, unless the actor is an admin."""
        me = self.actor(conn)
        if by is not None and by != me.name and me.role != "admin":
            self.deny(action, f"act as {by!r}: only admins record changes on behalf of others", by=by)
        return me

    def assigned(self, conn: sa.Connection, annotator_id: int, image_ids: Iterable[int]) -> set[int]:
        """Which of ``image_ids`` are assigned to ``annotator_id``."""
        a = S.assignments
        ids = list({int(i) for i in image_ids})
        return set(conn.execute(sa.select(a.c.image_id).where(
            a.c.annotator_id == annotator_id, a.c.image_id.in_(ids))).scalars()) if ids else set()

    def blind(self, conn: sa.Connection) -> bool:
        """Blind mode (default on): annotators see only their own annotations."""
        value = conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "blind")).scalar()
        return True if value is None else bool(value)

    def check_image_reads(self, conn: sa.Connection, action: str, rows: Sequence[Any]) -> Any:
        """Annotators read only assigned images; nobody but an admin reads a withdrawn subject's."""
        me = self.actor(conn)

        def which(ids: list[int]) -> str:
            return f"image {ids[0]}: it is" if len(ids) == 1 else f"images {ids[:20]}: they are"
        if me.role == "annotator":
            missing = sorted({r.id for r in rows} - self.assigned(conn, me.id, [r.id for r in rows]))
            if missing:
                self.deny(action, f"read {which(missing)} not assigned to you", images=missing[:100])
        withdrawn = sorted(r.id for r in rows if r.consent == "withdrawn")
        if withdrawn and me.role != "admin":
            self.deny(action, f"read {which(withdrawn)} of a subject who withdrew consent",
                      images=withdrawn[:100])
        return me

    def check_annotation_writes(self, conn: sa.Connection, action: str, owners: Sequence[int],
                                images: Sequence[int], *, by: str | None = None) -> Any:
        """An annotator writes only its own annotations, on images assigned to it, as itself (``by``)."""
        me = self.check_by(conn, action, by)
        self.require(conn, action, "admin", "annotator", what="change annotations", me=me)
        if me.role == "admin":
            return me
        others = sorted({o for o in owners if o != me.id})
        if others:
            names = list(conn.execute(sa.select(S.annotators.c.name).where(
                S.annotators.c.id.in_(others))).scalars())
            self.deny(action, f"write annotations of {names}: annotators change only their own", owners=names)
        missing = sorted({int(i) for i in images} - self.assigned(conn, me.id, images))
        if missing:
            self.deny(action, f"annotate images {missing[:20]}: they are not assigned to you", fix=Fix(
                f"an admin assigns them with project.assign({missing[:20]}, [{me.name!r}])",
                "an admin assigns them with " + command("assign", "-P", PROJECT, "--annotators", me.name,
                                                        "--images", ",".join(map(str, missing[:20])))),
                images=missing[:100])
        withdrawn = list(conn.execute(sa.select(S.images.c.id).where(
            S.images.c.id.in_(list(set(images))), S.images.c.consent == "withdrawn")).scalars())
        if withdrawn:
            self.deny(action, f"annotate images {withdrawn[:20]}: their subject withdrew consent",
                      images=withdrawn[:100])
        return me
