"""``labkit.Project``: the public front of a project, a thin layer over its store and workflows.

Every method here is one line long: it is the repository method of
:class:`~labkit.store.ProjectStore` (``project.store.images.add`` for ``add_images``), or
a workflow of :mod:`labkit.services` called with the project (``import_annotations``,
``export``, ``forget_subject``, ``privacy_report``, ``verify``). The table below is the
whole API; each name's documentation is that of the function it calls.
"""
from __future__ import annotations

import functools
import types
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from labkit.services import erasure as _erasure
from labkit.services import export as _export
from labkit.services import interchange as _interchange
from labkit.services import privacy_report as _privacy_report
from labkit.services import verify as _verify
from labkit.store import ProjectStore
from labkit.store.annotations import AnnotationRepository
from labkit.store.assignments import AssignmentRepository
from labkit.store.classes import ClassRepository
from labkit.store.context import StoreContext
from labkit.store.images import ImageRepository
from labkit.store.members import MemberRepository
from labkit.store.proposals import ProposalRepository
from labkit.store.subjects import SubjectRepository

__all__ = ["Project"]

P = ParamSpec("P")
R = TypeVar("R")


class _Api(Generic[P, R]):
    """A :class:`Project` method that is ``fn`` bound to one part of the project.

    ``area`` names the attribute of ``project.store`` (``"images"``, ``"ctx"``...) the
    function is a method of; ``None`` means a workflow function taking the project first.
    """

    def __init__(self, fn: Callable[Concatenate[Any, P], R], area: str | None = None) -> None:
        self.fn, self.area = fn, area
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]  # a descriptor, documented as fn

    def __set_name__(self, owner: type, name: str) -> None:
        self.__name__, self.__qualname__ = name, f"{owner.__name__}.{name}"

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _Api[P, R]: ...

    @overload
    def __get__(self, obj: Project, owner: type | None = None) -> Callable[P, R]: ...

    def __get__(self, obj: Project | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        target = obj if self.area is None else getattr(obj.store, self.area)
        return types.MethodType(self.fn, target)

    def __repr__(self) -> str:
        where = "project" if self.area is None else f"project.store.{self.area}"
        return f"<labkit.Project.{self.__name__}: {self.fn.__qualname__} on {where}>"


class Project:
    """A labeling project: images, classes, annotators, assignments and annotations.

    A project is either a folder (``project.db``, SQLite in WAL mode, plus caches and
    reports) or a ``postgresql://`` URL with the same schema, for teams on several
    machines. Every write is a transaction that lands whole or not at all; edits and
    deletes keep history and go to the audit log. It acts as one member,
    :attr:`user`, whose role (:mod:`labkit.store.policy`) decides what it may do.

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

    def __init__(self, store: ProjectStore):
        self.store = store

    # ---------------------------------------------------------------- lifecycle --
    @classmethod
    def create(cls, location: str | Path, *, classes: Sequence[str], user: str | None = None,
               workdir: str | Path | None = None) -> Project:
        """Create a new, empty project; you (``user``) are its first admin.

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
        return cls(ProjectStore.create(location, classes=classes, user=user, workdir=workdir))

    @classmethod
    def open(cls, location: str | Path, *, user: str | None = None,
             workdir: str | Path | None = None) -> Project:
        """Open an existing project (a folder or a ``postgresql://`` URL) as a member.

        Parameters
        ----------
        user : str, optional
            Who is acting (a registered annotator; default ``$LABKIT_USER`` or the login
            name). On PostgreSQL you act as the person whose database login the URL
            carries (``postgresql://ana:secret@host/db``); ``user``, if given, must match.
        workdir : path, optional
            For PostgreSQL projects, the local folder for caches and reports.

        Raises
        ------
        AccessDenied
            The user is not a member of the project.
        ProjectError
            No project there, or one written by another schema version.
        """
        return cls(ProjectStore.open(location, user=user, workdir=workdir))

    def close(self) -> None:
        """Release the database connections."""
        self.store.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Project({self.store.ctx.safe_location!r})"

    @property
    def location(self) -> str | Path:
        """The folder or URL the project was opened from."""
        return self.store.ctx.location

    @property
    def root(self) -> Path:
        """The project's local folder: caches, predictions, pools and reports."""
        return self.store.ctx.root

    @property
    def user(self) -> str:
        """The member this project object acts as."""
        return self.store.ctx.user

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.store.ctx.backend

    @property
    def role(self) -> str:
        """Deprecated: the acting user's role; use ``project.whoami()["role"]``.

        It reads the database on every access (a role can change while the project is
        open), which a property should not hide.
        """
        warnings.warn("Project.role is deprecated; use project.whoami()['role'] (it reads the database)",
                      DeprecationWarning, stacklevel=2)
        return self.whoami()["role"]

    # -------------------------------------------------------- people and access --
    whoami = _Api(MemberRepository.whoami, "members")
    add_annotator = _Api(MemberRepository.add, "members")
    annotators = _Api(MemberRepository.table, "members")
    set_role = _Api(MemberRepository.set_role, "members")
    set_blind = _Api(MemberRepository.set_blind, "members")
    audit_log = _Api(StoreContext.audit_log, "ctx")

    # ----------------------------------------------------------------- taxonomy --
    classes = _Api(ClassRepository.names, "classes")
    add_classes = _Api(ClassRepository.add, "classes")

    # ------------------------------------------------------------------- images --
    add_images = _Api(ImageRepository.add, "images")
    images = _Api(ImageRepository.table, "images")
    image_path = _Api(ImageRepository.path, "images")
    read_image = _Api(ImageRepository.read, "images")
    image_files = _Api(ImageRepository.files, "images")
    set_image_attributes = _Api(ImageRepository.set_attributes, "images")

    # -------------------------------------------------------------- annotations --
    add_annotation = _Api(AnnotationRepository.add, "annotations")
    add_annotations = _Api(AnnotationRepository.add_many, "annotations")
    update_annotation = _Api(AnnotationRepository.update, "annotations")
    delete_annotation = _Api(AnnotationRepository.delete, "annotations")
    restore_annotation = _Api(AnnotationRepository.restore, "annotations")
    replace_annotations = _Api(AnnotationRepository.replace, "annotations")
    annotation_history = _Api(AnnotationRepository.history, "annotations")
    annotations = _Api(AnnotationRepository.table, "annotations")

    # ---------------------------------------------------------------- proposals --
    add_proposals = _Api(ProposalRepository.add, "proposals")
    proposals = _Api(ProposalRepository.table, "proposals")
    review = _Api(ProposalRepository.review, "proposals")

    # -------------------------------------------------------------- assignments --
    assign = _Api(AssignmentRepository.assign, "assignments")
    requeue = _Api(AssignmentRepository.requeue, "assignments")
    queue = _Api(AssignmentRepository.queue, "assignments")
    submit = _Api(AssignmentRepository.submit, "assignments")
    progress = _Api(AssignmentRepository.progress, "assignments")

    # -------------------------------------------------------- subjects, privacy --
    subjects = _Api(SubjectRepository.table, "subjects")
    set_consent = _Api(SubjectRepository.set_consent, "subjects")
    withdraw_consent = _Api(SubjectRepository.withdraw_consent, "subjects")
    set_retention = _Api(SubjectRepository.set_retention, "subjects")
    retention = _Api(SubjectRepository.retention, "subjects")
    forget_subject = _Api(_erasure.forget_subject)
    privacy_report = _Api(_privacy_report.build)

    # --------------------------------------------------- interchange, integrity --
    import_annotations = _Api(_interchange.import_annotations)
    export = _Api(_export.export)
    verify = _Api(_verify.verify)

    def info(self) -> dict[str, Any]:
        """Counts and settings, for a summary (see :meth:`ProjectStore.info`)."""
        return self.store.info()
