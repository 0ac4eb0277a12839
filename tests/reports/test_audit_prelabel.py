"""The audit's pre-labeling section and its contract clause, on a copy of the fixture project."""
from __future__ import annotations

import shutil

import pytest

from labkit import Project
from labkit.reports import run_audit


def test_the_audit_shows_what_machines_proposed_and_people_verified(audit_dir, tmp_path):
    shutil.copytree(audit_dir, tmp_path / "copy")
    p = Project.open(tmp_path / "copy" / "proj")
    before = len(p.annotations())
    ids = p.add_proposals([dict(image=i, kind="label", label="circle", annotator=p.user, source="pool",
                                score=0.5 + i / 10, provenance={"prelabel": "pool", "model_id": "m"})
                           for i in (1, 2, 3, 4)])
    p.review(ids[0], "accept", by=p.user, seconds=2.0)
    p.review(ids[1], "edit", by=p.user, label="square", seconds=5.0)
    p.review(ids[2], "reject", by=p.user, seconds=1.0)
    p.close()
    contract = {"thresholds": {"unreviewed_proposal_rate": 0.0}}
    a = run_audit(tmp_path / "copy" / "proj", contract=contract, predictions="none", out_dir=tmp_path / "out")
    row = a.verdict_.table.loc["unreviewed_proposal_rate"]
    delivered = before + 2  # the accepted proposal and the edit's replacement
    assert row["measured"] == pytest.approx(1 / (delivered + 1)) and row["ids"] == [ids[3]]
    assert row["status"] == "FAIL" and row["dimension"] == "annotation_quality"
    counts = a.provenance_counts["annotations"]
    assert counts.tolist() == [1, 1, before, 1, 1]
    html = str(a.prelabeling())
    assert "machine-proposed, accepted by a person" in html and "unreviewed_proposal_rate" in html
    assert "Review of the proposals, by source" in html and "Seconds per object" in html
    assert a.prelabel.by_source.loc["pool", ["accepted", "edited", "rejected", "pending"]].tolist() == [1, 1, 1, 1]
    a = run_audit(tmp_path / "copy" / "proj", contract={"thresholds": {"unreviewed_proposal_rate": 0.2}},
                  predictions="none", out_dir=tmp_path / "out2")
    assert a.verdict_.table.loc["unreviewed_proposal_rate", "status"] == "PASS"


def test_without_proposals_the_section_says_so(audit_dir, tmp_path):
    a = run_audit(audit_dir / "proj", contract={"thresholds": {"unreviewed_proposal_rate": 0.0}},
                  predictions="none", out_dir=tmp_path)
    assert a.verdict_.table.loc["unreviewed_proposal_rate", "measured"] == 0
    assert "No machine proposals" in str(a.prelabeling())
