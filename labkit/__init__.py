"""labkit: SAM-assisted labeling, difficulty scoring, agreement and quality audits in JupyterLab.

Heavy libraries (pandas, SQLAlchemy, torch, widgets) load on first use, so
``import labkit`` stays fast.
"""
from __future__ import annotations

from labkit._version import __version__

__all__ = ["Project", "ProjectError", "ImageError", "ImportProblem", "__version__"]

_LAZY = {"Project": "labkit.store", "ProjectError": "labkit.store", "ImageError": "labkit.store",
         "ImportProblem": "labkit.store"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
