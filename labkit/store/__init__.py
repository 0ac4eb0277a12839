"""The project store: SQLite (a folder, the embedded default) or PostgreSQL (a URL)."""
from labkit.store.access import AccessDenied
from labkit.store.images import ImageError
from labkit.store.interchange import ImportProblem, ImportSummary
from labkit.store.migrate import migrate
from labkit.store.project import Project, ProjectError
from labkit.store.subjects import Erasure

__all__ = ["Project", "ProjectError", "ImageError", "ImportProblem", "ImportSummary", "AccessDenied",
           "Erasure", "migrate"]
