"""Contract parsing, measurements, inspection sheets and the verdict."""
from pathlib import Path

import pandas as pd
import pytest

from labkit.quality import acceptance as A
from labkit.quality.agreement import AgreementInterval
from labkit.quality.sampling import sampling_plan

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.toml"


def test_example_contract_loads_with_every_clause():
    c = A.load_contract(EXAMPLE)
    assert set(c.thresholds) == set(A.CLAUSES)
    assert c.thresholds["key_error_rate"] == 0.01 and c.get("sampling", "level") == "II"
    assert c.parties["provider"].startswith("Party B") and c.source == str(EXAMPLE)
    assert c.get("coverage", "scenarios") == {"lighting": ["day", "night"], "weather": ["clear", "rain", "fog"]}


@pytest.mark.parametrize("spec,match", [
    ({"thresholds": {"key_error_rate": 1.5}}, r"key_error_rate = 1.5; expected a rate in \[0, 1\]"),
    ({"thresholds": {"images_per_class": "many"}}, "images_per_class = 'many'; expected a number"),
    ({"thresholds": {"key_error_rate": 0.03}}, r"is 3%, not an ISO 2859-1 AQL"),
    ({"sampling": {"level": "IV"}}, "level = 'IV'"),
    ({"sampling": {"decision": "vibes"}}, "decision = 'vibes'"),
    ({"samplng": {}}, r"unknown table \[samplng\] \(did you mean 'sampling'\?\)"),
    ({"coverage": {"min_image": 3}}, "unknown key 'min_image' .*'min_images'"),
    ({"coverage": {"per_class": ["split"], "scenarios": {"light": ["day"]}}},
     r"per_class names \['split'\], which \[coverage.scenarios\] does not list \(it lists \['light'\]\)"),
])
def test_bad_contracts(spec, match):
    with pytest.raises(ValueError, match=match):
        A.load_contract(spec)


def test_non_aql_rate_is_fine_with_another_decision_rule():
    c = A.load_contract({"thresholds": {"key_error_rate": 0.03}, "sampling": {"decision": "upper_bound"}})
    assert c.thresholds["key_error_rate"] == 0.03


