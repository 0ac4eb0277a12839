"""Running report notebooks through papermill: parameters, HTML, provenance, failures."""
from __future__ import annotations

import json
import re

import nbformat
import pytest
from bs4 import BeautifulSoup

from labkit.reports import ReportError, ReportParameterError, list_reports, report_parameters, run_report
from labkit.reports.render import external_resources
from labkit.reports.runner import coerce_parameters

SECTIONS = ["verdict", "accuracy", "completeness", "diversity", "consistency", "annotation_quality",
            "cleanliness", "model_validation", "known-issues"]


def test_audit_html_has_the_verdict_first_and_every_section(report):
    soup = BeautifulSoup(report.html.read_text(encoding="utf-8"), "html.parser")
    ids = [h["id"] for h in soup.find_all("h2") if h.get("id")]
    assert ids == SECTIONS
    banner = soup.select_one(".banner .word")
    assert banner is not None and banner.get_text() == "FAIL"
    assert soup.find("h1").get_text() == "Fixture audit"
    text = soup.get_text(" ")
    assert "Traceback" not in text and "Error" not in re.findall(r"\w*Error", text)
    assert not soup.select(".jp-InputArea, .jp-InputPrompt, .jp-OutputPrompt")  # no code cells, no prompts
    assert not soup.select('[data-mime-type="application/vnd.jupyter.stderr"]')
    clauses = {tr.find("b").get_text(): tr.select_one(".pill").get_text()
               for tr in soup.select("#verdict ~ table tbody tr, table.lk-table tbody tr") if tr.select_one(".pill")}
    assert clauses["completeness_rate"] == "FAIL" and clauses["label_issue_rate"] == "PASS"
    assert clauses["key_error_rate"] in ("PASS", "FAIL") and clauses["duplicate_conflicts"] == "FAIL"


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
