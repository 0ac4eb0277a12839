"""The command line, the demo, and the promise that `import labkit` is light."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from labkit import Project
from labkit.cli import main
from labkit.demo import SIMULATED, build_demo
from tests.conftest import DEMO_DIGITS

# Libraries that must load only when a feature needs them, never on `import labkit`.
HEAVY = ("torch", "torchvision", "timm", "segment_anything", "onnxruntime", "pandas", "sqlalchemy",
         "matplotlib", "ipywidgets", "IPython", "papermill", "nbformat", "cv2", "PIL", "scipy", "sklearn",
         "skimage", "cleanlab")
# All that `import labkit` itself may load: the package, its version and the lazy-export helper.
SKELETON = re.compile(r"labkit(\._version|\._util(\..*)?)?$")


def import_tree(statement: str) -> list[tuple[int, str, int]]:
    """(depth, module, self time in us) of every module a fresh interpreter loads for ``statement``.

    From ``python -X importtime``: nested imports are printed (indented by depth) before the
    module that imported them, so the modules of ``statement`` are the lines after the last
    top-level module of the interpreter's own start-up (``site``).
    """
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], capture_output=True,
                         text=True, check=True)
    rows = []
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)$", line)
        if m:
            rows.append((len(m[2]) // 2, m[3], int(m[1])))
    top = [i for i, (depth, _, _) in enumerate(rows) if depth == 0]
    start = next(i + 1 for i in reversed(top) if rows[i][1] == "site")
    return rows[start:]


def test_import_is_light():
    tree = import_tree("import labkit")
    modules = [name for _, name, _ in tree]
    assert modules[-1] == "labkit"  # the parse found the import
    heavy = sorted({m.split(".")[0] for m in modules} & set(HEAVY))
    ours = [m for m in modules if m.startswith("labkit")]
    assert not heavy, f"`import labkit` loads {heavy}; load them where they are used (labkit modules: {ours})"
    third_party = [m for m in modules if m.split(".")[0] not in sys.stdlib_module_names
                   and not m.startswith("labkit")]
    assert not third_party, f"`import labkit` loads non-stdlib modules {third_party}"
    eager = [m for m in modules if m.startswith("labkit") and not SKELETON.match(m)]
    assert not eager, f"`import labkit` loads {eager}; export them lazily (labkit/_util/lazy.py)"


def listing(output: str, section: str) -> dict[str, str]:
    """The entries of a click help section ("Commands", "Options"): first column -> its text."""
    lines = output.split(f"\n{section}:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    entries: dict[str, str] = {}
    for line in lines:
        m = re.match(r"  (\S.*?)(?:  +(.*))?$", line)
        if m and not line.startswith("   "):
            name = m[1]
            entries[name] = m[2] or ""
        else:  # a wrapped description
            entries[name] += " " + line.strip()
    return entries


def test_help_lists_commands():
    res = CliRunner().invoke(main, ["--help"], prog_name="labkit")
    assert res.exit_code == 0 and res.output.startswith("Usage: labkit [OPTIONS] COMMAND [ARGS]...")
    commands = listing(res.output, "Commands")
    assert set(commands) == set(main.commands)  # every registered command is listed, nothing else
    for name in ("demo", "project", "images", "import", "export", "assign", "formats"):
        assert name in commands, f"{name!r} missing from `labkit --help`:\n{res.output}"
        summary = main.commands[name].get_short_help_str(limit=500)
        assert commands[name] and summary.startswith(commands[name].removesuffix("...")), (name, commands[name])
        sub = CliRunner().invoke(main, [name, "--help"], prog_name="labkit")
        assert sub.exit_code == 0 and sub.output.startswith(f"Usage: labkit {name} [OPTIONS]"), sub.output
    assert set(listing(res.output, "Options")) == {"--version", "-h, --help"}
    demo_options = listing(CliRunner().invoke(main, ["demo", "--help"]).output, "Options")
    for option in ("--out DIRECTORY", "--digits INTEGER", "--seed INTEGER", "--force"):
        assert option in demo_options, f"`labkit demo` has no {option!r} option: {list(demo_options)}"

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


def test_demo_records_simulated_work(copy_demo, tmp_path):
    demo = copy_demo(tmp_path / "demo")  # a copy: the end of this test rebuilds it
    p = Project.open(demo)
    ann = p.annotations()
    sims = {s.name for s in SIMULATED}
    sim_rows = ann[ann["worker"].isin(sims)]
    assert len(sim_rows) and (sim_rows["source"] == "simulated").all() and sim_rows["simulated"].all()
    assert set(p.annotators().query("simulated").index) == sims
    assert (ann[~ann["worker"].isin(sims)]["source"] != "simulated").all()
    digits = p.images(split="digits")
    assert len(digits) == DEMO_DIGITS
    per_image = p.progress(by="image")
    assert (per_image.loc[digits.index, "assigned"] == 3).all()
    assert set(ann["kind"]) == {"label", "box"}
    p.close()
    # rebuilding needs --force, and never deletes a folder the demo did not make
    from labkit import ProjectError
    with pytest.raises(ProjectError, match="force"):
        build_demo(demo, n_digits=10, progress=False)
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    with pytest.raises(ProjectError, match="not a labkit demo folder"):
        build_demo(other, n_digits=10, force=True, progress=False)
    assert (other / "thesis.tex").exists()
    p2 = build_demo(demo, n_digits=10, force=True, progress=False)
    assert len(p2.images(split="digits")) == 10


def test_demo_cli(tmp_path):
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), "--digits", "20"])
    assert res.exit_code == 0, res.output
    assert "simulated" in res.output and "accuracy" in res.output
    assert Project.open(tmp_path / "d").info()["images"] == 24


def test_demo_registers_the_person_in_its_photos(demo_dir):
    p = Project.open(demo_dir)
    subjects = p.subjects()
    assert list(subjects.index) == ["nasa-astronaut"] and subjects.loc["nasa-astronaut", "images"] == 1
    assert subjects.loc["nasa-astronaut", "consent"] == "given"


def test_make_demo_runs_the_main_job_with_a_log_a_person_reads(tmp_path):
    """``make demo``'s command, as CI or a terminal-less user runs it: stages, a verdict, no warnings.

    The full default demo (300 digits, the default pool): the README's first command must work,
    without the 45-step training warning and the kernel's TCP warning its log used to carry, and
    without one line per progress-bar redraw.
    """
    import json
    import subprocess
    import sys

    out = tmp_path / "demo_project"
    run = subprocess.run([sys.executable, "-m", "labkit.cli", "demo", "--out", str(out), "--audit"],
                         capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    stages = [line for line in run.stdout.splitlines() if line.endswith(" s") and ": done in " in line]
    assert [s.split(":")[0].split(" (")[0] for s in stages] == [
        "building the demo project", "training the model pool", "scoring 304 images with the pool",
        "inspecting the ISO 2859-1 sample", "rendering the audit report"]
    verdict = json.loads((out / "reports" / "verdict.json").read_text())
    failing = [c["clause"] for c in verdict["clauses"] if c["status"] == "FAIL"]
    assert run.stdout.splitlines()[-1] == (f"verdict {verdict['overall']}: {len(failing)} of "
                                           f"{len(verdict['clauses'])} clauses fail"
                                           + (f" ({', '.join(failing)})" if failing else ""))
    assert (out / "reports" / "quality_audit.html").is_file()
    for noise in ("Warning", "WARNING", "IPKernelApp", "KeyboardInterrupt", "Traceback"):
        assert noise not in run.stderr, run.stderr
    # progress bars off a terminal: a few updates each, not one per redraw
    assert run.stderr.count("\r") + run.stderr.count("\n") < 60, run.stderr
    model = next(c for c in verdict["clauses"] if c["clause"] == "label_issue_rate")
    assert model["status"] != "NOT EVALUATED" and model["measured"] is not None  # the pool was trained and used
