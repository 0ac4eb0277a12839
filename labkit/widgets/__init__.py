"""Jupyter widgets: thin views over labkit's library calls (ipywidgets, anywidget, jupyter-bbox-widget)."""
from __future__ import annotations

from labkit._util.lazy import lazy_exports

__all__ = ["AgreementDashboard", "DifficultyExplorer", "Labeler", "LabelSession"]

_LAZY = {"Labeler": "labkit.widgets.labeler", "LabelSession": "labkit.widgets.session",
         "AgreementDashboard": "labkit.widgets.agreement", "DifficultyExplorer": "labkit.widgets.difficulty"}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
