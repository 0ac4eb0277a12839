"""AgreementDashboard headless: numbers, gallery order, adjudication and undo, on the demo project."""
from __future__ import annotations

import pytest

from labkit import Project
from labkit.widgets import AgreementDashboard


@pytest.fixture(scope="module")
def demo(copy_demo, tmp_path_factory):
    """A copy of the session's demo project (these tests adjudicate in it)."""
    p = Project.open(copy_demo(tmp_path_factory.mktemp("d") / "demo"))
    yield p
    p.close()


def test_label_agreement_and_adjudication(demo):
    d = AgreementDashboard(demo, adjudicator="demo-admin")
    assert "Krippendorff" in d.numbers.value and "Fleiss" in d.numbers.value
    assert len(d.gallery.children) == 12
    scores = d.scores["disagreement"].tolist()
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    task = int(d.scores.index[0])
    d.gallery.children[0].children[1].click()
    assert d.image_id == task and d.review.layout.display is None
    options = dict((v, k) for k, v in d.choice.options)
    assert "consensus" in options and len(options) >= 3
    before = demo.annotations(image=task)
    d.choice.value = "sim-ada"
    d.decide_btn.click()
    final = demo.annotations(image=task, annotator="consensus")
    prov = final.iloc[0]["provenance"]
    # the decision is the acting member's (demo.user); the dashboard's adjudicator is recorded as a note
    assert len(final) == 1 and prov["adjudicated_by"] == demo.user
    assert prov.get("on_behalf_of") == ("demo-admin" if demo.user != "demo-admin" else None)
    assert "decided image" in d.status.value
    d.undo_btn.click()
    assert demo.annotations(image=task, annotator="consensus").empty
    after = demo.annotations(image=task)
    assert after[after["worker"] != "consensus"].index.equals(before.index)  # originals untouched


def test_box_kind_and_filters(demo):
    d = AgreementDashboard(demo, kind="box")
    assert "Mean IoU" in d.numbers.value
    d.workers.value = ("sim-ada", "sim-ben")
    assert set(d.data()["worker"]) <= {"sim-ada", "sim-ben"}
    d.undo_btn.click()
    assert "no decision to undo" in d.status.value
