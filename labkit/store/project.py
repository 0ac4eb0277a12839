"""``labkit.Project``: a labeling project stored in SQLite (a folder) or PostgreSQL (a URL)."""
from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from labkit._version import __version__
from labkit.store import schema as S
from labkit.store.access import AccessDenied, AccessMixin
from labkit.store.annotations import AnnotationsMixin
from labkit.store.assignments import AssignmentsMixin
from labkit.store.engine import create_engine, is_url, make_url, retrying, safe_location, write_transaction
from labkit.store.errors import ProjectError
from labkit.store.images import ImageError, expand_paths, inspect_images, load_rgb, sha256_file
from labkit.store.interchange import InterchangeMixin
from labkit.store.members import MembersMixin, pg_identity, unmapped_login
from labkit.store.subjects import SubjectsMixin, not_withdrawn


def now() -> datetime:
    return datetime.now(timezone.utc)


def _default_user() -> str:
    try:
        return os.environ.get("LABKIT_USER") or getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


class Project(AccessMixin, MembersMixin, AnnotationsMixin, AssignmentsMixin, InterchangeMixin, SubjectsMixin):
    """A labeling project: images, classes, annotators, assignments and annotations.

    A project is either a folder (``project.db``, SQLite in WAL mode, plus caches and
    reports) or a ``postgresql://`` URL with the same schema, for teams on several
    machines. Every write is a transaction that lands whole or not at all; edits and
    deletes keep history and go to the audit log.

    Use :meth:`create` or :meth:`open`, not the constructor.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> tmp = tempfile.mkdtemp()
    >>> Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(f"{tmp}/a.png")
    >>> p = Project.create(f"{tmp}/proj", classes=["cat", "dog"])
    >>> p.add_annotator("ana")
    2
    >>> p.add_images([f"{tmp}/a.png"])
    [1]
    >>> p.add_annotation(image=1, kind="box", label="cat", annotator="ana", geometry=[2, 3, 12, 15])
    1
    >>> p.annotations(kind="box")[["task", "worker", "label", "x0", "y1"]]
                task worker label   x0    y1
    annotation
    1              1    ana   cat  2.0  15.0
    """

    def __init__(self, engine: sa.Engine, location: str | Path, root: Path, user: str):
        self._engine = engine
        self.location = location
        self.root = root
        self.user = user

    # ------------------------------------------------------------------ lifecycle --
    @classmethod
    def create(cls, location: str | Path, *, classes: Sequence[str], user: str | None = None,
               workdir: str | Path | None = None) -> "Project":
        """Create a new, empty project.

        Parameters
        ----------
        location : str or Path
            A folder (created if missing; must not already hold a project) or a
            ``postgresql://user@host:port/dbname`` URL of an existing, empty database.
        classes : sequence of str
            The taxonomy, in display order. More can be added with :meth:`add_classes`.
        user : str, optional
            Who is acting, for the audit log (default: ``$LABKIT_USER`` or the login name).
        workdir : path, optional
            For PostgreSQL projects, the local folder for caches and reports.
        """
        classes = _check_class_names(classes)
        url = make_url(location)
        if not is_url(location):
            root = Path(location)
            if (root / "project.db").exists():
                raise ProjectError(f"{root} already holds a labkit project; open it with "
                                   f"Project.open({str(root)!r})")
            root.mkdir(parents=True, exist_ok=True)
        else:
            root = _workdir_for(url, workdir)
        engine = create_engine(url)
        if sa.inspect(engine).has_table("meta"):
            engine.dispose()
            raise ProjectError(f"the database {url.render_as_string(hide_password=True)} already "
                               "holds a labkit project; use Project.open, or an empty database")
        S.metadata.create_all(engine)
        user = user or _default_user()
        t = now()
        with write_transaction(engine) as conn:
            login = None
            if engine.dialect.name == "postgresql":
                from labkit.store import pg_access

                login = conn.exec_driver_sql("SELECT session_user").scalar()
                pg_access.install(conn)
            conn.execute(sa.insert(S.meta), [
                {"key": "schema_version", "value": S.SCHEMA_VERSION},
                {"key": "created_with", "value": __version__},
                {"key": "created_at", "value": t.isoformat()},
            ])
            conn.execute(sa.insert(S.classes), [{"name": c, "position": i} for i, c in enumerate(classes)])
            conn.execute(sa.insert(S.annotators).values(name=user, role="admin", simulated=False, created_at=t,
                                                        db_user=login))
            conn.execute(sa.insert(S.audit_log).values(at=t, actor=user, action="create_project",
                                                       target="project", details={"classes": classes}))
        return cls(engine, location, root, user)

    @classmethod
    def open(cls, location: str | Path, *, user: str | None = None,
             workdir: str | Path | None = None) -> "Project":
        """Open an existing project (a folder or a ``postgresql://`` URL) as a member.

        Parameters
        ----------
        user : str, optional
            Who is acting (a registered annotator; default ``$LABKIT_USER`` or the login
            name). On PostgreSQL you act as the person whose database login the URL
            carries (``postgresql://ana:secret@host/db``); ``user``, if given, must match.

        Raises
        ------
        AccessDenied
            The user is not a member of the project.
        ProjectError
            No project there, or one written by another schema version.
        """
        url = make_url(location)
        if not is_url(location):
            root = Path(location)
            if not (root / "project.db").exists():
                raise ProjectError(f"no labkit project at {root} (no project.db); create one with "
                                   f"Project.create({str(root)!r}, classes=[...])")
        else:
            root = _workdir_for(url, workdir)
        engine = create_engine(url)
        if not sa.inspect(engine).has_table("meta"):
            engine.dispose()
            raise ProjectError(f"{url.render_as_string(hide_password=True)} holds no labkit project")
        try:
            with engine.connect() as conn:
                version = conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "schema_version")).scalar()
        except sa.exc.ProgrammingError:  # PostgreSQL: a login with no grants on this project
            with engine.connect() as conn:
                login = conn.exec_driver_sql("SELECT session_user").scalar()
            engine.dispose()
            raise unmapped_login(login, login) from None
        if version != S.SCHEMA_VERSION:
            engine.dispose()
            if isinstance(version, int) and version < S.SCHEMA_VERSION:
                raise ProjectError(f"project schema version {version} is older than this labkit's "
                                   f"({S.SCHEMA_VERSION}); upgrade it with `labkit migrate --project {location}` "
                                   "(a folder project is backed up first)")
            raise ProjectError(f"project schema version {version}, but this labkit ({__version__}) reads "
                               f"version {S.SCHEMA_VERSION}; install the labkit that created it")
        try:
            user = pg_identity(engine, user) if engine.dialect.name == "postgresql" else user or _default_user()
            proj = cls(engine, location, root, user)
            with engine.connect() as conn:
                proj._actor(conn)
        except AccessDenied as exc:
            if engine.dialect.name == "sqlite":
                cls(engine, location, root, exc.actor)._log_denied(exc)
            engine.dispose()
            raise
        return proj

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Project({safe_location(self.location)!r})"

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    # ------------------------------------------------------------------ helpers --
    def _write(self, fn):
        """Run ``fn(conn)`` in one write transaction, retried whole on transient locks.

        An :class:`AccessDenied` raised inside rolls the transaction back and is then
        recorded in the audit log, in a transaction of its own.
        """
        def attempt():
            with write_transaction(self._engine) as conn:
                return fn(conn)
        return self._guard(lambda: retrying(attempt))

    def _guard(self, fn):
        """Call ``fn()``; log an AccessDenied it raises, then re-raise it."""
        try:
            return fn()
        except AccessDenied as exc:
            self._log_denied(exc)
            raise

    def _read(self, stmt, conn=None) -> pd.DataFrame:
        if conn is None:
            with self._engine.connect() as conn:
                return self._read(stmt, conn)
        res = conn.execute(stmt)
        return pd.DataFrame(res.fetchall(), columns=list(res.keys()))

    def _audit(self, conn, action: str, *, target: str | None = None, target_id: int | None = None,
               actor: str | None = None, **details: Any) -> None:
        conn.execute(sa.insert(S.audit_log).values(
            at=now(), actor=actor or self.user, action=action, target=target,
            target_id=target_id, details=details))

    def audit_log(self) -> pd.DataFrame:
        """Every recorded action (who, what, when, and denied attempts), oldest first.

        Admins and viewers read it; annotators do not (it shows everyone's work).
        """
        def fn():
            with self._engine.connect() as conn:
                self._require(conn, "read_audit_log", "admin", "viewer", what="read the audit log")
                return self._read(sa.select(S.audit_log).order_by(S.audit_log.c.id), conn).set_index("id")
        return self._guard(fn)

    # ------------------------------------------------------------------ classes --
    def classes(self) -> list[str]:
        """Class names in display order."""
        with self._engine.connect() as conn:
            return list(conn.execute(sa.select(S.classes.c.name).order_by(S.classes.c.position)).scalars())

    def add_classes(self, names: Sequence[str]) -> None:
        """Append classes to the taxonomy (existing names are an error)."""
        names = _check_class_names(names)

        def fn(conn):
            self._require_admin(conn, "add_classes", "change the taxonomy")
            have = dict(conn.execute(sa.select(S.classes.c.name, S.classes.c.position)).all())
            dup = [n for n in names if n in have]
            if dup:
                raise ProjectError(f"classes already in the project: {dup}")
            start = max(have.values(), default=-1) + 1
            conn.execute(sa.insert(S.classes), [{"name": n, "position": start + i} for i, n in enumerate(names)])
            self._audit(conn, "add_classes", target="classes", classes=list(names))
        self._write(fn)

    def _class_ids(self, conn) -> dict[str, int]:
        return dict(conn.execute(sa.select(S.classes.c.name, S.classes.c.id)).all())

    # ------------------------------------------------------------------- images --
    def add_images(self, paths_or_folder: str | Path | Iterable[str | Path], *, split: str | None = None,
                   subject: str | Sequence[str | None] | None = None,
                   attributes: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
                   consent: str = "unknown", purpose: str | None = None,
                   progress: bool = True) -> list[int]:
        """Add image files; return their new ids in input order. Admins only.

        Every file is decoded and hashed first; if any is missing, unreadable, corrupt or
        already in the project, an :class:`ImageError` lists them all and nothing is added.

        Parameters
        ----------
        paths_or_folder : path, folder or iterable of paths
            A folder is searched recursively for image files (sorted by path).
        split : str, optional
            e.g. ``"train"``, ``"val"``, ``"test"``.
        subject : str or sequence of str, optional
            The data subject (person) each image shows: one for all, or one per image
            (for example the AI-Hub ``metaid``). New subjects are registered with
            ``consent`` and ``purpose``; see :meth:`subjects`.
        attributes : dict or sequence of dict, optional
            Image attributes (e.g. ``{"inst": "S", "image": "rgb"}``): one for all, or one per image.
        consent : {"given", "unknown"}
            Consent status recorded for new subjects (existing ones keep theirs; a subject
            who withdrew consent cannot be given new images).
        purpose : str, optional
            What the subjects' data may be used for, recorded with new subjects.
        """
        paths = expand_paths(paths_or_folder)
        n = len(paths)
        subjects = _per_image(subject, n, "subject", str)
        attrs = _per_image(attributes, n, "attributes", Mapping)
        stored = [self._stored_path(p) for p in paths]
        dup_in_call = sorted({s for s in stored if stored.count(s) > 1})
        if dup_in_call:
            raise ImageError(f"these paths are given more than once; nothing was added: {dup_in_call[:20]}")
        infos = inspect_images(paths, progress=progress)

        def fn(conn):
            self._require_admin(conn, "add_images", "add images")
            consents = self._register_subjects(conn, subjects, consent=consent, purpose=purpose)
            existing = set(conn.execute(sa.select(S.images.c.path).where(S.images.c.path.in_(stored))).scalars())
            if existing:
                raise ImageError(f"{len(existing)} image(s) are already in the project; nothing was added "
                                 f"(pass only new files): {sorted(existing)[:20]}")
            t = now()
            ids = []
            for info, sp, sub, at in zip(infos, stored, subjects, attrs):
                ids.append(conn.execute(sa.insert(S.images).values(
                    path=sp, sha256=info.sha256, width=info.width, height=info.height, split=split,
                    subject=sub, attributes=dict(at or {}), added_at=t,
                    consent=consents.get(sub))).inserted_primary_key[0])
            self._audit(conn, "add_images", target="images", count=len(ids),
                        first_id=ids[0] if ids else None, split=split)
            return ids
        return self._write(fn)

    def _stored_path(self, path: Path) -> str:
        """Paths inside a folder project are stored relative to it, so the folder can move."""
        p = Path(path).resolve()
        if not is_url(self.location):
            try:
                return p.relative_to(Path(self.root).resolve()).as_posix()
            except ValueError:
                pass
        return p.as_posix()

    def images(self, *, split: str | None = None, subject: str | None = None,
               include_withdrawn: bool = False) -> pd.DataFrame:
        """Images indexed by id (``image``): path, sha256, width, height, split, subject,
        attributes, added_at, consent.

        Images whose subject withdrew consent are left out (so training, scoring,
        assignment and export skip them) unless ``include_withdrawn``. Annotators see
        only the images assigned to them, without subject ids.
        """
        stmt = sa.select(S.images).order_by(S.images.c.id)
        if split is not None:
            stmt = stmt.where(S.images.c.split == split)
        if subject is not None:
            stmt = stmt.where(S.images.c.subject == subject)
        if not include_withdrawn:
            stmt = stmt.where(not_withdrawn(S.images.c.consent))

        def fn():
            with self._engine.connect() as conn:
                me = self._actor(conn)
                q = stmt
                if me.role == "annotator":
                    q = q.where(S.images.c.id.in_(sa.select(S.assignments.c.image_id).where(
                        S.assignments.c.annotator_id == me.id)))
                df = self._read(q, conn).rename(columns={"id": "image"}).set_index("image")
            if me.role == "annotator":
                df["subject"] = None
            return df
        return self._guard(fn)

    def _image_row(self, conn, image: int | str | Path):
        if isinstance(image, (str, Path)):
            row = conn.execute(sa.select(S.images).where(
                S.images.c.path == self._stored_path(Path(image)))).first()
        else:
            row = conn.execute(sa.select(S.images).where(S.images.c.id == int(image))).first()
        if row is None:
            raise ProjectError(f"no image {image!r} in the project; ids and paths are listed by project.images()")
        return row

    def set_image_attributes(self, image: int | str | Path, attributes: Mapping[str, Any], *, by: str) -> dict:
        """Merge ``attributes`` into an image's attributes (``None`` removes a key); return the result.

        The change is written to the audit log with the previous values, so it can be undone.
        """
        from labkit.store.annotations import _check_json

        _check_json(dict(attributes), "attributes")

        def fn(conn):
            row = self._image_row(conn, image)
            self._check_annotation_writes(conn, "set_image_attributes", [], [row.id], by=by)
            old = dict(row.attributes or {})
            new = {**old, **attributes}
            new = {k: v for k, v in new.items() if v is not None}
            conn.execute(sa.update(S.images).where(S.images.c.id == row.id).values(attributes=new))
            self._audit(conn, "set_image_attributes", target="images", target_id=row.id, actor=by,
                        before={k: old.get(k) for k in attributes}, after=dict(attributes))
            return new
        return self._write(fn)

    def image_path(self, image: int | str | Path) -> Path:
        """Absolute path of an image file."""
        with self._engine.connect() as conn:
            return self._resolve(self._image_row(conn, image).path)

    def _resolve(self, stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else Path(self.root) / p

    def read_image(self, image: int | str | Path, *, verify: bool = True) -> np.ndarray:
        """The image as ``(H, W, 3)`` uint8 RGB; with ``verify``, its bytes must match the stored hash.

        Annotators read only images assigned to them; nobody but an admin reads an image
        whose subject withdrew consent. The first read of each image by this project
        object is written to the audit log (who read what, for the privacy report).
        """
        def check():
            with self._engine.connect() as conn:
                row = self._image_row(conn, image)
                me = self._actor(conn)
                if me.role == "annotator" and not self._assigned(conn, me.id, [row.id]):
                    self._deny("read_image", f"read image {row.id}: it is not assigned to you",
                               image=row.id)
                if row.consent == "withdrawn" and me.role != "admin":
                    self._deny("read_image", f"read image {row.id}: its subject withdrew consent",
                               image=row.id)
            return row
        row = self._guard(check)
        self._log_access("read_image", row.id)
        path = self._resolve(row.path)
        if not path.exists():
            raise ImageError(f"image {row.id} is missing: {path} (moved or deleted since import)")
        if verify and sha256_file(path) != row.sha256:
            raise ImageError(f"image {row.id} changed since import: {path} no longer matches its "
                             "sha256; restore the original file or re-import it")
        return load_rgb(path)

    def verify(self, *, progress: bool = True) -> pd.DataFrame:
        """Re-hash every image file and trained model weight; one row per file with its status.

        ``ok``, ``changed``, ``missing`` or ``unreadable`` against the hash recorded at
        import; ``df.attrs["summary"]`` counts them. ``labkit verify --project P`` prints
        the problems and exits 1 if there are any. See :func:`labkit.store.verify.verify_project`.
        """
        from labkit.store.verify import verify_project

        self._check_now("verify", "admin", "viewer", what="verify the project's files")
        return verify_project(self, progress=progress)

    # --------------------------------------------------------------------- info --
    def info(self) -> dict[str, Any]:
        """Counts and settings, for a summary."""
        with self._engine.connect() as conn:
            count = lambda t, *w: conn.execute(sa.select(sa.func.count()).select_from(t).where(*w)).scalar()
            kinds = dict(conn.execute(sa.select(S.annotations.c.kind, sa.func.count())
                                      .where(S.annotations.c.deleted_at.is_(None))
                                      .group_by(S.annotations.c.kind)).all())
            sources = dict(conn.execute(sa.select(S.annotations.c.source, sa.func.count())
                                        .where(S.annotations.c.deleted_at.is_(None))
                                        .group_by(S.annotations.c.source)).all())
            return {
                "location": safe_location(self.location), "backend": self.backend,
                "classes": self.classes(), "images": count(S.images),
                "annotators": count(S.annotators),
                "simulated_annotators": count(S.annotators, S.annotators.c.simulated.is_(True)),
                "annotations": sum(kinds.values()), "annotations_by_kind": kinds,
                "annotations_by_source": sources,
                "deleted_annotations": count(S.annotations, S.annotations.c.deleted_at.is_not(None)),
                "assignments": count(S.assignments),
            }


def _check_class_names(names: Sequence[str]) -> list[str]:
    if isinstance(names, str) or not isinstance(names, Sequence) and not hasattr(names, "__iter__"):
        raise ProjectError(f"classes must be a list of names, got {names!r}")
    names = list(names)
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ProjectError(f"class names must be non-empty strings; got {bad}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ProjectError(f"class names must be unique; repeated: {dup}")
    return names


def _per_image(value, n: int, what: str, one_type) -> list:
    if value is None or isinstance(value, one_type):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ProjectError(f"{what} has {len(values)} entries for {n} images; give one value for all "
                           "images or exactly one per image")
    return values


def _workdir_for(url: sa.URL, workdir: str | Path | None) -> Path:
    if workdir is not None:
        return Path(workdir)
    import platformdirs

    key = f"{url.host or 'local'}_{url.port or 5432}_{url.database}"
    return Path(platformdirs.user_cache_dir("labkit")) / "projects" / key
