"""labkit: SAM-assisted labeling, difficulty scoring, agreement and quality audits in JupyterLab.

The package face: :class:`Project` and the errors labkit raises. Everything else lives
in its layer (``docs/architecture.md``): ``labkit.quality`` (pure numpy/pandas),
``labkit.store``, ``labkit.models``, ``labkit.services``, ``labkit.reports``,
``labkit.widgets``. Heavy libraries (pandas, SQLAlchemy, torch, widgets) load on first
use, so ``import labkit`` stays fast.
"""
from __future__ import annotations

from labkit._util.lazy import lazy_exports
from labkit._version import __version__

__all__ = ["Project", "ProjectError", "ImageError", "ImportProblem", "AccessDenied", "limits", "__version__"]

_LAZY = {"Project": "labkit.services.project", "ProjectError": "labkit.store.errors",
         "ImageError": "labkit.store.errors", "ImportProblem": "labkit.services.interchange",
         "AccessDenied": "labkit.store.errors", "limits": "labkit.formats"}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
