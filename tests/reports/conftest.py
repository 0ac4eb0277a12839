"""Fixtures for report tests: the small audit project, and one executed audit report."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import fixture_project  # noqa: E402


@pytest.fixture(scope="session")
def audit_dir(tmp_path_factory):
    """The fixture project (``proj``), its contract and a predictions file."""
    root = tmp_path_factory.mktemp("audit")
    fixture_project.build(root).close()
    (root / "contract.toml").write_text(fixture_project.CONTRACT)
    fixture_project.predictions(root / "preds.npz")
    return root


@pytest.fixture(scope="session")
def filled_sheet(audit_dir):
    """The inspection sheet for the fixture's sample, filled: delivered labels checked against the truth."""
    from labkit import Project
    from labkit.quality.acceptance import load_contract
    from labkit.reports.audit import delivered_labels
    from labkit.reports.audit.inspection import fill_sheet, plan_inspection, write_sheet

    p = Project.open(audit_dir / "proj")
    plan = plan_inspection(p.images().index, load_contract(audit_dir / "contract.toml"))
    delivered = delivered_labels(p.annotations(), p.classes())
    truth = fixture_project.truth()
    path = write_sheet(p, plan, audit_dir / "sheet.csv")
    verdicts = {}
    for i in plan.sample:
        i = int(i)
        if i in truth and delivered.get(i) != truth[i]:
            verdicts[i] = ("defect", "key", f"shows a {truth[i]}")
        elif i in (2, 3, 4, 6, 7, 8):
            verdicts[i] = ("defect", "minor", "geometry")
        else:
            verdicts[i] = ("ok", "", "")
    p.close()
    return fill_sheet(path, verdicts, inspector="tester")


@pytest.fixture(scope="session")
def report(audit_dir, filled_sheet):
    """quality_audit executed on the fixture with every input: contract, inspection, predictions."""
    from labkit.reports import run_report

    return run_report("quality_audit", project=audit_dir / "proj", out_dir=audit_dir / "out",
                      params={"contract": str(audit_dir / "contract.toml"), "inspection": str(filled_sheet),
                              "predictions": str(audit_dir / "preds.npz"), "title": "Fixture audit"})
