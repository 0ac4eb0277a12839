"""The Labeler widget's wiring, headless (traits and callbacks); the browser test drives the real UI."""
from __future__ import annotations

import io
from pathlib import Path

import ipywidgets as w
import numpy as np
import pytest
from PIL import Image

import labkit.widgets
from labkit import Project
from labkit.widgets import Labeler
from tests.widgets.conftest import box_of


def _size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def _draw(lab, box, label="cat"):
    """Drag ``box`` (image pixels) on the bbox widget, which reports pixels of the image it shows."""
    x0, y0, x1, y1 = (v * lab.zoom for v in box)
    lab.bbox.bboxes = [{"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "label": label}]


def test_box_accept_undo_keys(label_project):
    lab = Labeler(label_project, annotator="ana", segmenter="grabcut")
    assert "1 / 3" in lab.title.value
    truth = label_project.truths[lab.session.image_id]
    before = lab.bbox.image_bytes
    _draw(lab, box_of(truth))
    assert lab.candidates.options and lab.session.mask is not None
    assert lab.bbox.image_bytes != before and _size(lab.bbox.image_bytes) == (480, 360)  # overlay, zoomed 3x
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
    """A canvas message (given in image pixels, sent in the screen's), through the UI's error handling."""
    z = lab.zoom
    if "x" in msg:
        msg = {**msg, "x": msg["x"] * z, "y": msg["y"] * z}
    if "points" in msg:
        msg = {**msg, "points": [[x * z, y * z] for x, y in msg["points"]]}
    if "box" in msg:
        msg = {**msg, "box": [v * z for v in msg["box"]]}
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
    assert lab.session.prompts[-1].label == 1 and _size(lab.canvas.image) == (480, 360)
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


@pytest.fixture
def tiny_project(tmp_path):
    """A 32x32 image (the demo's digits are this size) and a 600x400 one; classes a..l."""
    rng = np.random.default_rng(0)
    files = []
    for name, (h, wd) in {"tiny": (32, 32), "large": (400, 600)}.items():
        f = tmp_path / "imgs" / f"{name}.png"
        f.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, wd, 3), dtype=np.uint8)).save(f)
        files.append(f)
    p = Project.create(tmp_path / "proj", classes=list("abcdefghijkl"))
    p.add_annotator("ana")
    p.add_images(files[:1], split="digits")
    p.add_images(files[1:], split="photos")
    yield p
    p.close()


def test_small_images_are_zoomed_to_fit_with_crisp_pixels(tiny_project):
    lab = Labeler(tiny_project, annotator="ana", segmenter="grabcut")
    image = lab.session.image
    assert lab.zoom == 16 and "labkit-pixels" in lab.bbox._dom_classes
    shown = np.array(Image.open(io.BytesIO(lab.bbox.image_bytes)))
    assert shown.shape == (512, 512, 3)  # PNG: JPEG would smear the pixel edges
    assert np.array_equal(shown, np.kron(image, np.ones((16, 16, 1), np.uint8)))  # each pixel a 16x16 square
    _draw(lab, [2, 3, 20, 30])  # on screen: 32..320 x 48..480
    assert lab.session.prompts[0].box == [2, 3, 20, 30]  # stored in image pixels
    lab.key("c")
    _send(lab, {"type": "click", "x": 10.5, "y": 12.25, "positive": False})
    assert lab.session.prompts[-1].point == [10.5, 12.25] and _size(lab.canvas.image) == (512, 512)
    canvas = np.array(Image.open(io.BytesIO(lab.canvas.image)))  # prompts drawn at the enlarged scale:
    assert tuple(canvas[200, 32]) == (0, 229, 255)  # the box's left edge, x = 2 px * 16
    assert tuple(canvas[196, 168]) == (230, 40, 40)  # the background click, (10.5, 12.25) * 16
    lab.key("t")
    _send(lab, {"type": "point", "x": 4, "y": 5})
    assert tiny_project.annotations(kind="point").iloc[0]["geometry"] == {"points": [[4.0, 5.0]]}
    lab.key("n")  # a 600 px image is shown as it is, the browser fits it to the width
    assert lab.zoom == 1 and "labkit-pixels" not in lab.bbox._dom_classes
    assert _size(lab.canvas.image) == (600, 400) and lab.canvas.format == "jpeg" and lab.canvas.image[:2] == b"\xff\xd8"
    fixed = Labeler(tiny_project, annotator="ana", segmenter="grabcut", zoom=4)
    assert fixed.zoom == 4 and _size(fixed.bbox.image_bytes) == (128, 128)
    with pytest.raises(ValueError, match="zoom must be a whole number >= 1.*got 1.5"):
        Labeler(tiny_project, annotator="ana", zoom=1.5)


def _class_pickers(widget) -> list:
    """Every widget under ``widget`` that offers the classes as choices."""
    found = []
    for child in getattr(widget, "children", ()):
        found += _class_pickers(child)
    if isinstance(widget, w.ToggleButtons) and "a" in {v for _, v in widget.options}:
        found.append(widget)
    return found


def test_one_class_picker_with_readable_keys(tiny_project):
    lab = Labeler(tiny_project, annotator="ana", segmenter="grabcut")
    assert _class_pickers(lab) == [lab.cls]
    labels = [label for label, _ in lab.cls.options]
    assert labels[:2] == ["a [1]", "b [2]"] and labels[9] == "j [0]" and labels[10:] == ["k", "l"]
    lab.key("0")
    assert lab.cls.value == "j" and lab.bbox.label == "j"
    # jupyter-bbox-widget's own class list is hidden by the Labeler's CSS (checked on screen by the browser test)
    assert "labkit-bbox" in lab.bbox._dom_classes
    css = (Path(labkit.widgets.__file__).parent / "static" / "labeler.css").read_text()
    assert ".labkit-labeler .labkit-bbox .classes {\n  display: none;" in css
    assert all("[" in label for label, _ in lab.tool.options)  # tools show their key the same way


def test_split_and_classes_choose_what_is_offered(tiny_project):
    lab = Labeler(tiny_project, annotator="ana", segmenter="grabcut", split="photos", classes=["k", "b"])
    assert lab.session.queue == [2] and lab.session.label == "k" and lab.cls.value == "k"
    assert lab.cls.options == (("k [1]", "k"), ("b [2]", "b"))
    lab.key("2")
    assert lab.session.label == "b"
    with pytest.raises(ValueError, match=r"split 'nope'; splits in the project: \['digits', 'photos'\]"):
        Labeler(tiny_project, annotator="ana", split="nope")
    with pytest.raises(ValueError, match=r"\['zz'\] unknown.*the project has \['a', 'b'"):
        Labeler(tiny_project, annotator="ana", classes=["a", "zz"])


def test_blind_mode_is_off_for_admins_by_default(label_project):
    p = label_project
    p.add_annotator("boss", role="admin")
    p.assign([1], ["ana", "ben"], overlap=2)  # two annotators on image 1: blind for them
    p.add_annotation(image=1, kind="box", label="cat", annotator="ben", geometry=[5, 5, 60, 50])
    admin = Labeler(p, annotator="boss", segmenter="grabcut")
    assert admin.session.blind is False and "blind mode" not in admin.title.value
    assert [o[0] for o in admin.objects.options] == [f"#{p.annotations().index[0]} cat · box · ben"]
    ana = Labeler(p, annotator="ana", segmenter="grabcut")
    assert ana.session.blind is True and "blind mode" in ana.title.value and ana.objects.options == ()
    assert Labeler(p, annotator="boss", segmenter="grabcut", blind=True).session.blind is True
