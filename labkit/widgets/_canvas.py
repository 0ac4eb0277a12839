"""The PromptCanvas anywidget (JS in ``static/prompt_canvas.js``)."""
from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets as t

_STATIC = Path(__file__).parent / "static"


class PromptCanvas(anywidget.AnyWidget):
    """An image that reports clicks as prompts and captures the Labeler's keys.

    Messages sent to the kernel: ``{"type": "click", "x", "y", "positive"}``,
    ``{"type": "point", "x", "y"}``, ``{"type": "polygon", "points"}``,
    ``{"type": "ellipse", "box"}``, ``{"type": "key", "key"}``.
    """

    _esm = _STATIC / "prompt_canvas.js"
    image = t.Bytes(b"").tag(sync=True)
    format = t.Unicode("jpeg").tag(sync=True)
    tool = t.Unicode("click").tag(sync=True)
    reset = t.Int(0).tag(sync=True)
    shortcut_keys = t.List(t.Unicode(), []).tag(sync=True)
    root_class = t.Unicode("labkit-labeler").tag(sync=True)
