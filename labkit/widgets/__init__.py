"""Jupyter widgets: thin views over labkit's library calls (ipywidgets, anywidget, jupyter-bbox-widget)."""
from __future__ import annotations

__all__ = ["AgreementDashboard", "DifficultyExplorer", "Labeler", "LabelSession"]

_LAZY = {"Labeler": "labkit.widgets.labeler", "LabelSession": "labkit.widgets.session",
         "AgreementDashboard": "labkit.widgets.agreement", "DifficultyExplorer": "labkit.widgets.difficulty"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'labkit.widgets' has no attribute {name!r}")
