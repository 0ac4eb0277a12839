"""What the layers above the store need of a project: :class:`ProjectLike`, :class:`StoredProject`.

:class:`labkit.Project` is one. Models, reports and widgets type their ``project``
arguments with this protocol instead of ``Any``, so it is explicit what they may call,
and in particular that they read images only through the store's audited readers
(``read_image`` for one image, ``image_files`` for bulk readers): every read is checked
against the reader's role and written to the audit log.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: importing this module loads neither numpy nor pandas
    import numpy as np
    import pandas as pd

    from labkit.store.project_store import ProjectStore

__all__ = ["ProjectLike", "StoredProject"]


@runtime_checkable
class ProjectLike(Protocol):
    """A labkit project as seen by models, reports and widgets."""

    @property
    def root(self) -> Path:
        """The project's local folder: caches, predictions, pools and reports."""
        ...

    @property
    def user(self) -> str:
        """The member acting."""
        ...

    def classes(self) -> list[str]: ...

    def images(self, *, split: str | None = None, subject: str | None = None,
               include_withdrawn: bool = False) -> pd.DataFrame: ...

    def annotations(self, *, kind: str | None = None, image: int | None = None, annotator: str | None = None,
                    source: str | None = None, label: str | None = None, include_deleted: bool = False,
                    include_withdrawn: bool = False) -> pd.DataFrame: ...

    def read_image(self, image: Any, *, verify: bool = True) -> np.ndarray: ...

    def image_files(self, images: Sequence[int] | None = None, *, purpose: str) -> pd.DataFrame: ...


@runtime_checkable
class StoredProject(ProjectLike, Protocol):
    """A project with its store (:class:`labkit.Project` is one): what the workflows of
    :mod:`labkit.services` take, composing the store's repositories (``project.store``)
    inside their own transactions."""

    @property
    def store(self) -> ProjectStore:
        """The project's database: context and one repository per area."""
        ...
