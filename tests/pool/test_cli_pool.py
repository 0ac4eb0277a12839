"""``labkit pool train|predict`` and ``labkit issues`` (the commands in labkit/cli_pool.py)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from labkit.cli.pool import issues, pool
from labkit.models.pool import _torch as T

from .conftest import TINY

pytestmark = pytest.mark.filterwarnings("ignore:.* trains for only:UserWarning")


def _train_args(root) -> list[str]:
    return ["train", "--project", str(root), "--archs", ",".join(TINY["archs"]),
            "--fractions", ",".join(map(str, TINY["fractions"])), "--folds", str(TINY["folds"]),
            "--image-size", str(TINY["image_size"]), "--epochs", str(TINY["epochs"]),
            "--batch-size", str(TINY["batch_size"]), "--lr", str(TINY["lr"]), "--seed", "0",
            "--workers", "0"]


def test_train_resumes_predict_reuses_and_issues_lists(project_copy, tmp_path):
    root = project_copy.root
    runner = CliRunner()
    res = runner.invoke(pool, _train_args(root))  # every model is already there: nothing to train
    assert res.exit_code == 0, res.output
    assert "4 members: test_resnet@0.5, test_resnet@1, test_efficientnet@0.5" in res.output

    res = runner.invoke(pool, ["predict", "--project", str(root), "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "300 images x 4 models x 10 classes: computed 0, reused 300" in res.output

    out = tmp_path / "issues.csv"
    res = runner.invoke(issues, ["--project", str(root), "--top", "3", "--csv", str(out),
                                 "--workers", "0"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out, index_col="image")
    assert f"{len(table)} label-error candidate(s) among 300 images (300 cross-fitted)" in res.output
    assert res.output.count("models vote") == min(3, len(table))
    assert f"image {table.index[0]}" in res.output


def test_errors_are_messages(project_copy, tmp_path):
    runner = CliRunner()
    res = runner.invoke(issues, ["--project", str(project_copy.root), "--name", "nope"])
    assert res.exit_code == 1 and "no pool named 'nope'" in res.output
    res = runner.invoke(pool, _train_args(project_copy.root) + ["--epochs", "1"])
    assert res.exit_code == 1 and "pass --overwrite to replace it, or choose another --name" in res.output
    assert "overwrite=True" not in res.output
    res = runner.invoke(pool, ["predict", "--project", str(tmp_path / "none")])
    assert res.exit_code == 1 and "no labkit project" in res.output
    res = runner.invoke(pool, ["predict", "--project", str(project_copy.root), "--checkpoint", "resnet18"])
    assert res.exit_code == 2 and "expected ARCH=PATH" in res.output


def test_checkpoint_pool_from_the_command_line(project_copy, tmp_path):
    ckpt = tmp_path / "tiny.pt"
    torch.save(T.create("test_resnet", 10).state_dict(), ckpt)
    res = CliRunner().invoke(pool, ["predict", "--project", str(project_copy.root), "--checkpoint",
                                    f"test_resnet={ckpt}", "--image-size", "16", "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "300 images x 1 models x 10 classes: computed 300, reused 0" in res.output
    assert Path(res.output.split("saved in ")[1].strip()).parent == Path(project_copy.root) / "predictions"