def test_contract_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        A.load_contract(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[thresholds\nx = 1")
    with pytest.raises(ValueError, match="is not valid TOML"):
        A.load_contract(bad)


def test_measure_helpers():
    f = pd.DataFrame({"rule": ["missing_file", "mask_empty"], "dimension": ["completeness", "annotation_quality"],
                      "severity": ["error", "error"], "image": [3, 4]})
    m = A.measure_completeness([1, 2, 3, 4], f)
    assert m.value == 0.75 and m.ids == (3,) and "missing file: 1" in m.evidence
    m = A.measure_class_counts(pd.Series({"cat": 30, "dog": 4, "eel": 2}), minimum=5)
    assert m.value == 2 and m.ids == ("eel", "dog") and "2 of 3 classes below 5" in m.evidence
    m = A.measure_agreement(AgreementInterval("krippendorff_alpha", 0.8, 0.7, 0.9, 0.95, 100), n_tasks=50,
                            metric="krippendorff_alpha")
    assert (m.value, m.low, m.judged_on) == (0.8, 0.7, "low")
    assert A.measure_agreement(None, n_tasks=0, metric="alpha").value is None
    m = A.measure_rate(3, 50, ids=[4, 8, 9], what="images")
    assert m.value == 0.06 and round(m.high, 4) == 0.1622 and "4, 8, 9" in m.evidence
    assert A.measure_rate(0, 0).value is None


def test_coverage_per_class():
    """[coverage] per_class: each (class, required value) is a scenario; a value no image has counts 0."""
    shares = pd.DataFrame({"attribute": ["split", "split", "light"], "value": ["train", "test", "day"],
                           "images": [40, 6, 46]})
    by_class = pd.DataFrame({"train": [20, 20], "test": [5, 1]}, index=pd.Index(["cat", "dog"], name="class"))
    m = A.measure_coverage(shares, {"split": ["train", "test", "val"], "light": ["day"]}, min_images=2,
                           per_class={"split": by_class})
    assert m.ids == ("cat × split=val", "dog × split=test", "dog × split=val")
    assert m.value == 4 / 7 and m.n == 7 and "4 of 7 scenarios" in m.evidence
    plain = A.measure_coverage(shares, {"split": ["train", "test", "val"]}, min_images=2)
    assert plain.ids == ("split=val",)  # without per_class the same contract asks for values only
    c = A.load_contract({"coverage": {"per_class": ["split"], "scenarios": {"split": ["train"]}}})
    assert c.get("coverage", "per_class") == ["split"]


def _sheet(tmp_path, verdicts):
    sample = [10 + i for i in range(len(verdicts))]
    path = A.inspection_template(sample, tmp_path / "sheet.csv", paths={10: "/data/a.png"})
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for k, (v, t) in enumerate(verdicts):
        df.loc[k, ["verdict", "defect_type", "inspector"]] = [v, t, "ida"]
    df.to_csv(path, index=False)
    return path


def test_inspection_sheet_round_trip(tmp_path):
    path = _sheet(tmp_path, [("ok", ""), ("Defect", "KEY"), ("", "")])
    sheet = A.read_inspection(path)
    assert sheet["image"].tolist() == [10, 11, 12] and sheet.loc[1, "path"] == "/data/a.png"
    assert sheet["verdict"].tolist() == ["ok", "defect", ""] and sheet.loc[2, "defect_type"] == "key"
    with pytest.raises(FileExistsError, match="may hold inspection results"):
        A.inspection_template([1], path)


@pytest.mark.parametrize("verdicts,match", [
    ([("maybe", "")], "verdict 'maybe'; expected 'ok', 'defect'"),
    ([("defect", "")], "a defect needs defect_type 'key'"),
])
def test_inspection_sheet_errors(tmp_path, verdicts, match):
    with pytest.raises(ValueError, match=match):
        A.read_inspection(_sheet(tmp_path, verdicts))


def test_measure_inspection_by_iso_plan(tmp_path):
    plan = sampling_plan(1000, 1.0)  # n=80, Ac 2, Re 3
    rows = [("defect", "key")] * 2 + [("defect", "minor")] * 2 + [("ok", "")] * 76
    sheet = A.read_inspection(_sheet(tmp_path, rows))
    key = A.measure_inspection(sheet, plan, threshold=0.01, errors="key")
    assert key.value == 2 / 80 and key.passed(0.01) and key.ids == (10, 11) and "lot accepted" in key.evidence
    assert key.decision == "2 of 80 sampled defective ≤ Ac 2: lot accepted"  # the rule, with the plan's numbers
    anyd = A.measure_inspection(sheet, plan, threshold=0.01, errors="any")
    assert anyd.value == 4 / 80 and not anyd.passed(0.01) and "Re 3" in anyd.evidence
    assert anyd.decision == "4 of 80 sampled defective ≥ Re 3: lot rejected"
    assert plan.rule() == "ISO 2859-1 plan for AQL 1%: accept the lot with ≤ Ac 2 defective of 80 sampled"
    c = A.load_contract({"thresholds": {"key_error_rate": 0.01, "annotation_error_rate": 0.01}})
    v = A.evaluate(c, {"key_error_rate": key, "annotation_error_rate": anyd})
    assert v.table["decision"].to_dict() == {"key_error_rate": key.decision, "annotation_error_rate": anyd.decision}
    assert v.table["status"].to_dict() == {"key_error_rate": "PASS", "annotation_error_rate": "FAIL"}
    point = A.measure_inspection(sheet, plan, threshold=0.03, errors="key", decision="point")
    assert point.passed(0.03) and point.decision == ""  # judged on the rate: the value says it all
    upper = A.measure_inspection(sheet, plan, threshold=0.03, errors="key", decision="upper_bound")
    assert not upper.passed(0.03)  # the interval's upper bound is above 3%


def test_unfinished_inspection_is_not_evaluated(tmp_path):
    plan = sampling_plan(100, 4.0)  # F (n=20)
    sheet = A.read_inspection(_sheet(tmp_path, [("ok", "")] * 15 + [("", "")] * 5))
    m = A.measure_inspection(sheet, plan, threshold=0.04, errors="key")
    assert m.value is None and "15 of the 20 sampled images are inspected" in m.reason


def test_verdict():
    c = A.load_contract({"thresholds": {"completeness_rate": 0.99, "agreement": 0.6, "images_per_class": 10,
                                        "label_issue_rate": 0.05}})
    ms = {"completeness_rate": A.Measurement(1.0, "all"),
          "agreement": A.Measurement(0.7, "alpha", low=0.55, high=0.8, judged_on="low"),
          "images_per_class": A.Measurement(12.0, "ok")}
    v = A.evaluate(c, ms)
    assert v.overall == "FAIL"
    assert v.table["status"].to_dict() == {"completeness_rate": "PASS", "images_per_class": "PASS",
                                           "agreement": "FAIL", "label_issue_rate": "NOT EVALUATED"}
    assert v.table.loc["label_issue_rate", "evidence"] == "not evaluated: not measured by this audit"
    assert v.table.loc["agreement", "rule"] == ">= 0.6" and "FAIL" in v.summary()
    ms["agreement"] = A.Measurement(0.7, "alpha", low=0.65, high=0.8, judged_on="low")
    assert A.evaluate(c, ms).overall == "INCOMPLETE"  # never PASS with a clause not evaluated
    ms["label_issue_rate"] = A.Measurement(0.05, "5%")  # at the threshold passes
    assert A.evaluate(c, ms).overall == "PASS"
    with pytest.raises(ValueError, match="unknown clauses"):
        A.evaluate(c, {"speed": A.Measurement(1.0)})
