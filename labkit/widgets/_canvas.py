"""labkit's own anywidgets for the Labeler (their JS and CSS are in ``static/``)."""
from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets as t

_STATIC = Path(__file__).parent / "static"


class PromptCanvas(anywidget.AnyWidget):
    """An image that reports clicks as prompts (``static/prompt_canvas.js``).

    Coordinates are pixels of the image it shows. Messages sent to the kernel:
    ``{"type": "click", "x", "y", "positive"}``, ``{"type": "point", "x", "y"}``,
    ``{"type": "polygon", "points"}``, ``{"type": "ellipse", "box"}``.
    """

    _esm = _STATIC / "prompt_canvas.js"
    image = t.Bytes(b"").tag(sync=True)
    format = t.Unicode("jpeg").tag(sync=True)
    tool = t.Unicode("click").tag(sync=True)
    reset = t.Int(0).tag(sync=True)


class LabelerKeys(anywidget.AnyWidget):
    """The Labeler's keyboard, wherever the focus is inside it (``static/labeler_keys.js``).

    Placed anywhere inside the element with class ``root_class``, it sends
    ``{"type": "key", "key"}`` for each of ``shortcut_keys`` pressed there (outside text fields)
    and keeps JupyterLab's notebook shortcuts out. It also loads the Labeler's CSS
    (``static/labeler.css``).
    """

    _esm = _STATIC / "labeler_keys.js"
    _css = _STATIC / "labeler.css"
    shortcut_keys = t.List(t.Unicode(), []).tag(sync=True)  # not `keys`: an ipywidgets trait
    root_class = t.Unicode("labkit-labeler").tag(sync=True)
    autofocus = t.Bool(False).tag(sync=True)  # take the keyboard when shown (the review mode)
