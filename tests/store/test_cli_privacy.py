"""``labkit privacy ...`` and role errors on the command line."""
from __future__ import annotations

import json

from click.testing import CliRunner

from labkit import Project
from labkit.cli import main


def _run(*args, user=None):
    env = {"LABKIT_USER": user} if user else {}
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def test_privacy_commands(tmp_path, image_files):
    loc = tmp_path / "p"
    p = Project.create(loc, classes=["cat"], user="dpo")
    p.add_annotator("eve", role="viewer")
    p.add_images(image_files, subject=["person-a", "person-a", "person-b", "person-b", "person-c"], consent="given")
    p.close()

    res = _run("privacy", "retention", "30", "-P", loc, user="dpo")
    assert res.exit_code == 0 and "30 days" in res.output
    assert _run("privacy", "withdraw", "person-b", "-P", loc, user="dpo").exit_code == 0
    res = _run("privacy", "consent", "person-c", "--status", "unknown", "-P", loc, user="dpo")
    assert res.exit_code == 0, res.output
    res = _run("privacy", "forget", "person-a", "-P", loc, "--yes", user="dpo")
    assert res.exit_code == 0, res.output
    erasure = json.loads(res.output)
    assert erasure["database"]["images"] == 2 and len(erasure["tombstone"]) == 32

    res = _run("privacy", "report", "-P", loc, "--json", user="dpo")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["retention_days"] == 30 and rep["subjects"] == 2
    assert [w["subject"] for w in rep["withdrawn"]] == ["person-b"]
    assert [u["subject"] for u in rep["unknown_consent"]] == ["person-c"]
    assert len(rep["erasures"]) == 1 and "person-a" not in json.dumps(rep)

    # a viewer is refused, with the reason, and the attempt is in the report
    res = _run("privacy", "forget", "person-b", "-P", loc, "--yes", user="eve")
    assert res.exit_code == 1 and "'eve' may not erase data subjects" in res.output
    res = _run("privacy", "report", "-P", loc, "--html", tmp_path / "privacy.html", user="dpo")
    assert "Denied attempts: 1" in res.output
    assert "Withdrawn consents: 1" in (tmp_path / "privacy.html").read_text()
    # someone who is not a member cannot even open it
    res = _run("privacy", "report", "-P", loc, user="mallory")
    assert res.exit_code == 1 and "not a member" in res.output
