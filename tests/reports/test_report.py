"""Running report notebooks through papermill: parameters, HTML, provenance, failures."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from labkit.reports import ReportError, ReportParameterError, list_reports, report_parameters, run_report
from labkit.reports.render import external_resources
from labkit.reports.runner import coerce_parameters

sys.path.insert(0, str(Path(__file__).parent))
import fixture_project  # noqa: E402

SECTIONS = ["verdict", "accuracy", "completeness", "diversity", "consistency", "annotation_quality",
            "cleanliness", "model_validation", "prelabeling", "known-issues"]


def expected_key_verdict(audit_dir) -> str:
    """key_error_rate as the contract defines it, from the fixture's planted labels (not the report).

    The clause is judged on the ISO 2859-1 plan for the lot (24 images) at AQL 4.0 (threshold 0.04):
    code B, n=3, Ac=0. It inspects the first 3 images of the sample drawn with the contract's seed
    (7), and a key error is an image whose delivered (majority) label is not its true class: 14
    (ben and cy outvote ana) and 10 (no label delivered). The sample starts 16, 5, 19, so 0 key
    errors <= Ac 0: PASS.
    """
    from labkit import Project
    from labkit.quality.acceptance import load_contract
    from labkit.reports.audit import delivered_labels
    from labkit.reports.audit.inspection import plan_inspection

    p = Project.open(audit_dir / "proj")
    try:
        images, delivered = p.images().index, delivered_labels(p.annotations(), p.classes())
    finally:
        p.close()
    truth = fixture_project.truth()
    assert {i for i in truth if delivered.get(i) != truth[i]} == {10, 14}  # the planted key errors
    inspection = plan_inspection(images, load_contract(audit_dir / "contract.toml"))
    plan = inspection.plans["key_error_rate"]
    assert (len(images), plan.sample_size, plan.accept) == (24, 3, 0)  # ISO 2859-1, code B at AQL 4.0
    inspected = [int(i) for i in inspection.sample[:plan.sample_size]]
    key_errors = sum(delivered.get(i) != truth[i] for i in inspected if i in truth)
    return "PASS" if key_errors <= plan.accept else "FAIL"


def test_audit_html_has_the_verdict_first_and_every_section(report, audit_dir):
    soup = BeautifulSoup(report.html.read_text(encoding="utf-8"), "html.parser")
    ids = [h["id"] for h in soup.find_all("h2") if h.get("id")]
    assert ids == SECTIONS
    banner = soup.select_one(".banner .word")
    assert banner is not None and banner.get_text() == "FAIL"
    assert soup.find("h1").get_text() == "Fixture audit"
    text = soup.get_text(" ")
    assert "Traceback" not in text
    # no exception of any kind shown (a cell that caught one and printed "ValueError: ..." included)
    assert re.findall(r"\w*(?:Error|Exception)\b", text) == []
    assert not soup.select(".jp-InputArea, .jp-InputPrompt, .jp-OutputPrompt")  # no code cells, no prompts
    assert not soup.select('[data-mime-type="application/vnd.jupyter.stderr"]')
    clauses = {tr.find("b").get_text(): tr.select_one(".pill").get_text()
               for tr in soup.select("#verdict ~ table tbody tr, table.lk-table tbody tr") if tr.select_one(".pill")}
    assert clauses["completeness_rate"] == "FAIL" and clauses["label_issue_rate"] == "PASS"
    assert clauses["key_error_rate"] == expected_key_verdict(audit_dir) == "PASS"
    assert clauses["duplicate_conflicts"] == "FAIL"


def _verdict_row(soup, clause: str) -> str:
    """The text of the clause's row in the verdict table (the first table with verdict pills)."""
    for tr in soup.select("table.lk-table tbody tr"):
        b = tr.find("b")
        if b is not None and b.get_text() == clause and tr.select_one(".pill"):
            return " ".join(tr.get_text(" ").split())
    raise AssertionError(f"no verdict row for {clause}")


@pytest.mark.parametrize("clause", ["key_error_rate", "annotation_error_rate"])
def test_headline_row_states_the_acceptance_number_rule(report, audit_dir, filled_sheet, clause):
    """PASS next to a sample rate above the threshold must explain itself: the row names the
    ISO 2859-1 rule with the plan's numbers (n, Ac, AQL) and the defects found."""
    from labkit import Project
    from labkit.quality.acceptance import load_contract, read_inspection
    from labkit.reports.audit.inspection import plan_inspection

    p = Project.open(audit_dir / "proj")
    try:
        images = p.images().index
    finally:
        p.close()
    plan = plan_inspection(images, load_contract(audit_dir / "contract.toml")).plans[clause]
    sheet = read_inspection(filled_sheet).iloc[:plan.sample_size]
    defect = sheet["verdict"] == "defect"
    k = int((defect & (sheet["defect_type"] == "key") if clause == "key_error_rate" else defect).sum())
    assert (clause, plan.sample_size, plan.accept) in {("key_error_rate", 3, 0), ("annotation_error_rate", 8, 1)}
    row = _verdict_row(BeautifulSoup(report.html.read_text(encoding="utf-8"), "html.parser"), clause)
    assert f"AQL {plan.aql:g}%" in row and f"≤ Ac {plan.accept} defective of {plan.sample_size} sampled" in row
    if k <= plan.accept:
        assert f"{k} of {plan.sample_size} sampled defective ≤ Ac {plan.accept}: lot accepted" in row
        assert "PASS" in row
    else:
        assert f"{k} of {plan.sample_size} sampled defective ≥ Re {plan.reject}: lot rejected" in row
        assert "FAIL" in row


