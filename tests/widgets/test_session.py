"""LabelSession: prompts, masks, saving with provenance, undo/redo, navigation, blind mode."""
from __future__ import annotations

import numpy as np
import pytest

from labkit import Project
from labkit.geometry import decode_rle
from labkit.models import load_segmenter, replay
from labkit.widgets import LabelSession
from tests.widgets.conftest import box_of, iou


@pytest.fixture
def grabcut():
    return load_segmenter("grabcut")


def test_box_to_mask_accept_undo_redo(label_project, grabcut):
    s = LabelSession(label_project, annotator="ana", segmenter=grabcut)
    truth = label_project.truths[s.image_id]
    s.label = "dog"
    s.set_box(box_of(truth))
    assert s.mask is not None and iou(s.mask, truth) >= 0.9
    aid = s.accept()
    row = label_project.annotations().loc[aid]
    assert (row["kind"], row["label"], row["worker"], row["source"]) == ("mask", "dog", "ana", "grabcut")
    assert iou(decode_rle(row["geometry"]), truth) >= 0.9
    prov = row["provenance"]
    assert prov["segmenter"] == "grabcut" and prov["prompts"] == [{"box": [float(v) for v in box_of(truth)]}]
    assert prov["time_spent_s"] >= 0
    assert s.prompts == [] and s.candidates is None
    assert s.undo() == "accept"  # the object goes (kept in history), its prompts come back
    assert aid not in label_project.annotations().index and s.candidates is not None
    assert s.redo() == "accept"
    assert aid in label_project.annotations().index and s.candidates is None
    # a kernel restart loses nothing accepted: it is in the store
    assert aid in Project.open(label_project.location).annotations().index


def test_clicks_refine_and_undo_prompt_by_prompt(label_project, grabcut):
    s = LabelSession(label_project, annotator="ana", segmenter=grabcut)
    truth = label_project.truths[s.image_id]
    s.set_box(box_of(truth, pad=12))
    ys, xs = np.nonzero(~truth)
    s.add_click(float(xs[0]), float(ys[0]), positive=False)
    cy, cx = np.argwhere(truth).mean(axis=0)
    s.add_click(float(cx), float(cy))
    assert [p.label for p in s.prompts if p.point is not None] == [0, 1]
    assert s.undo() == "prompt" and len(s.prompts) == 2
    assert s.redo() == "prompt" and len(s.prompts) == 3
    aid = s.accept()
    prov = label_project.annotations().loc[aid, "provenance"]
    assert [list(p) for p in prov["prompts"]] == [["box"], ["point", "label"], ["point", "label"]]


def test_sam_mask_replays_from_provenance(label_project, tmp_path):
    from labkit.models import SamSegmenter
    from tests.models.conftest import make_tiny_sam

    seg = SamSegmenter(make_tiny_sam(0), name="sam_vit_b", model_id="tiny-test", cache_dir=tmp_path / "c",
                       decoder="torch")
    s = LabelSession(label_project, annotator="ana", segmenter=seg)
    truth = label_project.truths[s.image_id]
    s.set_box(box_of(truth))
    s.add_click(80.0, 60.0)
    last = len(s.candidates[1]) - 1
    assert last == 2  # SAM's three multimask candidates
    s.choose(last)
    aid = s.accept()
    row = label_project.annotations().loc[aid]
    assert row["source"] == "sam" and row["provenance"]["model_id"] == "tiny-test"
    assert row["provenance"]["multimask_index"] == last
    np.testing.assert_array_equal(replay(row, project=label_project, segmenter=seg), decode_rle(row["geometry"]))


def test_other_tools_and_object_edits(label_project, grabcut):
    s = LabelSession(label_project, annotator="ana", segmenter=grabcut)
    ids = [s.add_box([10, 10, 50, 40]), s.add_polygon([[5, 5], [40, 5], [40, 30]]), s.add_point(12.5, 20),
           s.add_ellipse([20, 20, 60, 50])]
    df = label_project.annotations()
    assert df.loc[ids, "kind"].tolist() == ["box", "polygon", "point", "ellipse"]
    assert df.loc[ids[3], "geometry"] == {"cx": 40.0, "cy": 35.0, "rx": 20.0, "ry": 15.0, "angle": 0.0}
    s.change_class(ids[0], "dog")
    assert label_project.annotations().loc[ids[0], "label"] == "dog"
    s.delete_object(ids[1])
    assert ids[1] not in label_project.annotations().index
    assert s.undo() == "delete" and ids[1] in label_project.annotations().index
    assert s.undo() == "relabel" and label_project.annotations().loc[ids[0], "label"] == "cat"
    s.set_image_labels(["cat", "dog"])
    s.set_image_labels(["dog"])
    labels = label_project.annotations(kind="label", image=s.image_id)
    assert labels["label"].tolist() == ["dog"]
    assert s.set_attributes({"posture": "D"}) == {"posture": "D"}
    with pytest.raises(ValueError, match="nothing to accept"):
        s.accept()


