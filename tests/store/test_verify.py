"""Tamper evidence (`verify_project`, `labkit verify`), on SQLite and on a real PostgreSQL server."""
from __future__ import annotations

import hashlib
import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from labkit import Project
from labkit.cli.verify import verify
from labkit.services.verify import COLUMNS, verify_project
from labkit.store.images import sha256_file
from tests.conftest import write_image
from tests.store.helpers import snapshot


def run_cli(project, *args):
    return CliRunner().invoke(verify, ["--project", str(project.location), *args])


def by_image(report: pd.DataFrame) -> dict[int, str]:
    rows = report[report["kind"] == "image"]
    return dict(zip(rows["image"].astype(int), rows["status"]))


def test_an_untouched_project_verifies(project, image_files):
    report = verify_project(project, progress=False)
    assert list(report.columns) == COLUMNS
    assert by_image(report) == {1: "ok", 2: "ok", 3: "ok", 4: "ok", 5: "ok"}
    assert report.attrs["summary"] == {"ok": 5, "changed": 0, "missing": 0, "unreadable": 0}
    assert report["path"].tolist() == [str(f.resolve()) for f in image_files]
    stored = project.images()["sha256"].tolist()
    assert report["expected_sha256"].tolist() == stored == report["actual_sha256"].tolist()
    assert report["size"].tolist() == [f.stat().st_size for f in image_files]
    assert str(report["mtime"].dt.tz) == "UTC" and report["mtime"].notna().all()
    assert report["error"].isna().all() and report["pool"].isna().all()

    r = run_cli(project)
    assert r.exit_code == 0, r.output
    head = report.attrs["chain"]["head"]
    assert report.attrs["chain"]["checked"] and head["seq"] == report.attrs["chain"]["blocks"] > 1
    assert r.output == (f"OK: the hash chain holds ({head['seq']} blocks, head #{head['seq']} {head['head'][:12]}; "
                        "0 head(s) recorded by reports and exports found in it)\n"
                        "OK: all 5 files match their recorded sha256 (5 images, 0 pool weight files)\n")


def test_changed_missing_and_unreadable_files_are_reported(project, image_files):
    before = snapshot(project)
    original = image_files[1].read_bytes()
    image_files[1].write_bytes(original + b"\0")  # still a valid PNG: only the hash can tell
    image_files[3].unlink()
    image_files[4].unlink()
    image_files[4].mkdir()  # a folder where the file was: exists, but cannot be read as one

    report = verify_project(project, progress=False)
    assert by_image(report) == {1: "ok", 2: "changed", 3: "ok", 4: "missing", 5: "unreadable"}
    assert report.attrs["summary"] == {"ok": 2, "changed": 1, "missing": 1, "unreadable": 1}
    rows = report.set_index("image")
    assert rows.loc[2, "actual_sha256"] == sha256_file(image_files[1]) != rows.loc[2, "expected_sha256"]
    assert rows.loc[2, "expected_sha256"] == hashlib.sha256(original).hexdigest()
    assert rows.loc[2, "size"] == len(original) + 1
    assert rows.loc[4, "actual_sha256"] is None and pd.isna(rows.loc[4, "size"]) and pd.isna(rows.loc[4, "mtime"])
    assert rows.loc[5, "error"] == "not a regular file"
    assert snapshot(project) == before  # verifying changes nothing, not even the audit log

    r = run_cli(project)
    assert r.exit_code == 1, r.output
    lines = r.output.splitlines()
    assert lines[-1] == ("FAILED: 1 changed, 1 missing, 1 unreadable; 2 of 5 files match "
                         "(5 images, 0 pool weight files)")
    assert lines[-2].startswith("OK: the hash chain holds")  # the files changed, not the database
    assert len(lines) == 6 and lines[0].split()[:3] == ["status", "kind", "image"]
    for f, status in [(image_files[1], "changed"), (image_files[3], "missing"), (image_files[4], "unreadable")]:
        assert any(str(f.resolve()) in line and line.split()[0] == status for line in lines)
    assert str(image_files[0].resolve()) not in r.output  # ok files only with --all
    assert rows.loc[2, "expected_sha256"][:12] in r.output

    r = run_cli(project, "--all")
    assert r.exit_code == 1 and all(str(f.resolve()) in r.output for f in image_files)

    r = run_cli(project, "--json")
    assert r.exit_code == 1
    out = json.loads(r.output)
    assert out["summary"] == {"ok": 2, "changed": 1, "missing": 1, "unreadable": 1}
    assert [(f["image"], f["status"]) for f in out["files"]] == [(2, "changed"), (4, "missing"), (5, "unreadable")]
    assert out["files"][1]["actual_sha256"] is None and out["files"][0]["mtime"].endswith("Z")
    assert len(json.loads(run_cli(project, "--json", "--all").output)["files"]) == 5

    # restoring the original bytes is enough: the check is on content, not on times
    image_files[1].write_bytes(original)
    image_files[4].rmdir()
    write_image(image_files[4], seed=4)
    shutil.copy(image_files[0], image_files[3])  # a different image under the right name
    assert by_image(verify_project(project, progress=False)) == {1: "ok", 2: "ok", 3: "ok", 4: "changed", 5: "ok"}


