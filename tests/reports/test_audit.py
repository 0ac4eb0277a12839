"""The audit computed in-process on the fixture project (no kernel): findings, clauses, sections."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from labkit.reports import run_audit

PLANTED = {  # rule -> (image, annotation or None)
    "missing_file": (11, None), "unreadable_file": (12, None), "hash_changed": (13, None),
    "missing_annotation": (10, None), "missing_attribute": (5, None), "duplicate_label_conflict": (1, None),
    "box_zero_area": (2, 70), "box_out_of_bounds": (3, 71), "polygon_self_intersecting": (4, 72),
    "mask_empty": (6, 73), "ellipse_nonpositive_radius": (7, 74), "instance_overlap": (8, 75),
}


@pytest.fixture(scope="module")
def audit(audit_dir, tmp_path_factory):
    return run_audit(audit_dir / "proj", contract=audit_dir / "contract.toml", predictions="none",
                     out_dir=tmp_path_factory.mktemp("inproc"))


def test_every_planted_defect_is_found_and_nothing_else(audit):
    f = audit.findings
    found = {(r.rule, int(r.image), None if pd.isna(r.annotation) else int(r.annotation)) for r in f.itertuples()}
    assert found == {(rule, img, ann) for rule, (img, ann) in PLANTED.items()}
    assert f.set_index("rule").loc["duplicate_label_conflict", "related"] == 24


def test_clauses_without_evidence_are_not_evaluated(audit):
    t = audit.verdict_.table
    assert t.loc["label_issue_rate", "status"] == "NOT EVALUATED"
    assert "predictions='none'" in t.loc["label_issue_rate", "evidence"]
    assert t.loc["key_error_rate", "status"] == "NOT EVALUATED"  # no inspection sheet given
    assert (audit.out_dir / "inspection_sheet.csv").is_file()
    assert "Not evaluated" in str(audit.cleanliness()) and "Not evaluated" in str(audit.accuracy())
    assert audit.verdict_.overall == "FAIL"


def test_measured_clauses(audit):
    t = audit.verdict_.table
    assert t.loc["completeness_rate", "measured"] == pytest.approx(19 / 24)
    assert t.loc["completeness_rate", "ids"] == [5, 10, 11, 12, 13]
    assert t.loc["scenario_coverage", "status"] == "FAIL" and "view=oblique" in t.loc["scenario_coverage", "evidence"]
    assert t.loc["agreement", "status"] == "PASS" and t.loc["agreement", "judged_on"] == "low"
    assert t.loc["duplicate_conflicts", "measured"] == 1 and t.loc["duplicate_conflicts", "status"] == "FAIL"
    assert t.loc["images_per_class", "measured"] == 7


def test_only_pass_when_everything_is_evaluated(audit_dir, tmp_path):
    contract = {"thresholds": {"completeness_rate": 0.5, "label_issue_rate": 0.5}}
    a = run_audit(audit_dir / "proj", contract=contract, predictions="none", out_dir=tmp_path)
    assert a.verdict_.overall == "INCOMPLETE"
    a = run_audit(audit_dir / "proj", contract=contract, predictions=str(audit_dir / "preds.npz"), out_dir=tmp_path)
    assert a.verdict_.overall == "PASS" and list(a.issues.index) == [14, 24]


def test_an_untrusted_pool_is_not_evidence(audit_dir, tmp_path):
    probs = np.full((2, 24, 3), 1 / 3, np.float32)
    probs[:, :, 0] += 0.01
    np.savez(tmp_path / "bad.npz", probs=probs / probs.sum(-1, keepdims=True), images=np.arange(1, 25),
             classes=np.array(["circle", "square", "triangle"]))
    contract = {"thresholds": {"label_issue_rate": 0.5}, "validation": {"pool_accuracy": 0.9}}
    a = run_audit(audit_dir / "proj", contract=contract, predictions=str(tmp_path / "bad.npz"), out_dir=tmp_path)
    assert a.verdict_.table.loc["label_issue_rate", "status"] == "NOT EVALUATED"
    assert "below its agreed baseline 90%" in a.verdict_.table.loc["label_issue_rate", "evidence"]


def test_sheet_from_another_draw_is_rejected(audit_dir, filled_sheet, tmp_path):
    with pytest.raises(ValueError, match="the sample drawn for this lot"):
        run_audit(audit_dir / "proj", contract=audit_dir / "contract.toml", inspection=str(filled_sheet),
                  seed=99, predictions="none", out_dir=tmp_path)


def test_sections_render_as_html(audit):
    for name in ("header", "verdict", "accuracy", "completeness", "diversity", "consistency",
                 "annotation_quality", "cleanliness", "model_validation", "known_issues"):
        html = getattr(audit, name)()._repr_html_()
        assert html.startswith('<div class="lk">') and "<script" not in html
    mv = str(audit.model_validation())
    assert "mIoU vs consensus masks" in mv and "below baseline" in mv  # GrabCut mask vs consensus: IoU 0.68


def test_predictions_file_is_checked(audit_dir, tmp_path):
    np.savez(tmp_path / "p.npz", probs=np.ones((1, 3, 2)), images=np.arange(3))
    with pytest.raises(ValueError, match=r"lacks arrays \['classes'\]"):
        run_audit(audit_dir / "proj", predictions=str(tmp_path / "p.npz"), out_dir=tmp_path)


def _coverage_cells(html: str, attribute: str) -> dict[tuple[str, str], tuple[str, set[str]]]:
    """The class x ``attribute`` table of the diversity section: (class, value) -> (count, cell classes)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    head = next(h for h in soup.find_all("h3") if re.search(rf"× {attribute}\b", h.get_text()))
    tab = head.find_next("table")
    cols = [th.get_text() for th in tab.select("thead th")][1:]
    cells = {}
    for tr in tab.select("tbody tr"):
        cls = tr.find("th").get_text()
        for col, td in zip(cols, tr.find_all("td")):
            cells[(cls, col)] = (td.get_text(), set(td.get("class", [])))
    return cells


def test_coverage_cells_are_neutral_when_no_clause_requires_them(audit):
    """The fixture contract requires scenarios (attribute values), not class x value combinations."""
    html = str(audit.diversity())
    for attribute in ("light", "view"):
        cells = _coverage_cells(html, attribute)
        assert cells and all(klass <= {"num"} for _, klass in cells.values()), attribute
    assert _coverage_cells(html, "view")[("circle", "side")][0] == "0"  # few images, still not a failure


def test_a_required_class_by_value_cell_that_fails_is_red(audit_dir, tmp_path):
    """[coverage] per_class = ["view"]: every main class needs min_images (3) images of each required view."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    contract = tomllib.loads((audit_dir / "contract.toml").read_text())
    contract["coverage"]["per_class"] = ["view"]
    a = run_audit(audit_dir / "proj", contract=contract, predictions="none", out_dir=tmp_path)
    html = str(a.diversity())
    view = _coverage_cells(html, "view")
    assert view[("circle", "side")] == ("0", {"num", "fail"})  # required, 0 < 3: fails
    assert view[("circle", "oblique")] == ("0", {"num", "fail"})  # required, no image has it: shown, fails
    assert int(view[("circle", "top")][0]) >= 3 and "fail" not in view[("circle", "top")][1]
    light = _coverage_cells(html, "light")  # not required per class: neutral, however few images
    assert all(klass <= {"num"} for _, klass in light.values())
    t = a.verdict_.table
    assert t.loc["scenario_coverage", "status"] == "FAIL"
    assert "circle × view=side" in t.loc["scenario_coverage", "evidence"]
    assert "circle × view=top" not in t.loc["scenario_coverage", "ids"]
