"""The project store: SQLite (a folder, the embedded default) or PostgreSQL (a URL)."""
from labkit.store.images import ImageError
from labkit.store.interchange import ImportProblem, ImportSummary
from labkit.store.project import Project, ProjectError

__all__ = ["Project", "ProjectError", "ImageError", "ImportProblem", "ImportSummary"]
