"""Who may do what: the roles every repository asks before it reads or writes.

Every :class:`~labkit.Project` acts as one person, ``project.user``, a registered
annotator whose role decides what the store lets through:

=========  ===================================================================
role       may
=========  ===================================================================
viewer     read: images, annotations, progress, reports. No writes.
annotator  read the images assigned to it (subject ids hidden), its own member
           row and progress and, in blind mode, only its own annotations; write
           only its own annotations (by hand or with SAM/GrabCut), on images
           assigned to it; submit its own assignments. Never gold answers.
admin      everything: images, classes, people, assignments, consent and
           erasure, imports and exports, consensus, adjudication and gold, and
           writing annotations on behalf of others (simulated annotators,
           imports); only admins read withdrawn subjects' data.
=========  ===================================================================

The actor of every record is the acting member; a ``by=`` naming someone else is only a
note (``on_behalf_of``), and only admins may give one.

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
from typing import Any, NamedTuple, NoReturn

import sqlalchemy as sa

from labkit.store import schema as S
from labkit.store.bulk import chunks
from labkit.store.errors import PROJECT, AccessDenied, Fix, command

__all__ = ["AUDIT_ACTIONS", "AccessPolicy", "AnnotationFacts", "ImageFacts"]

#: The audit entries a non-admin's own actions make (on PostgreSQL, all its login may add).
AUDIT_ACTIONS = {
    "viewer": ("read_image", "read_images", "denied"),
    "annotator": ("read_image", "read_images", "denied", "add_annotations", "update_annotation",
                  "delete_annotation", "restore_annotation", "replace_annotations", "set_image_attributes",
                  "submit", "review_proposal"),
}


class ImageFacts(NamedTuple):
    """What the rules need to know of an image, whether or not the member may read its row."""
    withdrawn: bool
    assigned: bool  # to the acting member


class AnnotationFacts(NamedTuple):
    """What the rules need to know of an annotation, whether or not the member may read its row."""
    mine: bool
    image_id: int


class AccessPolicy:
    """The role rules for one acting member, ``user``; every check reads the database on ``conn``.

    Each :class:`~labkit.store.context.StoreContext` holds one (``ctx.policy``).
    """

    def __init__(self, user: str):
        self.user = user

    def actor(self, conn: sa.Connection) -> Any:
        """The acting member's ``annotators`` row (no ``db_user``); AccessDenied if the user is not a member."""
        row = conn.execute(sa.select(*S.MEMBER_COLUMNS).where(S.annotators.c.name == self.user)).first()
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
        """The actor's row; ``by`` (a note: on whose behalf) may name someone else only for an admin.

        The actor of the change is always the acting member; ``by`` is recorded as
        ``on_behalf_of`` when it names someone else.
        """
        me = self.actor(conn)
        if by is not None and by != me.name and me.role != "admin":
            self.deny(action, f"act as {by!r}: only admins record changes on behalf of others", by=by)
        return me

    def check_withdrawn_reads(self, conn: sa.Connection, action: str, include_withdrawn: bool, me: Any) -> None:
        """Only admins ask for a withdrawn subject's images and annotations."""
        if include_withdrawn and me.role != "admin":
            self.deny(action, f"read data of subjects who withdrew consent (include_withdrawn=True): only admins "
                              f"do (you are {me.role})", role=me.role)

    # ---------------------------------------------------------------- facts --
    def image_facts(self, conn: sa.Connection, image_ids: Iterable[int], me: Any) -> dict[int, ImageFacts]:
        """Consent and assignment (to ``me``) of the existing images among ``image_ids``.

        Read past row-level security (PostgreSQL: ``labkit_image_facts``), so a refusal
        can say why whether or not the member may read the rows.
        """
        ids = sorted({int(i) for i in image_ids})
        if not ids:
            return {}
        if conn.dialect.name == "postgresql":
            rows = conn.execute(sa.text("SELECT id, withdrawn, assigned FROM labkit_image_facts(:ids)"),
                                {"ids": ids}).all()
            return {int(r.id): ImageFacts(bool(r.withdrawn), bool(r.assigned)) for r in rows}
        mine = self.assigned(conn, me.id, ids)
        rows = [r for chunk in chunks(ids) for r in conn.execute(  # IN lists under the bind limit
            sa.select(S.images.c.id, S.images.c.consent).where(S.images.c.id.in_(chunk)))]
        return {int(r.id): ImageFacts(r.consent == "withdrawn", int(r.id) in mine) for r in rows}

    def annotation_facts(self, conn: sa.Connection, annotation_ids: Iterable[int], me: Any
                         ) -> dict[int, AnnotationFacts]:
        """Owner (``me`` or not) and image of the existing annotations among ``annotation_ids`` (as above)."""
        ids = sorted({int(i) for i in annotation_ids})
        if not ids:
            return {}
        if conn.dialect.name == "postgresql":
            rows = conn.execute(sa.text("SELECT id, mine, image_id FROM labkit_annotation_facts(:ids)"),
                                {"ids": ids}).all()
            return {int(r.id): AnnotationFacts(bool(r.mine), int(r.image_id)) for r in rows}
        a = S.annotations.c
        rows = [r for chunk in chunks(ids) for r in conn.execute(
            sa.select(a.id, a.annotator_id, a.image_id).where(a.id.in_(chunk)))]
        return {int(r.id): AnnotationFacts(r.annotator_id == me.id, int(r.image_id)) for r in rows}

    def assigned(self, conn: sa.Connection, annotator_id: int, image_ids: Iterable[int]) -> set[int]:
        """Which of ``image_ids`` are assigned to ``annotator_id``."""
        a = S.assignments
        ids = list({int(i) for i in image_ids})
        return {i for chunk in chunks(ids) for i in conn.execute(sa.select(a.c.image_id).where(
            a.c.annotator_id == annotator_id, a.c.image_id.in_(chunk))).scalars()}

    def blind(self, conn: sa.Connection) -> bool:
        """Blind mode (default on): annotators see only their own annotations."""
        value = conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "blind")).scalar()
        return True if value is None else bool(value)

    # --------------------------------------------------------------- checks --
    def check_image_reads(self, conn: sa.Connection, action: str, image_ids: Sequence[int]) -> Any:
        """Annotators read only assigned images; nobody but an admin reads a withdrawn subject's."""
        me = self.actor(conn)
        if me.role == "admin":
            return me
        facts = self.image_facts(conn, image_ids, me)

        def which(ids: list[int]) -> str:
            return f"image {ids[0]}: it is" if len(ids) == 1 else f"images {ids[:20]}: they are"
        if me.role == "annotator":
            missing = sorted(i for i, f in facts.items() if not f.assigned)
            if missing:
                self.deny(action, f"read {which(missing)} not assigned to you", images=missing[:100])
        withdrawn = sorted(i for i, f in facts.items() if f.withdrawn)
        if withdrawn:
            self.deny(action, f"read {which(withdrawn)} of a subject who withdrew consent",
                      images=withdrawn[:100])
        return me

    def check_annotation_owners(self, conn: sa.Connection, action: str, names: Iterable[Any]) -> Any:
        """Before anything is looked up: viewers write nothing, annotators write only as themselves."""
        me = self.require(conn, action, "admin", "annotator", what="change annotations")
        others = sorted({str(n) for n in names if n != me.name})
        if me.role != "admin" and others:
            self.deny(action, f"write annotations of {others}: annotators change only their own", owners=others)
        return me

    def check_annotation_writes(self, conn: sa.Connection, action: str, owners: Sequence[int],
                                images: Sequence[int], *, by: str | None = None,
                                sources: Sequence[str] = ()) -> Any:
        """An annotator writes only its own annotations (human or tool-made), on images assigned to it."""
        me = self.check_by(conn, action, by)
        self.require(conn, action, "admin", "annotator", what="change annotations", me=me)
        if me.role == "admin":
            return me
        if any(o != me.id for o in owners):
            self.deny(action, "write annotations of other annotators: annotators change only their own")
        bad = sorted({s for s in sources if s not in S.ANNOTATOR_SOURCES})
        if bad:
            self.deny(action, f"write annotations with source {bad}: annotators write "
                              f"{list(S.ANNOTATOR_SOURCES)} (consensus, imports and simulated work are an admin's)",
                      sources=bad)
        facts = self.image_facts(conn, images, me)
        missing = sorted({int(i) for i in images if int(i) not in facts or not facts[int(i)].assigned})
        if missing:
            self.deny(action, f"annotate images {missing[:20]}: they are not assigned to you", fix=Fix(
                f"an admin assigns them with project.assign({missing[:20]}, [{me.name!r}])",
                "an admin assigns them with " + command("assign", "-P", PROJECT, "--annotators", me.name,
                                                        "--images", ",".join(map(str, missing[:20])))),
                images=missing[:100])
        withdrawn = sorted(i for i, f in facts.items() if f.withdrawn)
        if withdrawn:
            self.deny(action, f"annotate images {withdrawn[:20]}: their subject withdrew consent",
                      images=withdrawn[:100])
        return me

    def refuse_hidden_images(self, conn: sa.Connection, action: str, image_ids: Sequence[int], *,
                             write: bool = False) -> None:
        """Deny, with the API's reason, images that exist but that the member's rows do not show.

        On PostgreSQL a login reads only what its policies allow, so an image not
        assigned to an annotator (or a withdrawn subject's) looks missing; this tells
        it apart from an image that does not exist. On SQLite every row is read, so
        nothing is hidden and this returns at once.
        """
        me = self.actor(conn)
        hidden = sorted(self.image_facts(conn, image_ids, me))
        if not hidden:
            return
        if write:
            self.check_annotation_writes(conn, action, [], hidden)
        else:
            self.check_image_reads(conn, action, hidden)
