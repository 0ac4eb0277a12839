"""The state of one annotator's labeling session, without any widget.

:class:`LabelSession` holds the queue, the current image, the pending SAM/GrabCut
prompts and their mask candidates, and one undo/redo history of everything the
annotator did (prompts, accepted objects, deletions, class changes). Every accepted
object is written to the project store before the session reports it as saved, so a
kernel restart loses nothing but the pending prompts. :class:`labkit.widgets.Labeler`
is a thin view over this class; scripts and tests can drive it directly.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from labkit.services.project import Project

log = logging.getLogger("labkit.labeler")

TOOLS = ("sam", "box", "click", "polygon", "point", "ellipse")


@dataclass
class Prompt:
    """One prompt: a box ``[x0, y0, x1, y1]`` or a point ``[x, y]`` with label 1 (object) / 0 (background)."""
    box: list[float] | None = None
    point: list[float] | None = None
    label: int | None = None

    def as_dict(self) -> dict:
        return {"box": self.box} if self.box is not None else {"point": self.point, "label": self.label}


@dataclass
class _Action:
    kind: str                      # prompt | accept | delete | relabel
    prompt: Prompt | None = None
    annotation: int | None = None
    prompts: list[Prompt] = field(default_factory=list)   # pending prompts an accept consumed
    old: str | None = None
    new: str | None = None

    @property
    def target(self) -> int:
        """The annotation an accept, delete or relabel acted on."""
        if self.annotation is None:
            raise RuntimeError(f"a {self.kind!r} step without its annotation cannot be undone")
        return self.annotation


class LabelSession:
    """One annotator labeling a queue of images of a project.

    Parameters
    ----------
    project : labkit.Project
    annotator : str
        A registered annotator; everything is saved under this name.
    segmenter : segmenter or str, optional
        An object with ``set_image``/``predict`` (see :mod:`labkit.models`) or a registry
        name. Default: SAM when ``LABKIT_SAM_CHECKPOINT`` is set, else GrabCut.
    queue : sequence of int, optional
        Image ids in order (e.g. hardest first). Default: the annotator's pending
        assignments, or every image when it has none.
    split : str, optional
        Keep only the queue's images of this split (``project.images(split=...)``), e.g.
        the demo's ``"photos"``.
    classes : sequence of str, optional
        The classes offered, in the order of their keys (1..9, 0); the first is chosen at
        the start. Default: all the project's classes.
    blind : bool, optional
        Hide other annotators' objects. Default: on for images assigned to several
        annotators, so agreement stays honest; off for admins, who review everyone's work.
    prefetch : bool
        Encode the next images of the queue in the background (segmenters with image
        embeddings, i.e. SAM), into the project's embedding cache.
    """

    def __init__(self, project: Project, *, annotator: str, segmenter: Any = None, queue=None,
                 split: str | None = None, classes=None, blind: bool | None = None, prefetch: bool = True):
        self.project = project
        self.annotator = annotator
        me = project.whoami()
        if annotator != me["name"] and me["role"] != "admin":
            from labkit.store.errors import AccessDenied

            raise AccessDenied(f"{me['name']!r} may not label as {annotator!r}: annotators label only their "
                               "own work; open the session with annotator=" + repr(me["name"]),
                               actor=str(me["name"]), action="label_session")
        known = project.annotators()
        if annotator not in known.index:
            raise ValueError(f"unknown annotator {annotator!r}; known: {known.index.tolist()[:20]}. "
                             f"Register with project.add_annotator({annotator!r})")
        self.role = str(known.loc[annotator, "role"])
        if self.role == "viewer":
            raise PermissionError(f"{annotator!r} is a viewer; viewers cannot label")
        self._segmenter = segmenter
        self._prefetch_enabled = prefetch
        self.prefetcher = None
        if queue is None:
            queue = project.queue(annotator) or project.images().index.tolist()
        self.queue = [int(i) for i in queue]
        if not self.queue:
            raise ValueError("the queue is empty: the project has no images; add some with project.add_images")
        if split is not None:
            self.queue = _in_split(project, self.queue, split)
        self._blind_default = blind
        per_image = project.progress(by="image")
        self._assigned = per_image["assigned"].to_dict() if len(per_image) else {}
        self.project_classes: list[str] = list(project.classes())
        self.classes = self.project_classes if classes is None else _offered(classes, self.project_classes)
        self.label = self.classes[0]
        self.tool = "sam"
        self.pos = -1
        self.prompts: list[Prompt] = []
        self.candidates: tuple[np.ndarray, np.ndarray] | None = None
        self.choice = 0
        self._undo: list[_Action] = []
        self._redo: list[_Action] = []
        self._t0: float | None = None
        self._since = time.monotonic()  # the image appeared or the last object was saved
        self._encoded_for: int | None = None
        self.message = ""
        self.go(0)

    # ------------------------------------------------------------- segmenter --
    @property
    def segmenter(self):
        if self._segmenter is None or isinstance(self._segmenter, str):
            from labkit.models import (
                default_segmenter,
                load_segmenter,
                project_cache_dir,
            )

            cache = project_cache_dir(self.project)
            self._segmenter = (load_segmenter(self._segmenter, cache_dir=cache) if self._segmenter
                               else default_segmenter(cache_dir=cache))
        return self._segmenter

    def _update_prefetch(self) -> None:
        """Keep the background encoder working on the images after the current one."""
        if not self._prefetch_enabled or not getattr(self.segmenter, "has_embeddings", False):
            return
        upcoming = self.queue[self.pos + 1:]
        if self.prefetcher is None:
            from labkit.models import Prefetcher

            self.prefetcher = Prefetcher(self.segmenter, self.project, upcoming).start()
        else:
            self.prefetcher.set_queue(upcoming)

    def close(self) -> None:
        """Stop the background prefetch (the store needs no closing: everything is saved)."""
        if self.prefetcher is not None:
            self.prefetcher.stop()
            self.prefetcher = None

    def _ensure_encoded(self) -> None:
        if self._encoded_for != self.image_id:
            self.segmenter.set_image(self.image, key=self.image_row["sha256"])
            self._encoded_for = self.image_id

    # ------------------------------------------------------------ navigation --
    @property
    def image_id(self) -> int:
        return self.queue[self.pos]

    @property
    def blind(self) -> bool:
        """Others' objects are hidden on this image (see ``blind`` in the class docstring)."""
        if self._blind_default is not None:
            return bool(self._blind_default)
        if self.role == "admin":
            return False
        return self._assigned.get(self.image_id, 0) > 1

    def go(self, pos: int) -> None:
        """Show queue position ``pos`` (0-based); pending prompts are dropped."""
        if not 0 <= pos < len(self.queue):
            raise IndexError(f"position {pos} is outside the queue (0..{len(self.queue) - 1})")
        image = self.queue[pos]
        self.image = self.project.read_image(image)  # checks the file's hash, and the reader's access
        self.image_row = self.project.images().loc[image]
        self.pos = pos
        self._since = time.monotonic()
        self._clear_prompts()
        self._undo.clear()
        self._redo.clear()
        self._update_prefetch()

    def next(self) -> bool:
        """Move to the next image; False at the end of the queue."""
        if self.pos + 1 >= len(self.queue):
            self.message = "end of the queue"
            return False
        self.go(self.pos + 1)
        return True

    def prev(self) -> bool:
        if self.pos == 0:
            return False
        self.go(self.pos - 1)
        return True

    def _finish(self, status: str) -> None:
        try:
            self.project.submit(self.image_id, annotator=self.annotator, status=status)
        except ValueError:
            pass  # not an assigned image: nothing to mark
        self.next()

    def done(self) -> None:
        """Mark this image done (if assigned to the annotator) and move on."""
        self._finish("done")

    def skip(self) -> None:
        """Mark this image skipped (if assigned) and move on."""
        self._finish("skipped")

    @property
    def progress_text(self) -> str:
        return f"{self.pos + 1} / {len(self.queue)}"

    # --------------------------------------------------------------- prompts --
    def _clear_prompts(self) -> None:
        self.prompts = []
        self.candidates = None
        self.choice = 0
        self._t0 = None

    def clear(self) -> None:
        """Drop the pending prompts and mask (Esc)."""
        self._undo = [a for a in self._undo if a.kind != "prompt"]
        self._clear_prompts()

    def set_box(self, box) -> None:
        """A box prompt (replaces the previous box of the pending object)."""
        box = [float(v) for v in box]
        self._push_prompt(Prompt(box=box))

    def add_click(self, x: float, y: float, *, positive: bool = True) -> None:
        """A point prompt: ``positive`` adds to the object, otherwise marks background."""
        self._push_prompt(Prompt(point=[float(x), float(y)], label=1 if positive else 0))

    def _push_prompt(self, prompt: Prompt) -> None:
        self.prompts.append(prompt)
        try:
            self._predict()
        except Exception:
            self.prompts.pop()  # a prompt the segmenter refused leaves no trace
            raise
        if self._t0 is None:
            self._t0 = time.monotonic()
        self._undo.append(_Action("prompt", prompt=prompt))
        self._redo.clear()

    def _active(self) -> tuple[list[float] | None, np.ndarray | None, np.ndarray | None]:
        """The prompt state: the last box, and every point."""
        boxes = [p.box for p in self.prompts if p.box is not None]
        pts = [p for p in self.prompts if p.point is not None]
        points = np.array([p.point for p in pts], float) if pts else None
        labels = np.array([p.label for p in pts], int) if pts else None
        return (boxes[-1] if boxes else None), points, labels

    def _predict(self) -> None:
        box, points, labels = self._active()
        if box is None and points is None:
            self.candidates = None
            return
        self._ensure_encoded()
        masks, scores = self.segmenter.predict(box=None if box is None else np.array(box), points=points,
                                               point_labels=labels, multimask=True)
        self.candidates = (np.asarray(masks, bool), np.asarray(scores, float))
        self.choice = int(np.argmax(self.candidates[1]))

    def choose(self, index: int) -> None:
        """Pick one of the multimask candidates."""
        if self.candidates is None or not 0 <= index < len(self.candidates[1]):
            raise IndexError("no such mask candidate")
        self.choice = int(index)

    @property
    def mask(self) -> np.ndarray | None:
        """The chosen candidate mask, ``(H, W)`` bool, or None."""
        return None if self.candidates is None else self.candidates[0][self.choice]

    # ---------------------------------------------------------------- saving --
    def _save(self, kind: str, geometry: Any, *, source: str = "human", label: str | None = None,
              provenance: dict | None = None, score: float | None = None) -> int:
        provenance = dict(provenance or {})
        # seconds per object drawn from scratch: a mask's since its first prompt, others' since the last save
        provenance.setdefault("time_spent_s", round(time.monotonic() - self._since, 3))
        aid = self.project.add_annotation(image=self.image_id, kind=kind, label=label or self.label,
                                          annotator=self.annotator, geometry=geometry, source=source,
                                          score=score, provenance=provenance)
        self._since = time.monotonic()
        log.info("saved %s %s on image %s as annotation %s", kind, label or self.label, self.image_id, aid)
        return aid

    def pending_object(self) -> dict[str, Any]:
        """The chosen mask as :meth:`accept` saves it: ``kind``, ``geometry``, ``source``, ``score`` and
        ``provenance`` (the prompts, and the seconds since the first one)."""
        if self.candidates is None:
            raise ValueError("nothing to accept: draw a box or click on the object first")
        from labkit.models import make_provenance

        seg = self.segmenter
        box, points, labels = self._active()
        prov = make_provenance(seg, box=box, points=points, point_labels=labels, multimask=True,
                               multimask_index=self.choice,
                               time_spent_s=round(time.monotonic() - (self._t0 or time.monotonic()), 3))
        source = {"sam": "sam", "grabcut": "grabcut"}.get(seg.name.split("_")[0], "human")
        return {"kind": "mask", "geometry": self.mask, "source": source, "provenance": prov,
                "score": float(self.candidates[1][self.choice])}

    def accept(self) -> int:
        """Save the chosen mask with its prompts and provenance; return the annotation id (Enter)."""
        obj = self.pending_object()
        aid = self._save("mask", obj["geometry"], source=obj["source"], provenance=obj["provenance"],
                         score=obj["score"])
        consumed = list(self.prompts)
        self._undo = [a for a in self._undo if a.kind != "prompt"]
        self._undo.append(_Action("accept", annotation=aid, prompts=consumed))
        self._redo.clear()
        self._clear_prompts()
        return aid

    def _record(self, aid: int) -> int:
        self._undo.append(_Action("accept", annotation=aid))
        self._redo.clear()
        return aid

    def add_box(self, box) -> int:
        """Save a plain box (no mask)."""
        return self._record(self._save("box", [float(v) for v in box]))

    def add_polygon(self, points) -> int:
        return self._record(self._save("polygon", [[float(x), float(y)] for x, y in points]))

    def add_point(self, x: float, y: float) -> int:
        return self._record(self._save("point", [float(x), float(y)]))

    def add_ellipse(self, box) -> int:
        """Save the axis-aligned ellipse inscribed in ``box`` (drag a rectangle)."""
        x0, y0, x1, y1 = (float(v) for v in box)
        return self._record(self._save("ellipse", {"cx": (x0 + x1) / 2, "cy": (y0 + y1) / 2,
                                                   "rx": abs(x1 - x0) / 2, "ry": abs(y1 - y0) / 2, "angle": 0.0}))

    def set_image_labels(self, labels) -> None:
        """Make the annotator's image-level labels on this image exactly ``labels``."""
        mine = self.project.annotations(image=self.image_id, annotator=self.annotator, kind="label")
        have = dict(zip(mine["label"], mine.index))
        for lab in labels:
            if lab not in have:
                self._record(self._save("label", None, label=lab))
        for lab, aid in have.items():
            if lab not in labels:
                self.delete_object(int(aid))

    def set_attributes(self, attributes: dict) -> dict:
        """Merge image attributes (e.g. ``{"posture": "D"}``); recorded in the audit log."""
        return self.project.set_image_attributes(self.image_id, attributes, by=self.annotator)

    def delete_object(self, annotation: int) -> None:
        """Delete one of the annotator's own objects (kept in history; undoable)."""
        self._own(annotation)
        self.project.delete_annotation(annotation, by=self.annotator)
        self._undo.append(_Action("delete", annotation=annotation))
        self._redo.clear()

    def change_class(self, annotation: int, label: str) -> None:
        """Give one of the annotator's own objects another class (undoable)."""
        row = self._own(annotation)
        self.project.update_annotation(annotation, by=self.annotator, label=label)
        self._undo.append(_Action("relabel", annotation=annotation, old=row["label"], new=label))
        self._redo.clear()

    def _own(self, annotation: int):
        df = self.project.annotations(image=self.image_id)
        if annotation not in df.index:
            raise ValueError(f"annotation {annotation} is not on this image")
        row = df.loc[annotation]
        if row["worker"] != self.annotator:
            raise PermissionError(f"annotation {annotation} belongs to {row['worker']!r}; "
                                  f"{self.annotator!r} can change only their own objects")
        return row

    # ------------------------------------------------------------- undo/redo --
    def undo(self) -> str | None:
        """Undo the last prompt, object, deletion or class change (z); return what was undone."""
        if not self._undo:
            return None
        a = self._undo.pop()
        if a.kind == "prompt":
            del self.prompts[max(i for i, p in enumerate(self.prompts) if p is a.prompt)]
            self._predict()
        elif a.kind == "accept":
            self.project.delete_annotation(a.target, by=self.annotator)
            if a.prompts:  # bring back the prompts, to fix and accept again
                self.prompts = list(a.prompts)
                self._predict()
        elif a.kind == "delete":
            self.project.restore_annotation(a.target, by=self.annotator)
        elif a.kind == "relabel":
            self.project.update_annotation(a.target, by=self.annotator, label=a.old)
        self._redo.append(a)
        return a.kind

    def redo(self) -> str | None:
        """Redo what :meth:`undo` undid (y)."""
        if not self._redo:
            return None
        a = self._redo.pop()
        if a.kind == "prompt":
            if a.prompt is not None:
                self.prompts.append(a.prompt)
            self._predict()
        elif a.kind == "accept":
            self.project.restore_annotation(a.target, by=self.annotator)
            self._clear_prompts()
        elif a.kind == "delete":
            self.project.delete_annotation(a.target, by=self.annotator)
        elif a.kind == "relabel":
            self.project.update_annotation(a.target, by=self.annotator, label=a.new)
        self._undo.append(a)
        return a.kind

    # --------------------------------------------------------------- viewing --
    def objects(self):
        """Objects on the current image this annotator may see (own only in blind mode)."""
        df = self.project.annotations(image=self.image_id)
        return df[df["worker"] == self.annotator] if self.blind else df


def _in_split(project: Project, queue: list[int], split: str) -> list[int]:
    """The images of ``queue`` in ``split``, in queue order; an error names the splits there are."""
    wanted = set(project.images(split=split).index)
    kept = [i for i in queue if i in wanted]
    if not kept:
        splits = sorted({str(v) for v in project.images()["split"].dropna()})
        raise ValueError(f"no image of the queue is in split {split!r}; splits in the project: {splits}. "
                         "Pass one of them, or split=None for every image of the queue")
    return kept


def _offered(classes, known: list[str]) -> list[str]:
    """``classes`` checked against the project's: a non-empty list of distinct known names."""
    offered = [classes] if isinstance(classes, str) else list(classes)
    unknown = [c for c in offered if c not in known]
    if not offered or unknown or len(set(offered)) != len(offered):
        raise ValueError(f"classes must be distinct names of the project's classes, got {offered}"
                         f"{f' ({unknown} unknown)' if unknown else ''}; the project has {known}")
    return offered
