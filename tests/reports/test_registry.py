"""The project's report registry, and withdrawing reports that show an erased subject's images."""
from __future__ import annotations

import json
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import fixture_project
import pytest

from labkit.reports import forget_reports, register, registered, run_report
from labkit.reports.render import external_resources

FAR_FUTURE = datetime(2999, 1, 1, tzinfo=timezone.utc)


def _everything(root: Path) -> str:
    """Every byte a withdrawn report leaves readable: its folder and the project's registry."""
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".png" and p.name != "project.db"]
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)


def test_run_report_registers_and_forget_withdraws_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_USER", "fixture")  # the fixture project's creator
    p = fixture_project.build(tmp_path)
    images = p.images()
    p.close()
    proj, out = tmp_path / "proj", tmp_path / "out"
    result = run_report("quality_audit", project=proj, out_dir=out, params={"title": "Audit of lot 7"})

    [entry] = registered(proj)
    assert entry["name"] == "quality_audit" and entry["status"] == "ok"
    assert (entry["html"], entry["notebook"], entry["record"]) == (
        str(result.html.resolve()), str(result.notebook.resolve()), str(result.record.resolve()))
    assert entry["out_dir"] == str(out.resolve()) and entry["project"] == str(proj.resolve())
    assert sorted(Path(f).name for f in entry["outputs"]) == [
        "inspection_sheet.csv", "integrity_findings.csv", "verdict.json"]
    assert entry["parameters"] == sorted(result.parameters.keys() - {"project"})
    assert "Audit of lot 7" not in (proj / "reports" / "index.jsonl").read_text()  # names, not values
    started = datetime.fromisoformat(entry["created_at"])
    assert started <= datetime.fromisoformat(entry["finished_at"]) <= datetime.now(timezone.utc)

    # the subject: a missing file (its path is in the integrity table) and a changed one (hash shown as 86f2…)
    missing_path = str(images.at[11, "path"])
    changed_hash = str(images.at[13, "sha256"])
    html = result.html.read_text(encoding="utf-8")
    assert missing_path in html and changed_hash[:12] in html and changed_hash not in html
    needles = ["subject-0042", missing_path, changed_hash]

    # made before the subject's first image: withdrawn only because it shows their data
    counts = forget_reports(proj, since=FAR_FUTURE, needles=needles)

    assert counts == {"reports_scanned": 1, "reports_withdrawn": 1, "files_deleted": 4, "html_replaced": 1,
                      "records_rewritten": 1}
    assert sorted(p.name for p in out.iterdir()) == ["quality_audit.html", "quality_audit.json"]
    left = _everything(tmp_path / "out") + _everything(proj)
    for i, row in images.iterrows():  # no image's path or hash, not only the subject's
        assert row["path"] not in left and row["sha256"][:12] not in left, i
    assert "Audit of lot 7" not in left and "data:image" not in left
    notice = result.html.read_text(encoding="utf-8")
    assert "Report withdrawn" in notice and external_resources(notice) == []
    assert f"labkit report quality_audit --project {proj.resolve()} --out {out.resolve()}" in notice
    assert "parameters it was run with again (title)" in notice and entry["parameters"] == ["title"]
    record = json.loads(result.record.read_text())
    assert record["redacted"]["reason"] == "data subject erased; re-run the report"
    assert record["parameter_names"] == ["project", "title"] and "parameters" not in record
    assert record["data"] == {"images": {"count": 24}} and record["status"] == "ok"
    [after] = registered(proj)
    assert after["redacted_at"] == record["redacted"]["at"]
    assert {k: v for k, v in after.items() if k != "redacted_at"} == entry
    # idempotent
    assert forget_reports(proj, since=datetime(2000, 1, 1), needles=needles)["reports_withdrawn"] == 0


def _entry(out: Path, name: str, at: datetime, outputs=(), text="nothing personal") -> dict:
    out.mkdir(parents=True, exist_ok=True)
    files = {k: out / f"{name}.{ext}" for k, ext in (("html", "html"), ("notebook", "ipynb"), ("record", "json"))}
    for k, f in files.items():
        f.write_text(json.dumps({"parameters": {"title": text}, "report": name}) if k == "record" else text)
    for f in outputs:
        (out / f).write_text(text)
    return {"name": name, **{k: str(f) for k, f in files.items()}, "out_dir": str(out),
            "outputs": [str(out / f) for f in outputs], "parameters": ["title"],
            "created_at": at.isoformat(), "finished_at": (at + timedelta(seconds=30)).isoformat(), "status": "ok"}


