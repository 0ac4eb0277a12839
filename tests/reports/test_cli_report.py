"""`labkit report` and `labkit inspect` (tested on their own group until registered in labkit.cli)."""
from __future__ import annotations

import click
import pandas as pd
from click.testing import CliRunner

from labkit.cli.report import inspect, report


@click.group()
def cli():
    pass


cli.add_command(report)
cli.add_command(inspect)


def test_report_rejects_unknown_parameters_with_the_list(audit_dir, tmp_path):
    r = CliRunner().invoke(cli, ["report", "quality_audit", "--project", str(audit_dir / "proj"), "--out",
                                 str(tmp_path / "o"), "-p", "colour", "red"])
    assert r.exit_code == 1
    assert "unknown parameter(s) ['colour']" in r.output and "max_evidence (int, default 12)" in r.output


def test_report_list_shows_parameters():
    r = CliRunner().invoke(cli, ["report", "--list"])
    assert r.exit_code == 0 and "quality_audit" in r.output and "inspection" in r.output


def test_report_needs_name_project_out():
    r = CliRunner().invoke(cli, ["report", "quality_audit"])
    assert r.exit_code == 2 and "give NAME, --project and --out" in r.output


def test_inspect_writes_the_sheet(audit_dir, tmp_path):
    out = tmp_path / "sheet.csv"
    r = CliRunner().invoke(cli, ["inspect", "--project", str(audit_dir / "proj"), "--out", str(out),
                                 "--contract", str(audit_dir / "contract.toml")])
    assert r.exit_code == 0, r.output
    assert "key_error_rate: ISO 2859-1 single sampling" in r.output and "code C (arrow to B), n = 3" in r.output
    sheet = pd.read_csv(out)
    assert len(sheet) == 8 and list(sheet.columns[:3]) == ["order", "image", "path"]
    again = CliRunner().invoke(cli, ["inspect", "--project", str(audit_dir / "proj"), "--out", str(out),
                                     "--contract", str(audit_dir / "contract.toml")])
    assert again.exit_code == 1 and "may hold inspection results" in again.output
