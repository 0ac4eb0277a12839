"""DifficultyExplorer in a real JupyterLab + Chromium: filter, select, send to relabel -> in the store."""
from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.browser.harness import (
    open_notebook,
    pytestmark,
    run_all_cells,
)
from tests.browser.test_labeler_browser import _wait_kernel

pytestmark = [pytestmark, pytest.mark.browser]

CELL = """
import json
import numpy as np
from labkit import Project
from labkit.quality import difficulty_table
from labkit.widgets import DifficultyExplorer
p = Project.open('demo')
ref = p.annotations(kind='label', source='import:sklearn-digits').set_index('task')['label']
classes = p.classes()
y = np.array([classes.index(c) for c in ref])
probs = np.random.default_rng(0).dirichlet(np.ones(len(classes)) * 0.3, size=(5, len(ref))).astype(np.float32)
d = DifficultyExplorer(difficulty_table(probs, y, classes=classes, sample_ids=ref.index), p, labels=ref, probs=probs)
d
"""


def test_filter_select_send(lab, page, js_errors, shot_dir, copy_demo):
    copy_demo(lab["dir"] / "demo")  # a copy: the test queues images to relabel
    nbformat.write(new_notebook(cells=[new_code_cell(CELL)], metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}), lab["dir"] / "hard.ipynb")
    open_notebook(page, lab, "hard.ipynb")
    run_all_cells(page)
    page.locator(".labkit-difficulty .labkit-pick").first.wait_for()
    before = page.locator(".labkit-count").inner_text()
    page.locator(".labkit-difficulty select").first.select_option("3")  # given label = 3
    page.wait_for_function("b => document.querySelector('.labkit-count').innerText !== b", arg=before)
    shown = _wait_kernel(page, "d.filtered().index.tolist()", bool)
    assert _wait_kernel(page, "sorted(set(d.labels[d.filtered().index]))", bool) == ["3"]
    page.locator(".labkit-difficulty .labkit-pick input").first.check()
    page.locator(".labkit-send").click()
    page.locator(".labkit-status", has_text="queued 1").wait_for()
    queued = _wait_kernel(page, "d.project.queue(d.annotator.value)", bool)
    assert shown[0] in queued
    page.screenshot(path=str(shot_dir / "difficulty_explorer.png"), full_page=True)
    assert not js_errors, js_errors