def test_reports_made_since_the_first_image_are_withdrawn(tmp_path):
    t0 = datetime(2025, 3, 1, 12, tzinfo=timezone.utc)
    register(tmp_path, _entry(tmp_path / "a", "old", t0 - timedelta(days=2), ["verdict.json"]))
    register(tmp_path, _entry(tmp_path / "b", "new", t0 + timedelta(days=1), ["verdict.json"]))
    # a naive time is UTC, as SQLite gives back labkit's timestamps
    counts = forget_reports(tmp_path, since=t0.replace(tzinfo=None), needles=["subject-0042"])
    assert counts["reports_scanned"] == 2 and counts["reports_withdrawn"] == 1
    assert (tmp_path / "a" / "old.ipynb").exists() and (tmp_path / "a" / "verdict.json").exists()
    assert not (tmp_path / "b" / "new.ipynb").exists() and not (tmp_path / "b" / "verdict.json").exists()
    assert [bool(e.get("redacted_at")) for e in registered(tmp_path)] == [False, True]


def test_a_file_rewritten_by_a_kept_later_run_is_kept(tmp_path):
    t0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
    register(tmp_path, _entry(tmp_path / "o", "first", t0, ["verdict.json"], text="img_07.png"))
    later = _entry(tmp_path / "o", "second", t0 + timedelta(hours=1), ["verdict.json"], text="clean")
    register(tmp_path, later)
    counts = forget_reports(tmp_path, since=FAR_FUTURE, needles=["img_07.png"])
    assert counts["reports_withdrawn"] == 1 and counts["files_deleted"] == 1  # the notebook only
    assert (tmp_path / "o" / "verdict.json").read_text() == "clean"


def test_needles_are_found_escaped_in_html_and_json(tmp_path):
    name = "Zoë & Ann <2>"
    register(tmp_path, _entry(tmp_path / "h", "h", datetime(2025, 1, 1, tzinfo=timezone.utc),
                              text="Zo\u00eb &amp; Ann &lt;2&gt;"))
    register(tmp_path, _entry(tmp_path / "j", "j", datetime(2025, 1, 1, tzinfo=timezone.utc),
                              text=json.dumps(name)))
    assert forget_reports(tmp_path, since=FAR_FUTURE, needles=[name])["reports_withdrawn"] == 2


def test_registry_survives_a_torn_line_and_rejects_bad_records(tmp_path):
    ok = _entry(tmp_path / "x", "x", datetime(2025, 1, 1, tzinfo=timezone.utc))
    register(tmp_path, ok)
    with open(tmp_path / "reports" / "index.jsonl", "a") as f:
        f.write('{"name": "torn')
    with pytest.warns(RuntimeWarning, match=r"index.jsonl line 2 is not a JSON record"):
        assert [e["name"] for e in registered(tmp_path)] == ["x"]
    with pytest.raises(ValueError, match=r"record lacks \['html', 'notebook', 'record'\]; it has \['created_at'"):
        register(tmp_path, {"name": "x", "created_at": "2025-01-01T00:00:00+00:00", "status": "ok"})
    with pytest.raises(ValueError, match=r"created_at'\] is 'yesterday'; expected an ISO time"):
        register(tmp_path, {**ok, "created_at": "yesterday"})
    with pytest.raises(ValueError, match="not JSON-ready"):
        register(tmp_path, {**ok, "outputs": [tmp_path]})
    with pytest.raises(ValueError, match="since is '2025-01-01'; expected a datetime"):
        forget_reports(tmp_path, since="2025-01-01", needles=["a"])
    with pytest.raises(ValueError, match="needles is 'abc'; expected a list of non-empty strings"):
        forget_reports(tmp_path, since=FAR_FUTURE, needles="abc")


def test_a_report_that_cannot_be_registered_warns(tmp_path):
    from labkit.reports.runner import _register

    entry = {"name": "quality_audit", "html": str(tmp_path / "q.html")}
    with pytest.warns(RuntimeWarning, match=r"'quality_audit' was not registered in the project \(Operational"
                                            r"Error: [^\n]*\); labkit.reports.forget_reports will not find"):
        _register("postgresql://nobody@127.0.0.1:9/none", None, entry)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert registered(tmp_path) == []