def test_only_own_objects_can_be_changed(label_project, grabcut):
    other = label_project.add_annotation(image=1, kind="box", label="cat", annotator="ben", geometry=[1, 1, 9, 9])
    s = LabelSession(label_project, annotator="ana", segmenter=grabcut, queue=[1], blind=False)
    with pytest.raises(PermissionError, match="belongs to 'ben'"):
        s.delete_object(other)
    with pytest.raises(PermissionError, match="viewer"):
        LabelSession(label_project, annotator="eve", segmenter=grabcut)
    with pytest.raises(ValueError, match="unknown annotator"):
        LabelSession(label_project, annotator="zed", segmenter=grabcut)


def test_blind_mode_follows_overlap(label_project, grabcut):
    label_project.assign([1], ["ana", "ben"], overlap=2)
    label_project.assign([2], ["ana"], overlap=1)
    theirs = label_project.add_annotation(image=1, kind="box", label="cat", annotator="ben", geometry=[1, 1, 9, 9])
    s = LabelSession(label_project, annotator="ana", segmenter=grabcut)
    assert s.queue == [1, 2] and s.blind  # image 1 has two annotators
    assert theirs not in s.objects().index
    s.next()
    assert not s.blind
    s2 = LabelSession(label_project, annotator="ana", segmenter=grabcut, blind=False)
    assert theirs in s2.objects().index
    label_project.add_annotator("boss", role="admin")  # an admin reviews: sees everyone's objects by default
    admin = LabelSession(label_project, annotator="boss", segmenter=grabcut)
    assert admin.pos == 0 and not admin.blind and theirs in admin.objects().index
    assert LabelSession(label_project, annotator="boss", segmenter=grabcut, blind=True).blind


def test_split_keeps_the_queue_order_and_classes_are_checked(label_project, grabcut, tmp_path):
    from PIL import Image

    from tests.widgets.conftest import scene

    files = []
    for seed in (7, 8):
        files.append(tmp_path / f"extra_{seed}.png")
        Image.fromarray(scene(seed)[0]).save(files[-1])
    label_project.add_images(files, split="photos")  # images 4, 5
    s = LabelSession(label_project, annotator="ana", segmenter=grabcut, queue=[5, 1, 4], split="photos")
    assert s.queue == [5, 4] and s.image_id == 5
    s = LabelSession(label_project, annotator="ana", segmenter=grabcut, classes=["dog"])
    assert s.classes == ["dog"] and s.label == "dog" and s.project_classes == ["cat", "dog"]
    with pytest.raises(ValueError, match=r"no image of the queue is in split 'photos'.*\['photos'\]"):
        LabelSession(label_project, annotator="ana", segmenter=grabcut, queue=[1, 2], split="photos")
    with pytest.raises(ValueError, match=r"distinct names of the project's classes, got \['dog', 'dog'\]"):
        LabelSession(label_project, annotator="ana", segmenter=grabcut, classes=["dog", "dog"])


def test_navigation_and_progress(label_project, grabcut):
    label_project.assign(None, ["ana"], overlap=1)
    s = LabelSession(label_project, annotator="ana", segmenter=grabcut)
    assert s.progress_text == "1 / 3"
    s.done()
    assert s.progress_text == "2 / 3"
    s.skip()
    assert s.pos == 2 and not s.next()
    s.prev()
    s.go(0)
    assert s.image_id == 1
    prog = label_project.progress().loc["ana"]
    assert (prog["done"], prog["skipped"], prog["pending"]) == (1, 1, 1)
    with pytest.raises(IndexError):
        s.go(7)


def test_next_image_comes_from_the_prefetched_cache(label_project, tmp_path):
    from labkit.models import SamSegmenter
    from tests.models.conftest import make_tiny_sam

    seg = SamSegmenter(make_tiny_sam(0), name="sam_vit_b", model_id="tiny-prefetch", cache_dir=tmp_path / "c",
                       decoder="torch")
    runs = []
    seg.sam.image_encoder.register_forward_hook(lambda *a: runs.append(1))
    s = LabelSession(label_project, annotator="ana", segmenter=seg)
    try:
        assert s.prefetcher is not None and s.prefetcher.wait(timeout=60)
        assert sorted(s.prefetcher.done) == [2, 3] and len(runs) == 2
        s.next()
        s.set_box(box_of(label_project.truths[2]))
        assert s.mask is not None and len(runs) == 2  # image 2's embedding came from the cache
    finally:
        s.close()
    assert s.prefetcher is None


def test_annotator_labels_in_its_own_project_session(label_project, grabcut):
    """Opened as ana (role annotator): her queue, her objects; the store refuses the rest."""
    from labkit import AccessDenied

    label_project.assign([1, 2], ["ana", "ben"], overlap=2)
    theirs = label_project.add_annotation(image=1, kind="box", label="cat", annotator="ben", geometry=[1, 1, 9, 9])
    ana = Project.open(label_project.location, user="ana")
    s = LabelSession(ana, annotator="ana", segmenter=grabcut, blind=False)  # asks to see all ...
    assert s.queue == [1, 2]
    assert theirs not in s.objects().index  # ... but the store shows an annotator only its own
    truth = label_project.truths[1]
    s.set_box(box_of(truth))
    aid = s.accept()
    assert label_project.annotations().loc[aid, "worker"] == "ana"
    with pytest.raises(AccessDenied, match="not assigned"):
        LabelSession(ana, annotator="ana", segmenter=grabcut, queue=[3])
    with pytest.raises(AccessDenied, match="own"):
        LabelSession(ana, annotator="ben", segmenter=grabcut)
    ana.close()
