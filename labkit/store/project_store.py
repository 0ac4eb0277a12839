"""A project's store: its database created or opened, with one repository per area.

:class:`ProjectStore` is what :class:`labkit.Project` is a thin front over::

    store.ctx          StoreContext: engine, acting user, transactions, audit log, policy
    store.classes      ClassRepository        the taxonomy
    store.members      MemberRepository       people, roles, logins, blind mode
    store.subjects     SubjectRepository      data subjects, consent, retention, erasure rows
    store.images       ImageRepository        images and the audited readers
    store.annotations  AnnotationRepository   annotations and their history
    store.assignments  AssignmentRepository   queues, submissions, progress
    store.gold         GoldRepository         known answers of gold items (not for annotators)
    store.proposals    ProposalRepository     model and vendor proposals, and their review

The database repeats the API's rules (:mod:`~labkit.store.guards` on both backends,
:mod:`~labkit.store.pg_access` for PostgreSQL logins), so a member who bypasses labkit
is held to them too, and every write is sealed into a hash chain
(:mod:`~labkit.store.chain`), so what is changed behind labkit's back shows in
``labkit verify``.

Each repository receives the context and the repositories it depends on, explicitly;
workflows that span several areas (imports, erasure, consensus) live in
:mod:`labkit.services` and compose these within one :meth:`StoreContext.write`.
"""
from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from labkit._util.clock import utc_now
from labkit._version import __version__
from labkit.store import chain, guards, pg_access, rows
from labkit.store import schema as S
from labkit.store.annotations import AnnotationRepository
from labkit.store.assignments import AssignmentRepository
from labkit.store.classes import ClassRepository, check_class_names
from labkit.store.context import StoreContext
from labkit.store.engine import create_engine, is_url, make_url, safe_location, write_transaction
from labkit.store.errors import PROJECT, AccessDenied, Fix, ProjectError, command
from labkit.store.gold import GoldRepository
from labkit.store.images import ImageRepository
from labkit.store.members import MemberRepository, pg_identity, unmapped_login
from labkit.store.proposals import ProposalRepository
from labkit.store.subjects import SubjectRepository

__all__ = ["ProjectStore", "default_user"]


