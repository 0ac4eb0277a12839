"""``Labeler``: SAM-assisted labeling in a JupyterLab notebook.

A view over :class:`labkit.widgets.session.LabelSession`: boxes are drawn with
jupyter-bbox-widget, clicks, polygons, points and ellipses on labkit's PromptCanvas;
every accepted object is in the project store before the widget shows it as saved.
The keys work wherever the focus is inside the Labeler (``LabelerKeys``), so drawing a
box and pressing Enter needs no other click. Small images are shown enlarged by whole
pixels; every coordinate from the browser is converted back to image pixels here.
"""
from __future__ import annotations

import functools
import html
import logging
import threading
from typing import TYPE_CHECKING

import ipywidgets as w
from jupyter_bbox_widget import BBoxWidget

from labkit.widgets._canvas import LabelerKeys, PromptCanvas
from labkit.widgets._common import safe_action
from labkit.widgets._render import compose
from labkit.widgets.review import ReviewQueue, proposal_mask, review_text, seed_prompts
from labkit.widgets.session import LabelSession

if TYPE_CHECKING:
    from labkit.services.project import Project

log = logging.getLogger("labkit.labeler")

TOOL_OPTIONS = [("SAM box [b]", "sam"), ("Box [x]", "box"), ("Click ± [c]", "click"),
                ("Polygon [o]", "polygon"), ("Point [t]", "point"), ("Ellipse [e]", "ellipse")]
TOOL_KEYS = {"b": "sam", "x": "box", "c": "click", "o": "polygon", "t": "point", "e": "ellipse"}
KEYS = [str(d) for d in range(10)] + ["Enter", "Escape", "Delete", "z", "y", "n", "p", "d", "s", *TOOL_KEYS]
DISPLAY_PX = 512
"""Images smaller than this are enlarged by the largest whole factor that keeps them within it."""
HELP = """
<b>Keys</b> work once you have drawn or clicked anywhere in the Labeler (a cyan frame shows it has the
keyboard), but not while you type in a text field: <code>1</code>..<code>9</code>, <code>0</code> choose the class ·
<code>Enter</code> accept the mask · <code>z</code> undo · <code>y</code> redo · <code>Esc</code> clear prompts ·
<code>n</code>/<code>p</code> next/previous image · <code>d</code> done (next) · <code>s</code> skip ·
tools: <code>b</code> SAM box, <code>x</code> plain box, <code>c</code> clicks, <code>o</code> polygon,
<code>t</code> point, <code>e</code> ellipse.<br>
<b>SAM box</b>: drag a box, the mask appears in cyan; switch to <b>Click ±</b> to refine (left click = object,
right or shift click = background); choose among the mask candidates; accept.
<b>Polygon</b>: click the vertices, click the first one (or double-click) to close.
<b>Ellipse</b>: drag its bounding rectangle. Undo also removes an accepted object; nothing accepted is ever lost.<br>
<b>Review</b> (<code>review=True</code>): each proposal appears in cyan, least confident first. <code>Enter</code>
accepts it · <code>Delete</code> rejects it · a box or click starts an edit, which <code>Enter</code> saves as your own
object replacing it · a class key changes its class (also an edit) · <code>n</code>/<code>p</code> next/previous.
"""


def _class_options(classes: list[str]) -> list[tuple[str, str]]:
    """The class buttons: ``("cat [1]", "cat")``..., key 0 for the tenth; later classes have no key."""
    return [(f"{c} [{(i + 1) % 10}]" if i < 10 else c, c) for i, c in enumerate(classes)]


