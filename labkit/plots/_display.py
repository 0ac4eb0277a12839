"""pyplot-free matplotlib Figures, shown in Jupyter (and in papermill reports) as PNG."""
from __future__ import annotations

from typing import Any

__all__ = ["new_figure", "register_ipython"]

_done = False


def new_figure(width: float, height: float) -> Any:
    """A ``matplotlib.figure.Figure`` of ``width`` x ``height`` inches, constrained layout.

    No pyplot: no global state, safe in threads and reports. The running IPython (if
    any) learns to render it as PNG.
    """
    from matplotlib.figure import Figure

    register_ipython()
    return Figure(figsize=(width, height), layout="constrained")


def register_ipython() -> None:
    """Teach the running IPython to render ``matplotlib.figure.Figure`` as PNG (once).

    IPython registers that formatter only when pyplot is imported; labkit's figures are
    built without pyplot (no global state), so they would otherwise show as text.
    """
    global _done
    if _done:
        return
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None:
        return
    from IPython.core.pylabtools import print_figure
    from matplotlib.figure import Figure

    ip.display_formatter.formatters["image/png"].for_type(Figure, lambda fig: print_figure(fig, "png", dpi=100))
    _done = True
