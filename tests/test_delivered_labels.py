"""The demo project's views agree on the numbers a user compares across them.

A user test of the demo found three numbers that changed from view to view: Krippendorff's
alpha (0.662 in the demo audit, 0.741 in the AgreementDashboard and the README's
``run_report`` example), the label-error candidates (25 in the report, 13 from
``labkit issues``) and an image's given label (image 116: "given 2" in the report,
"given 9" in the DifficultyExplorer). Each view picked its own annotators and broke ties
its own way. Here every view is run on the same demo project with the same pool
predictions and must report the same alpha, the same candidates and the same given label
per image: the audit with the demo's contract, the audit with ``contracts/example.toml``
(the README example), the AgreementDashboard, the DifficultyExplorer (as the difficulty
notebook builds it) and ``labkit issues``.
"""
from __future__ import annotations

import html
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: A pool small enough to train in seconds on the demo's 60 digits (2 models); its
#: predictions need to be the same in every view, and ~70% accurate so candidates are a minority.
TINY = dict(archs=("test_resnet",), fractions=(1.0,), folds=2, image_size=16, epochs=30, batch_size=8,
            lr=3e-3, seed=0, num_workers=0, jobs=1, threads=1, progress=False)


@pytest.fixture(scope="module")
def demo(copy_demo, tmp_path_factory):
    """A copy of the session's demo project with a tiny trained pool and its saved predictions."""
    from labkit import Project
    from labkit.models.pool import ModelPool

    p = Project.open(copy_demo(tmp_path_factory.mktemp("delivered") / "demo"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "trains for only N steps": tiny on purpose
        ModelPool.train(p, **TINY).predict(p, progress=False, num_workers=0)
    yield p
    p.close()


@pytest.fixture(scope="module")
def views(demo, tmp_path_factory):
    """What each view shows: alpha (as printed), the candidates, the given label per image."""
    from click.testing import CliRunner

    from labkit.cli.pool import issues
    from labkit.demo.audit import DEMO_CONTRACT
    from labkit.models.pool import ModelPool, project_difficulty
    from labkit.reports.audit import run_audit
    from labkit.widgets import AgreementDashboard, DifficultyExplorer

    out = tmp_path_factory.mktemp("views")
    contract = out / "demo_contract.toml"
    contract.write_text(DEMO_CONTRACT)
    audits = {name: run_audit(demo, contract=str(c), predictions="auto", out_dir=out / name)
              for name, c in (("demo audit", contract), ("README example", ROOT / "contracts" / "example.toml"))}

    dash = AgreementDashboard(demo)
    m = re.search(r"Krippendorff's alpha \(95% CI\)</td><td><b>(-?\d\.\d{3})", html.unescape(dash.numbers.value))
    assert m, dash.numbers.value

    pred = ModelPool.load(demo).predict(demo, progress=False, num_workers=0)
    table = project_difficulty(demo, pred)  # as notebooks/difficulty.ipynb builds the explorer
    explorer = DifficultyExplorer(table, demo, labels=table["label"],
                                  probs=pred.probs[:, pred.images.get_indexer(table.index)],
                                  classes=list(pred.classes))

    csv = out / "issues.csv"
    res = CliRunner().invoke(issues, ["--project", str(demo.root), "--top", "0", "--csv", str(csv),
                                      "--workers", "0"])
    assert res.exit_code == 0, res.output
    n_cli = int(re.search(r"(\d+) label-error candidate\(s\)", res.output).group(1))
    cli = pd.read_csv(csv, index_col="image", dtype={"given_label": str, "suggested_label": str})
    return {"audits": audits, "dashboard_alpha": m.group(1), "explorer": explorer, "table": table,
            "cli": cli, "n_cli": n_cli, "cli_output": res.output, "dashboard": dash}


def test_every_view_reports_the_same_alpha(views):
    shown = {name: f"{a.interval.estimate:.3f}" for name, a in views["audits"].items()}
    shown["AgreementDashboard"] = views["dashboard_alpha"]
    assert len(set(shown.values())) == 1, shown


def test_every_view_counts_the_same_label_issues(views):
    counts = {name: len(a.issues) for name, a in views["audits"].items()}
    counts["labkit issues"] = views["n_cli"]
    assert len(set(counts.values())) == 1, counts
    assert counts["labkit issues"] == len(views["cli"])
    for a in views["audits"].values():
        assert sorted(a.issues.index) == sorted(views["cli"].index)


def test_every_view_gives_each_image_the_same_label(views):
    audit = views["audits"]["demo audit"]
    scored = audit.labeled_for_model  # delivered labels of the images the pool scores
    given = {name: a.delivered.reindex(scored) for name, a in views["audits"].items()}
    given["DifficultyExplorer"] = views["explorer"].labels.reindex(scored)
    given["project_difficulty"] = views["table"]["label"].reindex(scored)
    reference = given["demo audit"]
    assert reference.notna().all()
    for name, labels in given.items():
        differ = reference.index[labels.to_numpy() != reference.to_numpy()]
        assert differ.empty, f"{name} gives other labels than the demo audit on images {list(differ)}"
    for name, table in {"labkit issues": views["cli"], **{n: a.issues for n, a in views["audits"].items()}}.items():
        assert (table["given_label"] == reference.reindex(table.index)).all(), name


def test_every_view_states_the_definition(views):
    audit = views["audits"]["demo audit"]
    definition = audit.delivery.describe()
    assert "reference 'sklearn-digits' excluded" in definition
    assert "sim-ada, sim-ben, sim-cai, sim-dee" in definition and "ties go to the class listed first" in definition
    shown = {"audit consistency": str(audit.consistency()), "audit cleanliness": str(audit.cleanliness()),
             "AgreementDashboard": views["dashboard"].numbers.value,
             "DifficultyExplorer": views["explorer"].definition.value, "labkit issues": views["cli_output"]}
    for name, text in shown.items():
        assert definition in html.unescape(text), name
    for a in views["audits"].values():  # both contracts: the reference is left out of the audit too
        assert a.excluded_workers == ["sklearn-digits"]


def test_the_views_compute_alpha_on_the_same_votes(views):
    audit, dash = views["audits"]["demo audit"], views["dashboard"]
    assert dash.alpha is not None and dash.alpha.estimate == pytest.approx(audit.interval.estimate, abs=1e-12)
    assert tuple(dash.workers.options) == audit.delivery.voters
    ties = audit.delivery.ties
    assert len(ties)  # the demo has three-way ties; every view breaks them the same way
    captions = {int(c.children[1].value.split("image ")[1].split(" ")[0]): c.children[1].value
                for c in views["explorer"].gallery.children}
    for image, caption in captions.items():
        assert f"given {audit.delivered[image]}" in caption
        assert ("(tie)" in caption) == (image in ties)


def test_a_stored_majority_consensus_delivers_the_same_labels(copy_demo, tmp_path):
    """write_consensus leaves the reference out too, and breaks ties the same way, so storing the
    majority as consensus changes no delivered label (it only makes every image 'consensus')."""
    from labkit import Project
    from labkit.models.pool.labels import project_delivery
    from labkit.services.consensus import write_consensus

    with Project.open(copy_demo(tmp_path / "demo")) as p:
        before = project_delivery(p)
        stored = write_consensus(p, kind="label", method="majority_vote")
        assert stored["n_inputs"].max() == 3  # three simulated annotators per digit, not the reference
        after = project_delivery(p)
    assert after.labels.equals(before.labels) and set(after.decided_by) == {"consensus"}
    assert after.voters == before.voters and after.references == ("sklearn-digits",)
