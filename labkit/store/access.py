"""Who may do what: roles enforced by the store API (and by PostgreSQL itself).

Every :class:`~labkit.Project` acts as one person, ``project.user``, a registered
annotator whose role decides what the API lets through:

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

A denied action raises :class:`AccessDenied` (a :class:`PermissionError`) whose message
names the rule and the fix, changes nothing, and is written to the audit log as
``denied``. On SQLite the folder's file permissions are the only protection against
someone who bypasses labkit; on PostgreSQL each person logs in with their own
credentials and the database enforces the same rules with grants and row-level
security (:mod:`labkit.store.pg_access`), so raw SQL cannot bypass them either.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from labkit.store import schema as S


class AccessDenied(PermissionError):
    """The acting user's role does not allow this; nothing was changed (and it was logged)."""

    def __init__(self, message: str, *, actor: str, action: str, details: dict | None = None):
        super().__init__(message)
        self.actor, self.action, self.details = actor, action, details or {}


class AccessMixin:
    """Role checks shared by the store's methods."""

    user: str

    def whoami(self) -> dict[str, Any]:
        """The acting user: ``name``, ``role`` and (PostgreSQL) ``db_user``."""
        with self._engine.connect() as conn:
            row = self._actor(conn)
        return {"name": row.name, "role": row.role, "db_user": row.db_user}

    @property
    def role(self) -> str:
        """The acting user's role: ``"admin"``, ``"annotator"`` or ``"viewer"``."""
        return self.whoami()["role"]

    # ------------------------------------------------------------------ checks --
    def _actor(self, conn):
        row = conn.execute(sa.select(S.annotators).where(S.annotators.c.name == self.user)).first()
        if row is None:
            raise AccessDenied(
                f"{self.user!r} is not a member of this project; an admin adds you with "
                f"project.add_annotator({self.user!r}, role='viewer'|'annotator'|'admin'), or open the "
                "project as a member with Project.open(..., user='name')", actor=self.user, action="open")
        return row

    def _deny(self, action: str, message: str, **details: Any):
        raise AccessDenied(f"{self.user!r} may not {message}", actor=self.user, action=action,
                           details=details)

    def _require(self, conn, action: str, *roles: str, what: str | None = None, me=None):
        """The actor's row (``me``, if already read), if its role is one of ``roles``; otherwise AccessDenied."""
        me = me if me is not None else self._actor(conn)
        if me.role not in roles:
            need = " or ".join(roles)
            self._deny(action, f"{what or action.replace('_', ' ')}: that needs the {need} role "
                               f"(you are {me.role}); ask an admin", role=me.role)
        return me

    def _check_now(self, action: str, *roles: str, what: str | None = None):
        """:meth:`_require` on a connection of its own, logging a denial."""
        def check():
            with self._engine.connect() as conn:
                return self._require(conn, action, *roles, what=what)
        return self._guard(check)

    def _require_admin(self, conn, action: str, what: str | None = None):
        return self._require(conn, action, "admin", what=what)

    def _assigned(self, conn, annotator_id: int, image_ids) -> set[int]:
        a = S.assignments
        ids = list({int(i) for i in image_ids})
        return set(conn.execute(sa.select(a.c.image_id).where(
            a.c.annotator_id == annotator_id, a.c.image_id.in_(ids))).scalars()) if ids else set()

    def _check_annotation_writes(self, conn, action: str, owners: list[int], images: list[int], *,
                                 by: str | None = None):
        """An annotator writes only its own annotations, on images assigned to it, as itself (``by``)."""
        me = self._check_by(conn, action, by)
        self._require(conn, action, "admin", "annotator", what="change annotations", me=me)
        if me.role == "admin":
            return me
        others = sorted({o for o in owners if o != me.id})
        if others:
            names = list(conn.execute(sa.select(S.annotators.c.name).where(
                S.annotators.c.id.in_(others))).scalars())
            self._deny(action, f"write annotations of {names}: annotators change only their own",
                       owners=names)
        missing = sorted(set(int(i) for i in images) - self._assigned(conn, me.id, images))
        if missing:
            self._deny(action, f"annotate images {missing[:20]}: they are not assigned to you; an admin "
                               f"assigns them with project.assign({missing[:5]}, [{me.name!r}])",
                       images=missing[:100])
        withdrawn = list(conn.execute(sa.select(S.images.c.id).where(
            S.images.c.id.in_(list(set(images))), S.images.c.consent == "withdrawn")).scalars())
        if withdrawn:
            self._deny(action, f"annotate images {withdrawn[:20]}: their subject withdrew consent",
                       images=withdrawn[:100])
        return me

    def _check_by(self, conn, action: str, by: str | None):
        """``by`` (who a change is recorded as) must be the actor, unless the actor is an admin."""
        me = self._actor(conn)
        if by is not None and by != me.name and me.role != "admin":
            self._deny(action, f"act as {by!r}: only admins record changes on behalf of others", by=by)
        return me

    def _blind(self, conn) -> bool:
        value = conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "blind")).scalar()
        return True if value is None else bool(value)

    def _log_access(self, action: str, image_id: int) -> None:
        """Record the first ``action`` on each image by this project object (who read what)."""
        seen = self.__dict__.setdefault("_access_seen", set())
        if (action, image_id) in seen:
            return
        seen.add((action, image_id))
        self._write(lambda conn: self._audit(conn, action, target="images", target_id=int(image_id)))

    def _log_denied(self, exc: AccessDenied) -> None:
        from labkit.store.engine import write_transaction

        try:
            with write_transaction(self._engine) as conn:
                self._audit(conn, "denied", target=exc.action, actor=exc.actor, reason=str(exc),
                            **_jsonable(exc.details))
        except sa.exc.DBAPIError:  # a login without even INSERT on the log: the error still surfaces
            pass


def _jsonable(details: dict) -> dict:
    import json

    return json.loads(json.dumps(details, default=str))
