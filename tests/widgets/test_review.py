"""The review queue and the Labeler's review mode, headless (the browser test drives the real UI)."""
from __future__ import annotations

import numpy as np
import pytest

from labkit.models import prelabel
from labkit.widgets import Labeler
from labkit.widgets.review import ReviewQueue
from tests.widgets.conftest import box_of


@pytest.fixture
def proposed(label_project):
    """Ben's box around each scene's object, a GrabCut mask proposal from each; images 1-3 are ana's."""
    p = label_project
    p.add_annotations([dict(image=i, kind="box", label="cat", annotator="ben", geometry=box_of(t))
                       for i, t in p.truths.items()])
    p.assign([1, 2, 3], ["ana"])
    made = prelabel(p, source="boxes", segmenter="grabcut", progress=False)
    assert made["image"].tolist() == [1, 2, 3] and set(made["source"]) == {"grabcut"}
    return p, made["id"].tolist()


def _click(lab, x, y, positive=True):
    z = lab.zoom
    lab._safe(lab._on_canvas_msg)(lab.canvas, {"type": "click", "x": x * z, "y": y * z, "positive": positive}, [])


def test_enter_accepts_delete_rejects_a_click_edits(proposed):
    p, (first, second, third) = proposed
    lab = Labeler(p, annotator="ana", segmenter="grabcut", review=True)
    assert "3 of 3 proposals left" in lab.review_status.value and f"#{first}" in lab.review_status.value
    shown = lab.bbox.image_bytes
    assert lab.session.image_id == 1
    lab.key("Enter")  # straight away: accepted
    assert "2 of 3 proposals left · 1 accepted" in lab.review_status.value
    assert lab.session.image_id == 2 and lab.bbox.image_bytes != shown
    lab.key("Delete")
    assert lab.session.image_id == 3 and f"#{third}" in lab.review_status.value
    proposal = p.proposals().loc[third]
    truth = p.truths[3]
    # a click on the object's pixels outside the proposed mask refines it: the proposal's box comes first
    from labkit.geometry import decode_rle

    mask = decode_rle(proposal["geometry"])
    ys, xs = np.nonzero(truth & ~mask) if (truth & ~mask).any() else np.nonzero(truth)
    lab.tool.value = "click"
    _click(lab, float(xs[len(xs) // 2]) + 0.5, float(ys[len(ys) // 2]) + 0.5)
    assert [list(q.as_dict()) for q in lab.session.prompts] == [["box"], ["point", "label"]]
    lab.key("Enter")
    assert "0 of 3 proposals left · 1 accepted · 1 edited · 1 rejected" in lab.review_status.value
    assert "every proposal is reviewed" in lab.review_status.value

    df = p.proposals(None)
    assert df["state"].to_dict() == {first: "accepted", second: "rejected", third: "edited"}
    assert set(df["reviewed_by"]) == {"ana"} and df["reviewed_at"].notna().all()
    assert (df["review_s"] >= 0).all()
    new = int(df.loc[third, "replaced_by"])
    row = _annotation(p, new)
    assert row["worker"] == "ana" and row["source"] == "grabcut" and row["label"] == "cat"
    assert row["provenance"]["replaces"] == third and row["provenance"]["time_spent_s"] >= 0
    assert [list(q) for q in row["provenance"]["prompts"]] == [["box"], ["point", "label"]]


def _annotation(p, aid):
    """One annotation's row, whatever the delivered-label filter of ``annotations()`` does."""
    df = p.annotations(image=None)
    return df.loc[aid]


def test_class_keys_edit_and_the_least_confident_come_first(label_project):
    p = label_project
    p.assign([1, 2, 3], ["ana"])
    ids = p.add_proposals([dict(image=i, kind="label", label="cat", annotator=p.user, source="pool", score=s,
                                provenance={"prelabel": "pool", "model_id": "m", "x_perplexity": x})
                           for i, s, x in ((1, 0.9, 0.0), (2, 0.2, 0.5), (3, 0.5, 0.25))])
    queue = ReviewQueue(p, "ana")
    assert queue.ids == [ids[1], ids[2], ids[0]]
    lab = Labeler(p, annotator="ana", segmenter="grabcut", review=True)
    assert lab.session.image_id == 2 and "x-perplexity 0.50" in lab.review_status.value
    lab.key("2")  # dog
    lab.key("Enter")
    lab.key("n")  # leave image 3's for later
    assert lab.review_queue.current == ids[0]
    lab.key("Enter")
    assert lab.review_queue.current == ids[2]  # back to the one left
    df = p.proposals(None)
    assert df.loc[ids[1], "state"] == "edited" and df.loc[ids[1], "final_label"] == "dog"
    assert df.loc[ids[0], "state"] == "accepted" and df.loc[ids[2], "state"] == "proposed"


def test_nothing_to_review(label_project):
    with pytest.raises(ValueError, match="no proposals for 'ana' to review"):
        Labeler(label_project, annotator="ana", segmenter="grabcut", review=True)


def test_labeling_records_seconds_per_object(label_project):
    lab = Labeler(label_project, annotator="ana", segmenter="grabcut")
    aid = lab.session.add_box([5, 5, 40, 40])
    assert label_project.annotations().loc[aid, "provenance"]["time_spent_s"] >= 0


def test_a_plain_box_replaces_the_proposal(proposed):
    p, (first, _, _) = proposed
    lab = Labeler(p, annotator="ana", segmenter="grabcut", review=True)
    lab.key("x")  # the plain box tool
    z = lab.zoom
    lab.bbox.bboxes = [{"x": 10 * z, "y": 12 * z, "width": 50 * z, "height": 40 * z, "label": "cat"}]
    df = p.proposals(None)
    assert df.loc[first, "state"] == "edited"
    new = _annotation(p, int(df.loc[first, "replaced_by"]))
    assert new["kind"] == "box" and new["geometry"] == {"x0": 10.0, "y0": 12.0, "x1": 60.0, "y1": 52.0}
    assert "1 edited" in lab.review_status.value


def test_delete_is_a_review_key_only(label_project):
    lab = Labeler(label_project, annotator="ana", segmenter="grabcut")
    lab.key("Delete")  # nothing to reject while labeling: nothing happens
    assert lab.review_queue is None and label_project.annotations().empty
