"""The command line, the demo, and the promise that `import labkit` is fast."""
from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from labkit import Project
from labkit.cli import main
from labkit.demo import SIMULATED, build_demo


def test_import_is_fast_and_light():
    code = ("import sys, time; t = time.perf_counter(); import labkit; dt = time.perf_counter() - t; "
            "heavy = [m for m in ('torch', 'pandas', 'sqlalchemy', 'ipywidgets', 'timm', 'cv2') if m in sys.modules];"
            "print(dt, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    dt, heavy = out.split(" ", 1)
    assert float(dt) < 1.0
    assert heavy.strip() == "[]"


def test_help_lists_commands():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    for cmd in ("demo", "project", "images", "import", "export", "assign", "formats"):
        assert cmd in res.output


def test_project_create_info_and_errors(tmp_path):
    r = CliRunner()
    loc = str(tmp_path / "p")
    res = r.invoke(main, ["project", "create", loc, "--classes", "cat,dog"])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["project", "info", loc, "--json"])
    info = json.loads(res.output)
    assert info["classes"] == ["cat", "dog"] and info["images"] == 0
    res = r.invoke(main, ["project", "info", str(tmp_path / "nope")])
    assert res.exit_code != 0 and "no labkit project" in res.output and "Traceback" not in res.output


def test_images_annotators_assign(tmp_path, image_files):
    r = CliRunner()
    loc = str(tmp_path / "p")
    r.invoke(main, ["project", "create", loc, "--classes", "cat"])
    res = r.invoke(main, ["images", "add", "-P", loc, str(image_files[0].parent)])
    assert res.exit_code == 0 and "added 5 images" in res.output
    for n in ("a", "b"):
        assert r.invoke(main, ["annotators", "add", "-P", loc, n]).exit_code == 0
    res = r.invoke(main, ["assign", "-P", loc, "--annotators", "a,b", "--overlap", "2"])
    assert res.exit_code == 0 and "10 new assignments" in res.output


def test_demo_records_simulated_work(tmp_path):
    p = build_demo(tmp_path / "demo", n_digits=40, progress=False)
    ann = p.annotations()
    sims = {s.name for s in SIMULATED}
    sim_rows = ann[ann["worker"].isin(sims)]
    assert len(sim_rows) and (sim_rows["source"] == "simulated").all() and sim_rows["simulated"].all()
    assert set(p.annotators().query("simulated").index) == sims
    assert (ann[~ann["worker"].isin(sims)]["source"] != "simulated").all()
    digits = p.images(split="digits")
    assert len(digits) == 40
    per_image = p.progress(by="image")
    assert (per_image.loc[digits.index, "assigned"] == 3).all()
    assert set(ann["kind"]) == {"label", "box"}
    # rebuilding needs --force, and never deletes a folder the demo did not make
    import pytest

    from labkit import ProjectError
    with pytest.raises(ProjectError, match="force"):
        build_demo(tmp_path / "demo", n_digits=10, progress=False)
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    with pytest.raises(ProjectError, match="not a labkit demo folder"):
        build_demo(other, n_digits=10, force=True, progress=False)
    assert (other / "thesis.tex").exists()
    p2 = build_demo(tmp_path / "demo", n_digits=10, force=True, progress=False)
    assert len(p2.images(split="digits")) == 10


def test_demo_cli(tmp_path):
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), "--digits", "20"])
    assert res.exit_code == 0, res.output
    assert "simulated" in res.output and "accuracy" in res.output
    assert Project.open(tmp_path / "d").info()["images"] == 24


def test_demo_registers_the_person_in_its_photos(tmp_path):
    from labkit.demo import build_demo

    p = build_demo(tmp_path / "d", n_digits=20, progress=False)
    subjects = p.subjects()
    assert list(subjects.index) == ["nasa-astronaut"] and subjects.loc["nasa-astronaut", "images"] == 1
    assert subjects.loc["nasa-astronaut", "consent"] == "given"
