"""Adjudication decisions and their undo, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from labkit.services.adjudication import adjudicate, undo_adjudication
from tests.store.helpers import snapshot


def test_decide_replace_undo(project):
    a = project.add_annotation(image=1, kind="box", label="cat", annotator="ana", geometry=[1, 1, 10, 10])
    b = project.add_annotation(image=1, kind="box", label="dog", annotator="ben", geometry=[2, 2, 12, 12])
    originals = project.annotations().loc[[a, b]].drop(columns=["updated_at"])
    d1 = adjudicate(project, 1, kind="box", choose="ana", by="boss")
    final = project.annotations(annotator="consensus")
    assert final.index.tolist() == d1.added and final.iloc[0]["label"] == "cat"
    prov = final.iloc[0]["provenance"]
    assert (prov["adjudicated_by"], prov["chosen"], prov["inputs"]) == (project.user, "ana", [a])
    assert prov["on_behalf_of"] == "boss" and d1.by == project.user  # by= is a note: the actor decided
    assert final.iloc[0]["source"] == "consensus"
    d2 = adjudicate(project, 1, kind="box", choose="ben", by="boss")  # a new decision supersedes the first
    assert project.annotations(annotator="consensus")["label"].tolist() == ["dog"] and d2.replaced == d1.added
    undo_adjudication(project, d2)
    assert project.annotations(annotator="consensus").index.tolist() == d1.added
    state = snapshot(project)
    with pytest.raises(ValueError, match="has no box annotations"):
        adjudicate(project, 1, kind="box", choose="cy", by="boss")
    assert snapshot(project) == state
    # the originals were never touched
    assert project.annotations().loc[[a, b]].drop(columns=["updated_at"]).equals(originals)
    log = project.audit_log()
    assert log["action"].tolist()[-3:] == ["adjudicate", "adjudicate", "undo_adjudication"]


def test_a_simulated_annotator_cannot_hold_decisions(project):
    """Adjudication and consensus share one rule: a decision is a person's, never a simulated annotator's."""
    project.add_annotation(image=1, kind="box", label="cat", annotator="ana", geometry=[1, 1, 10, 10])
    project.add_annotator("robot", simulated=True)
    state = snapshot(project)
    with pytest.raises(ValueError, match="'robot' is simulated, so it cannot hold consensus annotations"):
        adjudicate(project, 1, kind="box", choose="ana", by="boss", annotator="robot")
    assert snapshot(project) == state