class ProjectStore:
    """The database of one project, as one member; see the module docstring.

    Use :meth:`create` or :meth:`open`.
    """

    def __init__(self, ctx: StoreContext):
        self.ctx = ctx
        self.classes = ClassRepository(ctx)
        self.members = MemberRepository(ctx)
        self.subjects = SubjectRepository(ctx)
        self.images = ImageRepository(ctx, self.subjects)
        self.annotations = AnnotationRepository(ctx, self.images, self.members, self.classes)
        self.assignments = AssignmentRepository(ctx, self.members)
        self.gold = GoldRepository(ctx, self.classes)
        self.proposals = ProposalRepository(ctx, self.annotations, self.members, self.classes)

    @classmethod
    def create(cls, location: str | Path, *, classes: Sequence[str], user: str | None = None,
               workdir: str | Path | None = None) -> ProjectStore:
        """Create a new, empty project; the creator is its first admin. See ``Project.create``."""
        classes = check_class_names(classes)
        url = make_url(location)
        if not is_url(location):
            root = Path(location)
            if (root / "project.db").exists():
                raise ProjectError(f"{root} already holds a labkit project", fix=Fix(
                    f"open it with Project.open({str(root)!r}), or create the new one in another folder",
                    f"use it with -P {PROJECT} (e.g. {command('project', 'info', PROJECT)}), or create the new "
                    "one in another folder"))
            root.mkdir(parents=True, exist_ok=True)
        else:
            root = _workdir_for(url, workdir)
        engine = create_engine(url)
        if sa.inspect(engine).has_table("meta"):
            engine.dispose()
            raise ProjectError(f"the database {url.render_as_string(hide_password=True)} already "
                               "holds a labkit project", fix=Fix(
                                   "open it with Project.open(url), or create the new one in an empty database",
                                   f"use it with -P {PROJECT} (e.g. {command('project', 'info', PROJECT)}), or "
                                   "create the new one in an empty database"))
        S.metadata.create_all(engine)
        S.chain_metadata.create_all(engine)
        user = user or default_user()
        t = utc_now()
        with write_transaction(engine, sealed=False) as conn:  # it builds the chain
            login = None
            guards.install(conn)
            chain.install(conn)
            if engine.dialect.name == "postgresql":
                login = conn.exec_driver_sql("SELECT session_user").scalar()
                pg_access.install(conn)
            conn.execute(sa.insert(S.meta), [
                {"key": "schema_version", "value": S.SCHEMA_VERSION},
                {"key": "created_with", "value": __version__},
                {"key": "created_at", "value": t.isoformat()},
                {"key": "checked_above", "value": 0},  # every annotation is checked by the database
            ])
            if classes:  # a project may start without classes (add_classes, or an import with add_classes=True)
                conn.execute(sa.insert(S.classes), [{"name": c, "position": i} for i, c in enumerate(classes)])
            conn.execute(sa.insert(S.annotators).values(name=user, role="admin", simulated=False, created_at=t,
                                                        db_user=login))
            conn.execute(sa.insert(S.audit_log).values(at=t, actor=user, action="create_project",
                                                       target="project", details={"classes": classes}))
            chain.seal(conn, "genesis")
        return cls(StoreContext(engine, location, root, user))

    @classmethod
    def open(cls, location: str | Path, *, user: str | None = None,
             workdir: str | Path | None = None) -> ProjectStore:
        """Open an existing project as a member. See ``Project.open``."""
        url = make_url(location)
        if not is_url(location):
            root = Path(location)
            if not (root / "project.db").exists():
                raise ProjectError(f"no labkit project at {root} (no project.db)", fix=_create_fix(root))
        else:
            root = _workdir_for(url, workdir)
        engine = create_engine(url)
        if not sa.inspect(engine).has_table("meta"):
            engine.dispose()
            raise ProjectError(f"{url.render_as_string(hide_password=True)} holds no labkit project",
                               fix=_create_fix(location))
        try:
            with engine.connect() as conn:
                version = conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "schema_version")).scalar()
        except sa.exc.ProgrammingError:  # PostgreSQL: a login with no grants on this project
            with engine.connect() as conn:
                login = conn.exec_driver_sql("SELECT session_user").scalar_one()
            engine.dispose()
            raise unmapped_login(login, login) from None
        if version != S.SCHEMA_VERSION:
            engine.dispose()
            if isinstance(version, int) and version < S.SCHEMA_VERSION:
                raise ProjectError(f"project schema version {version} is older than this labkit's "
                                   f"({S.SCHEMA_VERSION})", fix=Fix(
                                       "upgrade it with `from labkit.store.migrate import migrate; "
                                       f"migrate({safe_location(location)!r})` (a folder project is backed up "
                                       "first)",
                                       f"upgrade it with {command('migrate', '-P', PROJECT)} "
                                       "(a folder project is backed up first)"))
            raise ProjectError(f"project schema version {version}, but this labkit ({__version__}) reads "
                               f"version {S.SCHEMA_VERSION}; install the labkit that created it")
        try:
            user = pg_identity(engine, user) if engine.dialect.name == "postgresql" else user or default_user()
            ctx = StoreContext(engine, location, root, user)
            with ctx.connect() as conn:
                ctx.policy.actor(conn)
        except AccessDenied as exc:
            if engine.dialect.name == "sqlite":
                StoreContext(engine, location, root, exc.actor).log_denied(exc)
            engine.dispose()
            raise
        return cls(ctx)

    def close(self) -> None:
        self.ctx.dispose()

    def info(self) -> dict[str, Any]:
        """Counts and settings, for a summary: of what the acting member may read.

        Admins count everything; viewers leave out withdrawn subjects' images and
        annotations; annotators count their assigned images, the annotations they may
        read (their own in blind mode), their own assignments and the members they see,
        as ``images()``, ``annotations()`` and ``annotators()`` show them (on PostgreSQL
        the database's policies give the same counts).
        """
        a, w, im, asg = S.annotations, S.annotators, S.images, S.assignments
        with self.ctx.connect() as conn:
            me = self.ctx.policy.actor(conn)
            seen: dict[str, list[Any]] = {"images": [], "annotations": [], "annotators": [], "assignments": []}
            if me.role != "admin":
                withdrawn = sa.select(im.c.id).where(im.c.consent == "withdrawn")
                seen["images"].append(S.not_withdrawn(im.c.consent))
                seen["annotations"].append(a.c.image_id.not_in(withdrawn))
            if me.role == "annotator":
                mine = sa.select(asg.c.image_id).where(asg.c.annotator_id == me.id)
                seen["images"].append(im.c.id.in_(mine))
                seen["assignments"].append(asg.c.annotator_id == me.id)
                if self.ctx.policy.blind(conn):
                    seen["annotations"].append(a.c.annotator_id == me.id)
                    seen["annotators"].append(w.c.id == me.id)

            def count(t: sa.Table, *where: Any) -> int:
                return int(conn.execute(sa.select(sa.func.count()).select_from(t).where(*where)).scalar_one())
            live = [a.c.deleted_at.is_(None), *seen["annotations"]]
            delivered = [*live, rows.delivered(conn.dialect.name)]  # as annotations()
            kinds: dict[str, int] = dict(conn.execute(sa.select(a.c.kind, sa.func.count()).where(*delivered)
                                                      .group_by(a.c.kind)).all())
            sources: dict[str, int] = dict(conn.execute(sa.select(a.c.source, sa.func.count()).where(*delivered)
                                        .group_by(a.c.source)).all())
            pending = count(a, a.c.state == "proposed", *live)
            return {
                "location": self.ctx.safe_location, "backend": self.ctx.backend,
                "classes": self.classes.names(), "images": count(im, *seen["images"]),
                "annotators": count(w, *seen["annotators"]),
                "simulated_annotators": count(w, w.c.simulated.is_(True), *seen["annotators"]),
                "annotations": sum(kinds.values()), "annotations_by_kind": kinds,
                "annotations_by_source": sources,
                "deleted_annotations": count(a, a.c.deleted_at.is_not(None), *seen["annotations"]),
                "proposals_awaiting_review": pending,
                "assignments": count(asg, *seen["assignments"]),
            }


def _create_fix(location: str | Path) -> Fix:
    return Fix(f"create one with Project.create({safe_location(location)!r}, classes=[...])",
               "create one with " + command("project", "create", PROJECT, "--classes", "NAME1,NAME2"))


def default_user() -> str:
    """Who acts when no ``user`` is given: ``$LABKIT_USER``, else the login name."""
    try:
        return os.environ.get("LABKIT_USER") or getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _workdir_for(url: sa.URL, workdir: str | Path | None) -> Path:
    if workdir is not None:
        return Path(workdir)
    import platformdirs

    key = f"{url.host or 'local'}_{url.port or 5432}_{url.database}"
    return Path(platformdirs.user_cache_dir("labkit")) / "projects" / key