def test_every_image_row_is_checked_whatever_images_returns(project, image_files, monkeypatch):
    """Read from the table itself: a filter in Project.images() cannot hide a file from the check."""
    empty = project.images().iloc[:0]
    monkeypatch.setattr(type(project), "images", lambda self, **kw: empty)
    image_files[2].write_bytes(b"tampered")
    assert by_image(verify_project(project, progress=False))[3] == "changed"


def _fake_pool(root, name="default"):
    """A trained pool's folder as ModelPool.load reads it: pool.json lists weights with their sha256."""
    home = root / "pool" / name
    weights = [f"weights/resnet18@1/fold{f}.pt" for f in range(2)]
    for i, w in enumerate(weights):
        (home / w).parent.mkdir(parents=True, exist_ok=True)
        (home / w).write_bytes(f"weights of fold {i}".encode())
    member = {"name": "resnet18@1", "arch": "resnet18", "weights": weights,
              "sha256": [sha256_file(home / w) for w in weights], "mean": [0.5] * 3, "std": [0.25] * 3,
              "fraction": 1.0}
    (home / "pool.json").write_text(json.dumps({"members": [member], "classes": ["cat", "dog", "bird"],
                                                "image_size": 16, "folds_sha256": "0" * 64}))
    return [home / w for w in weights]


def test_pool_weights_are_verified(project):
    fold0, fold1 = _fake_pool(project.root)
    report = verify_project(project, progress=False)
    pool = report[report["kind"] == "pool_weights"]
    assert pool["path"].tolist() == [str(fold0), str(fold1)] and (pool["status"] == "ok").all()
    assert pool["pool"].tolist() == ["default"] * 2 and pool["member"].tolist() == ["resnet18@1"] * 2
    assert pool["image"].isna().all() and report.attrs["summary"]["ok"] == 7

    fold1.write_bytes(b"weights of another model")
    fold0.unlink()
    (project.root / "pool" / "broken").mkdir()
    (project.root / "pool" / "broken" / "pool.json").write_text("{not json")
    report = verify_project(project, progress=False)
    pool = report[report["kind"] != "image"]
    assert list(zip(pool["kind"], pool["pool"], pool["status"])) == [
        ("pool_weights", "default", "missing"), ("pool_weights", "default", "changed"),
        ("pool_manifest", "broken", "unreadable")]
    assert "Expecting property name" in pool["error"].iloc[2]
    assert report.attrs["summary"] == {"ok": 5, "changed": 1, "missing": 1, "unreadable": 1}


@pytest.mark.parametrize("manifest, match", [
    ({"members": [{"name": "m", "weights": ["a.pt"]}]}, "member 0 needs 'weights' and 'sha256'"),
    ({"members": [{"name": "m", "weights": ["a.pt", "b.pt"], "sha256": ["0" * 64]}]}, "same length"),
    ([1, 2], "no 'members' list"),
])
def test_a_malformed_pool_manifest_is_reported(tmp_path, manifest, match):
    p = Project.create(tmp_path / "proj", classes=["a"])
    (p.root / "pool" / "x").mkdir(parents=True)
    (p.root / "pool" / "x" / "pool.json").write_text(json.dumps(manifest))
    report = verify_project(p, progress=False)
    p.close()
    assert report[["kind", "status"]].values.tolist() == [["pool_manifest", "unreadable"]]
    assert match in report["error"].iloc[0]


def test_many_files_keep_their_order(tmp_path):
    files = [write_image(tmp_path / "many" / f"{i:03d}.png", 8, 8, seed=i) for i in range(120)]
    p = Project.create(tmp_path / "proj", classes=["a"])
    p.add_images(files, progress=False)
    files[57].unlink()
    report = verify_project(p, progress=True, workers=3)
    p.close()
    assert report["image"].tolist() == list(range(1, 121))
    assert report["path"].tolist() == [str(f.resolve()) for f in files]
    assert report["status"].tolist() == ["ok"] * 57 + ["missing"] + ["ok"] * 62


def test_bad_arguments(tmp_path):
    p = Project.create(tmp_path / "proj", classes=["a"])
    for workers in (0, 2.5, True):
        with pytest.raises(ValueError, match=f"workers is {workers!r}; expected a positive integer"):
            verify_project(p, workers=workers)
    p.close()
    with pytest.raises(TypeError, match="expected a labkit.Project"):
        verify_project(str(tmp_path / "proj"))
    r = CliRunner().invoke(verify, ["--project", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "no labkit project" in r.output
    empty = verify_project(Project.open(tmp_path / "proj"), progress=False)
    assert list(empty.columns) == COLUMNS and len(empty) == 0
    assert empty.attrs["summary"] == {"ok": 0, "changed": 0, "missing": 0, "unreadable": 0}


def test_labkit_verify_is_a_command_of_the_cli(tmp_path, image_files):
    from labkit.cli import main

    p = Project.create(tmp_path / "proj", classes=["a"])
    p.add_images(image_files, progress=False)
    p.close()
    r = CliRunner().invoke(main, ["verify", "-P", str(tmp_path / "proj")])
    assert r.exit_code == 0 and r.output.splitlines()[-1].startswith("OK: all 5 files match")
    image_files[0].unlink()
    r = CliRunner().invoke(main, ["verify", "-P", str(tmp_path / "proj")])
    assert r.exit_code == 1 and r.output.splitlines()[-1].startswith("FAILED: 1 missing; 4 of 5 files match")