def test_report_has_no_internal_names(report):
    """A reader sees what a document is, not our name for it, and no code identifiers as headers."""
    soup = BeautifulSoup(report.html.read_text(encoding="utf-8"), "html.parser")
    text = soup.get_text(" ")
    assert re.findall(r"(?i)\bseeds? ?0\d\d|SEEDS\.md|\bseeds/", text) == []
    headers = {th.get_text() for th in soup.select("table.lk-table thead th")}
    assert sorted(h for h in headers if "_" in h) == []


def test_audit_html_reads_offline_with_embedded_evidence(report):
    page = report.html.read_text(encoding="utf-8")
    assert external_resources(page) == []
    assert "<script src" not in page and "<link href=\"http" not in page
    soup = BeautifulSoup(page, "html.parser")
    thumbs = [i for i in soup.find_all("img") if i["src"].startswith("data:image/jpeg;base64,")]
    plots = [i for i in soup.find_all("img") if i["src"].startswith("data:image/png;base64,")]
    assert len(thumbs) >= 8 and plots


def test_report_records_version_parameters_hashes_and_time(report, audit_dir):
    from labkit import __version__

    rec = json.loads(report.record.read_text())
    assert rec["environment"]["labkit"] == __version__ and rec["status"] == "ok"
    assert rec["parameters"]["project"] == str((audit_dir / "proj").resolve())
    assert rec["parameters"]["title"] == "Fixture audit"
    # The database file itself changes as the report runs (image reads go to the audit log),
    # so the data it read is pinned by content digests, which must still match.
    from labkit.reports.provenance import data_fingerprint

    now = data_fingerprint(audit_dir / "proj")
    assert len(rec["data"]["files"]["project.db"]) == 64
    assert rec["data"]["images"] == now["images"] and rec["data"]["annotations"] == now["annotations"]
    assert rec["data"]["images"]["count"] == 24 and len(rec["data"]["images"]["sha256_of_hashes"]) == 64
    assert rec["started_at"] <= rec["finished_at"]
    footer = BeautifulSoup(report.html.read_text(), "html.parser").select_one(".footer").get_text(" ")
    assert f"labkit {__version__}" in footer and "Fixture audit" in footer and rec["started_at"] in footer
    nb = nbformat.read(str(report.notebook), as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    verdict = json.loads((audit_dir / "out" / "verdict.json").read_text())
    statuses = {c["clause"]: c["status"] for c in verdict["clauses"]}
    assert statuses["label_issue_rate"] == "PASS" and statuses["scenario_coverage"] == "FAIL"
    assert "NOT EVALUATED" not in statuses.values()  # every input was given


def test_unknown_parameter_lists_the_notebook_parameters(audit_dir, tmp_path):
    with pytest.raises(ReportParameterError, match=r"unknown parameter\(s\) \['sed'\] .*seed \(int, default -1\)"):
        run_report("quality_audit", project=audit_dir / "proj", out_dir=tmp_path, params={"sed": 3})
    assert not list(tmp_path.iterdir())  # nothing ran


def test_parameters_are_checked_as_data():
    declared = report_parameters("quality_audit")
    assert declared["seed"] == {"type": "int", "default": -1, "help": "sampling seed; -1: the seed of the contract"}
    assert coerce_parameters(declared, {"seed": "3", "title": "x"}, from_strings=True) == {"seed": 3, "title": "x"}
    with pytest.raises(ReportParameterError, match=r"seed='__import__\(\"os\"\)' .*invalid literal"):
        coerce_parameters(declared, {"seed": '__import__("os")'}, from_strings=True)
    with pytest.raises(ReportParameterError, match="max_evidence=True .*expected int, got bool"):
        coerce_parameters(declared, {"max_evidence": True})
    with pytest.raises(ReportParameterError, match="title=3 .*expected str"):
        coerce_parameters(declared, {"title": 3})
    assert "quality_audit" in list_reports()


def test_a_failing_cell_keeps_the_notebook_and_renders_the_error(audit_dir, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('project = ""\nlimit = 2.5', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell('print("before the failure")'),
                nbformat.v4.new_code_cell('raise RuntimeError(f"limit {limit} exceeded")'),
                nbformat.v4.new_code_cell('print("never runs")')]
    folder = tmp_path / "nbs"
    folder.mkdir()
    nbformat.write(nb, str(folder / "breaks.ipynb"))
    out = tmp_path / "out"
    with pytest.raises(ReportError, match=r"failed in cell \d+: RuntimeError: limit 4.0 exceeded.*breaks\.html"):
        run_report("breaks", project=audit_dir / "proj", out_dir=out, params={"limit": "4"}, from_strings=True,
                   folder=folder)
    executed = nbformat.read(str(out / "breaks.ipynb"), as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in executed.cells for o in c.get("outputs", []))
    page = (out / "breaks.html").read_text()
    assert "limit 4.0 exceeded" in page and "before the failure" in page and "never runs" not in page
    assert external_resources(page) == []
    rec = json.loads((out / "breaks.json").read_text())
    assert rec["status"] == "failed" and rec["error"]["name"] == "RuntimeError"
