"""labkit: SAM-assisted labeling, difficulty scoring, agreement and quality audits in JupyterLab.

Heavy libraries (pandas, SQLAlchemy, torch, widgets) load on first use, so
``import labkit`` stays fast.
"""
from __future__ import annotations

from labkit._lazy import lazy_exports

from labkit._version import __version__

__all__ = ["Project", "ProjectError", "ImageError", "ImportProblem", "AccessDenied", "__version__"]

_LAZY = {"Project": "labkit.store", "ProjectError": "labkit.store", "ImageError": "labkit.store",
         "ImportProblem": "labkit.store", "AccessDenied": "labkit.store"}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
