"""The Labeler widget's wiring, headless (traits and callbacks); the browser test drives the real UI."""
from __future__ import annotations

import numpy as np
from PIL import Image

from labkit.widgets import Labeler
from tests.widgets.conftest import box_of


def _draw(lab, box, label="cat"):
    x0, y0, x1, y1 = box
    lab.bbox.bboxes = [{"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "label": label}]


def test_box_accept_undo_keys(label_project):
    lab = Labeler(label_project, annotator="ana", segmenter="grabcut")
    assert "1 / 3" in lab.title.value
    truth = label_project.truths[lab.session.image_id]
    before = lab.bbox.image_bytes
    _draw(lab, box_of(truth))
    assert lab.candidates.options and lab.session.mask is not None
    assert lab.bbox.image_bytes != before and lab.bbox.image_bytes[:2] == b"\xff\xd8"  # overlay drawn
    lab.key("2")
    assert lab.cls.value == "dog" and lab.bbox.label == "dog"
    lab.key("Enter")
    df = label_project.annotations(kind="mask")
    assert len(df) == 1 and df.iloc[0]["label"] == "dog"
    assert "saved object" in lab.status.value and lab.bbox.bboxes == []
    assert any("dog · mask · ana" in o[0] for o in lab.objects.options)
    lab.key("z")
    assert label_project.annotations(kind="mask").empty
    lab.key("Escape")
    assert lab.session.prompts == []


def _send(lab, msg):
    """A message from the browser canvas, through the same error handling as the UI."""
    lab._safe(lab._on_canvas_msg)(lab.canvas, msg, [])


def test_canvas_tools_and_navigation(label_project):
    lab = Labeler(label_project, annotator="ana", segmenter="grabcut")
    lab.key("o")
    assert lab.tool.value == "polygon" and lab.canvas.tool == "polygon"
    assert lab.canvas.layout.display is None and lab.bbox.layout.display == "none"
    _send(lab, {"type": "polygon", "points": [[5, 5], [50, 5], [50, 40]]})
    _send(lab, {"type": "point", "x": 10, "y": 12})
    _send(lab, {"type": "ellipse", "box": [20, 20, 60, 50]})
    assert label_project.annotations()["kind"].tolist() == ["polygon", "point", "ellipse"]
    lab.key("c")
    truth = label_project.truths[1]
    cy, cx = np.argwhere(truth).mean(axis=0)
    _send(lab, {"type": "click", "x": float(cx), "y": float(cy), "positive": True})
    assert "GrabCut needs a box" in lab.status.value and lab.session.prompts == []  # refused, no trace
    lab.session.set_box(box_of(truth))
    _send(lab, {"type": "click", "x": float(cx), "y": float(cy), "positive": True})
    assert lab.session.prompts[-1].label == 1 and lab.canvas.image[:2] == b"\xff\xd8"
    lab.image_labels.value = ["cat"]
    assert label_project.annotations(kind="label")["label"].tolist() == ["cat"]
    lab.attributes.value = "posture=D, glasses=yes"
    lab.attr_btn.click()
    assert label_project.images().loc[1, "attributes"] == {"posture": "D", "glasses": "yes"}
    lab.key("n")
    assert lab.session.image_id == 2 and "2 / 3" in lab.title.value and list(lab.image_labels.value) == []
    lab.jump.value = 3
    lab.jump_btn.click()
    assert lab.session.image_id == 3


def test_errors_are_shown_and_nothing_moves(label_project):
    lab = Labeler(label_project, annotator="ana", segmenter="grabcut")
    path = label_project.image_path(2)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(path)  # image 2 changed behind labkit's back
    lab.next_btn.click()
    assert "changed since import" in lab.status.value and lab.session.image_id == 1
    lab.accept_btn.click()
    assert "nothing to accept" in lab.status.value