class Labeler(w.VBox):
    """Label a project's images with SAM (or GrabCut) assistance, in a notebook.

    Parameters
    ----------
    project : labkit.Project
    annotator : str
        Who is labeling (a registered annotator).
    segmenter : segmenter or str, optional
        Default: SAM when ``LABKIT_SAM_CHECKPOINT`` is set, else GrabCut.
    queue : sequence of int, optional
        Image ids in order; default: the annotator's pending assignments.
    split : str, optional
        Only the queue's images of this split (the demo's ``"photos"``).
    classes : sequence of str, optional
        The classes offered, in key order (1..9, 0); default: all the project's.
    blind : bool, optional
        Hide other annotators' objects (default: on for images assigned to several,
        off for admins).
    zoom : int, optional
        Whole-pixel magnification on screen. Default: images smaller than ``DISPLAY_PX``
        are enlarged by the largest factor that keeps them within it (a 32 px digit shows
        at 512 px, its pixels sharp squares); larger ones as they are.
    prefetch : bool
        Encode the next images in the background (SAM), so moving on is instant.
    review : bool
        Review proposals (:func:`labkit.models.prelabel`) instead of labeling from
        scratch: the Labeler walks ``project.proposals()`` (of the images assigned to
        ``annotator`` when it has assignments), least confident first
        (:class:`~labkit.widgets.review.ReviewQueue`). Enter accepts, Delete rejects, a
        prompt starts an edit (Enter saves it: your object replaces the proposal), the
        class keys change the class; the counts of what is left stay on screen.

    Examples
    --------
    In a notebook (the widget needs a browser), the demo's photographs::

        from labkit import Project
        from labkit.widgets import Labeler
        Labeler(Project.open("demo_project"), annotator="demo-admin", split="photos",
                classes=["person", "cup", "cat", "rocket"])
        Labeler(project, annotator="ana", review=True)   # review the proposals
    """

    def __init__(self, project: Project, *, annotator: str, segmenter=None, queue=None, split: str | None = None,
                 classes=None, blind: bool | None = None, zoom: int | None = None, prefetch: bool = True,
                 review: bool = False):
        if zoom is not None and (isinstance(zoom, bool) or not isinstance(zoom, int) or zoom < 1):
            raise ValueError(f"zoom must be a whole number >= 1, or None to fit small images; got {zoom!r}")
        self._zoom = zoom
        self._lock = threading.RLock()  # one UI action at a time (see _safe)
        self.review_queue = ReviewQueue(project, annotator) if review else None
        if self.review_queue is not None:
            if not self.review_queue.ids:
                raise ValueError(f"no proposals for {annotator!r} to review; make some with labkit.models.prelabel")
            queue = self.review_queue.images
        self.session = s = LabelSession(project, annotator=annotator, segmenter=segmenter, queue=queue,
                                        split=split, classes=classes, blind=blind, prefetch=prefetch)
        self.title = w.HTML()
        self.status = w.HTML()
        self.status.add_class("labkit-status")
        self.tool = w.ToggleButtons(options=TOOL_OPTIONS, value="sam", style={"button_width": "auto"})
        self.tool.add_class("labkit-tool")
        self.cls = w.ToggleButtons(options=_class_options(s.classes), value=s.label, style={"button_width": "auto"})
        self.cls.add_class("labkit-class")
        self.bbox = BBoxWidget(classes=s.classes, label=s.label, hide_buttons=True)
        self.bbox.add_class("labkit-bbox")
        self.canvas = PromptCanvas()
        self.canvas.add_class("labkit-canvas")
        self.keyboard = LabelerKeys(shortcut_keys=KEYS, autofocus=review, layout=w.Layout(display="none"))
        self.candidates = w.ToggleButtons(options=[], style={"button_width": "auto"})
        self.candidates.add_class("labkit-candidates")
        btn = functools.partial(w.Button, layout=w.Layout(width="auto"))
        self.accept_btn = btn(description="Accept [Enter]", button_style="success")
        self.reject_btn = btn(description="Reject [Del]", button_style="danger",
                              layout=w.Layout(width="auto", display=None if review else "none"))
        self.review_status = w.HTML(layout=w.Layout(display=None if review else "none"))
        self.review_status.add_class("labkit-review")
        self.undo_btn, self.redo_btn = btn(description="Undo [z]"), btn(description="Redo [y]")
        self.clear_btn = btn(description="Clear [Esc]")
        self.prev_btn, self.next_btn = btn(description="◀ Prev [p]"), btn(description="Next [n] ▶")
        self.skip_btn, self.done_btn = btn(description="Skip [s]"), btn(description="Done [d] ✓", button_style="info")
        self.jump = w.BoundedIntText(value=1, min=1, max=len(s.queue), layout=w.Layout(width="6em"))
        self.jump_btn = btn(description="Go")
        self.objects = w.Select(options=[], rows=8, layout=w.Layout(width="100%"))
        self.objects.add_class("labkit-objects")
        self.delete_btn = btn(description="Delete object")
        self.relabel_btn = btn(description="Give it the chosen class")
        self.image_labels = w.TagsInput(allowed_tags=s.classes, allow_duplicates=False)
        self.attributes = w.Text(placeholder="key=value, key=value", layout=w.Layout(width="100%"))
        self.attr_btn = btn(description="Save attributes")
        for name in ("accept", "reject", "undo", "redo", "clear", "prev", "next", "skip", "done", "jump", "delete",
                     "relabel", "attr"):
            getattr(self, f"{name}_btn").add_class(f"labkit-{name}")
        wrap = w.Layout(flex_flow="row wrap")  # buttons wrap rather than shrink to "Und…"
        side = w.VBox([
            w.HTML("<b>Mask candidates</b>"), self.candidates,
            w.HBox([self.accept_btn, self.reject_btn, self.undo_btn, self.redo_btn, self.clear_btn], layout=wrap),
            w.HTML("<b>Objects on this image</b>"), self.objects,
            w.HBox([self.delete_btn, self.relabel_btn], layout=wrap),
            w.HTML("<b>Image labels</b>"), self.image_labels,
            w.HTML("<b>Image attributes</b>"), self.attributes, self.attr_btn,
        ], layout=w.Layout(width="34%", min_width="280px"))
        help_box = w.Accordion(children=[w.HTML(HELP)], titles=("Help: keys and tools",))
        nav = w.HBox([self.prev_btn, self.next_btn, self.skip_btn, self.done_btn, w.Label("go to"),
                      self.jump, self.jump_btn], layout=wrap)
        super().__init__([self.title, self.review_status, self.tool, self.cls,
                          w.HBox([w.VBox([self.bbox, self.canvas], layout=w.Layout(width="66%")), side]),
                          nav, self.status, help_box, self.keyboard])
        self.add_class("labkit-labeler")
        self._syncing = False
        self._wire()
        self._show_image()
        self._show_proposal()

    def close(self) -> None:
        """Stop the background prefetch and close the widget."""
        session = self.__dict__.get("session")  # absent when the constructor failed (ipywidgets closes on __del__)
        if session is not None:
            session.close()
        super().close()

    # ----------------------------------------------------------------- wiring --
    def _safe(self, fn):
        """Run a UI action, one at a time; show any error in the widget (and the log) instead of losing it.

        The kernel may handle the box widget's updates and the key messages on different
        threads (JupyterLab's comms over subshells): without the lock, an Enter pressed as
        the mask appears could run while the box is still being segmented.
        """
        return safe_action(self.status, log, lock=self._lock)(fn)

    def _wire(self) -> None:
        on = lambda b, f: b.on_click(self._safe(lambda _: f()))  # noqa: E731
        on(self.accept_btn, self.accept)
        on(self.reject_btn, self.reject)
        on(self.undo_btn, self.undo)
        on(self.redo_btn, self.redo)
        on(self.clear_btn, self.clear)
        on(self.prev_btn, self.prev)
        on(self.next_btn, self.next)
        on(self.skip_btn, self.skip)
        on(self.done_btn, self.done)
        on(self.jump_btn, lambda: self.go(self.jump.value - 1))
        on(self.delete_btn, self._delete_selected)
        on(self.relabel_btn, self._relabel_selected)
        on(self.attr_btn, self._save_attributes)
        self.tool.observe(self._safe(lambda c: self._set_tool(c["new"])), "value")
        self.cls.observe(self._safe(lambda c: self._set_class(c["new"])), "value")
        self.candidates.observe(self._safe(self._on_candidate), "value")
        self.bbox.observe(self._safe(self._on_bboxes), "bboxes")
        self.image_labels.observe(self._safe(self._on_image_labels), "value")
        self.canvas.on_msg(self._safe(self._on_canvas_msg))
        self.keyboard.on_msg(self._safe(self._on_keyboard_msg))

    @property
    def zoom(self) -> int:
        """The whole-pixel magnification of the current image on screen."""
        return self._zoom or max(1, DISPLAY_PX // max(self.session.image.shape[:2]))

    def _image_xy(self, *values: float) -> list[float]:
        """Coordinates on screen (pixels of the enlarged image) as image pixels."""
        z = self.zoom
        return [float(v) / z for v in values]

    def _on_canvas_msg(self, _widget, msg, _buffers) -> None:
        kind = msg.get("type")
        s = self.session
        if kind == "click":
            self._seed_edit()
            s.add_click(*self._image_xy(msg["x"], msg["y"]), positive=bool(msg.get("positive", True)))
            self._refresh(f"{'object' if msg.get('positive', True) else 'background'} click added")
        elif self.review_queue is not None and kind in ("point", "polygon", "ellipse"):
            self._review_object(kind, msg)  # the drawn object replaces the proposal
        elif kind == "point":
            self._saved(s.add_point(*self._image_xy(msg["x"], msg["y"])))
        elif kind == "polygon":
            self._saved(s.add_polygon([self._image_xy(*p) for p in msg["points"]]))
        elif kind == "ellipse":
            self._saved(s.add_ellipse(self._image_xy(*msg["box"])))

    def _on_keyboard_msg(self, _widget, msg, _buffers) -> None:
        if msg.get("type") == "key":
            self.key(msg["key"])

    def key(self, key: str) -> None:
        """Handle a keyboard shortcut (see the help)."""
        actions = {"Enter": self.accept, "z": self.undo, "y": self.redo, "Escape": self.clear, "n": self.next,
                   "p": self.prev, "d": self.done, "s": self.skip}
        if self.review_queue is not None:
            actions["Delete"] = self.reject
        if key in actions:
            actions[key]()
        elif key in TOOL_KEYS:
            self.tool.value = TOOL_KEYS[key]
        elif key.isdigit():
            i = (int(key) - 1) % 10
            if i < len(self.session.classes):
                self.cls.value = self.session.classes[i]

    # ---------------------------------------------------------------- actions --
    def _on_bboxes(self, change) -> None:
        if self._syncing or not change["new"]:
            return
        b = change["new"][-1]
        if abs(b["width"]) < 2 or abs(b["height"]) < 2:
            return  # jupyter-bbox-widget syncs a zero-size box on mousedown; the drag's end follows
        (x0, x1), (y0, y1) = sorted((b["x"], b["x"] + b["width"])), sorted((b["y"], b["y"] + b["height"]))
        box = self._image_xy(x0, y0, x1, y1)
        if self.session.tool == "box":
            self._clear_bbox()
            if self.review_queue is not None:
                self._review_object("box", {"box": box})
            else:
                self._saved(self.session.add_box(box))
        else:
            if len(change["new"]) > 1:  # one box prompt per object: keep the newest
                self._clear_bbox(keep=[b])
            self._say("segmenting…")
            self.session.set_box(box)
            self._refresh("mask ready: refine with clicks, pick a candidate, accept with Enter")

    def _clear_bbox(self, keep=()) -> None:
        self._syncing = True
        try:
            self.bbox.bboxes = list(keep)
        finally:
            self._syncing = False

    def accept(self) -> None:
        if self.review_queue is not None:
            return self._review("accept")
        aid = self.session.accept()
        self._clear_bbox()
        self._saved(aid)

    def reject(self) -> None:
        """Reject the proposal on screen (review mode; Delete)."""
        if self.review_queue is None:
            raise ValueError("Reject is for reviewing proposals: open the Labeler with review=True")
        self._review("reject")

    def undo(self) -> None:
        what = self.session.undo()
        if not self.session.prompts:
            self._clear_bbox()
        self._refresh(f"undid {what}" if what else "nothing to undo")

    def redo(self) -> None:
        what = self.session.redo()
        self._refresh(f"redid {what}" if what else "nothing to redo")

    def clear(self) -> None:
        self.session.clear()
        self._clear_bbox()
        self.canvas.reset += 1
        self._refresh("prompts cleared")

    def _move(self, fn) -> None:
        fn()
        self._clear_bbox()
        self._show_image()

    def next(self) -> None:
        if self.review_queue is not None:
            self.review_queue.next()
            return self._show_proposal()
        self._move(self.session.next)

    def prev(self) -> None:
        if self.review_queue is not None:
            self.review_queue.prev()
            return self._show_proposal()
        self._move(self.session.prev)

    def skip(self) -> None:
        if self.review_queue is not None:
            return self.next()
        self._move(self.session.skip)

    def done(self) -> None:
        if self.review_queue is not None:
            return self.next()
        self._move(self.session.done)

    def go(self, pos: int) -> None:
        self._move(lambda: self.session.go(pos))

    def _set_tool(self, tool: str) -> None:
        self.session.tool = tool
        boxes = tool in ("sam", "box")
        self.bbox.layout.display = None if boxes else "none"
        self.canvas.layout.display = "none" if boxes else None
        self.canvas.tool = tool
        self._refresh()

    def _set_class(self, label: str) -> None:
        self.session.label = label
        self.bbox.label = label

    def _on_candidate(self, change) -> None:
        if change["new"] is not None and self.session.candidates is not None:
            self.session.choose(change["new"])
            self._refresh()

    def _on_image_labels(self, change) -> None:
        if not self._syncing:
            self.session.set_image_labels(list(change["new"]))
            self._refresh("image labels saved")

    def _save_attributes(self) -> None:
        pairs = [p.split("=", 1) for p in self.attributes.value.split(",") if p.strip()]
        bad = [p[0] for p in pairs if len(p) != 2]
        if bad:
            raise ValueError(f"attributes must be key=value pairs separated by commas; not understood: {bad}")
        attrs = self.session.set_attributes({k.strip(): v.strip() for k, v in pairs})
        self._say(f"attributes saved: {html.escape(str(attrs))}")

    def _delete_selected(self) -> None:
        if self.objects.value is None:
            raise ValueError("select an object in the list first")
        self.session.delete_object(self.objects.value)
        self._refresh(f"deleted object {self.objects.value} (z undoes)")

    def _relabel_selected(self) -> None:
        if self.objects.value is None:
            raise ValueError("select an object in the list first")
        self.session.change_class(self.objects.value, self.session.label)
        self._refresh(f"object {self.objects.value} is now {self.session.label}")

    # ----------------------------------------------------------------- review --
    def _review(self, decision: str) -> None:
        """Record the reviewer's decision on the proposal on screen; Enter with prompts or another class edits."""
        q, s = self.review_queue, self.session
        if q is None or q.current is None:
            self._say("every proposal is reviewed")
            return
        aid, row = q.current, q.row
        if decision == "accept" and s.candidates is not None:  # prompts made a new mask: an edit
            obj = s.pending_object()
            q.decide("edit", kind=obj["kind"], geometry=obj["geometry"], label=s.label, source=obj["source"],
                     provenance=obj["provenance"])
            what = "edited (your mask replaces it)"
        elif decision == "accept" and s.label != row["label"]:
            q.decide("edit", label=s.label)
            what = f"edited (class {s.label})"
        else:
            q.decide(decision)
            what = "accepted" if decision == "accept" else "rejected"
        self._show_proposal(f"proposal {aid} {what} ✓")

    def _review_object(self, kind: str, msg: dict) -> None:
        """An object drawn with a plain tool (box, polygon, point, ellipse) in review mode: an edit."""
        q, s = self.review_queue, self.session
        if q is None or q.current is None:
            raise ValueError("every proposal is reviewed; open the Labeler without review=True to draw more")
        if kind == "box":
            geometry: object = msg["box"]
        elif kind == "point":
            geometry = self._image_xy(msg["x"], msg["y"])
        elif kind == "polygon":
            geometry = [self._image_xy(*p) for p in msg["points"]]
        else:
            x0, y0, x1, y1 = self._image_xy(*msg["box"])
            kind, geometry = "ellipse", {"cx": (x0 + x1) / 2, "cy": (y0 + y1) / 2, "rx": abs(x1 - x0) / 2,
                                         "ry": abs(y1 - y0) / 2, "angle": 0.0}
        aid = q.current
        q.decide("edit", kind=kind, geometry=geometry, label=s.label,
                 provenance={"tool": kind, "time_spent_s": round(q.seconds, 3)})
        self._show_proposal(f"proposal {aid} edited (your {kind} replaces it) ✓")

    def _show_proposal(self, message: str | None = None) -> None:
        """Show the proposal the queue is at: its image, class and mask; its review time starts."""
        q, s = self.review_queue, self.session
        if q is None:
            return
        s.clear()
        self._clear_bbox()
        if q.current is None:
            self._refresh((message + " · " if message else "") + "every proposal is reviewed")
            return
        row = q.row
        image = int(row["task"])
        if image != s.image_id:
            s.go(s.queue.index(image))
            self._show_image()
        if row["label"] in s.classes and self.cls.value != row["label"]:
            self.cls.value = row["label"]
        s.label = row["label"]
        q.shown()
        self._refresh(message or "")

    def _seed_edit(self) -> None:
        """A first click on a proposal refines it: the proposal's own prompts come first (review mode)."""
        q, s = self.review_queue, self.session
        if q is None or q.current is None or s.prompts:
            return
        s.prompts.extend(seed_prompts(q.row["provenance"]))

    # ---------------------------------------------------------------- display --
    def _saved(self, aid: int) -> None:
        self._refresh(f"saved object {aid} ✓")

    def _say(self, text: str, *, error: bool = False) -> None:
        colour = "#b00020" if error else "#1b5e20"
        self.status.value = f"<span style='color:{colour}'>{text}</span>"

    def _show_image(self) -> None:
        s = self.session
        self.jump.value = s.pos + 1
        for view in (self.bbox, self.canvas):  # enlarged pixels stay square in the browser too
            (view.add_class if self.zoom > 1 else view.remove_class)("labkit-pixels")
        self._syncing = True
        try:
            mine = s.project.annotations(image=s.image_id, annotator=s.annotator, kind="label")
            self.image_labels.value = list(mine["label"])
            attrs = s.image_row["attributes"] or {}
            self.attributes.value = ", ".join(f"{k}={v}" for k, v in attrs.items() if not isinstance(v, (dict, list)))
        finally:
            self._syncing = False
        self._refresh(s.message or "")
        s.message = ""

    def _refresh(self, message: str | None = None) -> None:
        s = self.session
        objs = s.objects()
        rows = [{"id": int(i), "kind": r["kind"], "label": r["label"], "geometry": r["geometry"]}
                for i, r in objs.iterrows() if r["kind"] != "label"]
        z = self.zoom
        fmt = "png" if z > 1 else "jpeg"  # JPEG would blur the edges of enlarged pixels
        on_bbox = s.tool in ("sam", "box")  # the bbox widget draws the box prompt itself; the canvas does not
        candidate = s.mask if s.mask is not None or self.review_queue is None else proposal_mask(self.review_queue)
        data = compose(s.image, rows, classes=s.project_classes, candidate=candidate,
                       prompts=[p.as_dict() for p in s.prompts if p.point is not None or not on_bbox],
                       selected=self.objects.value, fmt=fmt, fit=max(s.image.shape[:2]) * z if z > 1 else None)
        if on_bbox:
            self.bbox.image_bytes = data
        else:
            self.canvas.format = fmt
            self.canvas.image = data
        listed = zip(objs.index, objs["label"], objs["kind"], objs["worker"])
        self.objects.options = [(f"#{i} {label} · {kind} · {worker}", int(i)) for i, label, kind, worker in listed]
        # hidden when empty: ipywidgets' ToggleButtons keeps the old buttons on screen when options go empty
        self.candidates.layout.display = "none" if s.candidates is None else None
        if s.candidates is None:
            self.candidates.options = []
        else:
            self.candidates.options = [(f"{i + 1}: {sc:.2f}", i) for i, sc in enumerate(s.candidates[1])]
            self.candidates.value = s.choice
        blind = " · blind mode: others' objects hidden" if s.blind else ""
        self.title.value = (f"<b>Image {s.image_id}</b> ({html.escape(str(s.image_row['path']))}) · "
                            f"<span class='labkit-progress'>{s.progress_text}</span> · annotator "
                            f"<b>{html.escape(s.annotator)}</b>{blind}")
        if self.review_queue is not None:
            self.review_status.value = review_text(self.review_queue)
        if message is not None:
            self._say(message)
