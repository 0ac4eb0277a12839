"""DifficultyExplorer headless: filters, ordering, votes, send to relabel (in the store)."""
from __future__ import annotations

import numpy as np
import pytest

from labkit import Project
from labkit.quality import difficulty_table
from labkit.widgets import DifficultyExplorer


@pytest.fixture(scope="module")
def scored(copy_demo, tmp_path_factory):
    p = Project.open(copy_demo(tmp_path_factory.mktemp("d") / "demo"))  # a copy: sending to relabel writes
    ref = p.annotations(kind="label", source="import:sklearn-digits").set_index("task")["label"]
    classes = p.classes()
    rng = np.random.default_rng(0)
    y = np.array([classes.index(c) for c in ref])
    probs = rng.dirichlet(np.ones(len(classes)) * 0.3, size=(5, len(ref))).astype(np.float32)
    probs[:, : len(ref) // 2, :] *= 0.2  # the first half: confident models agreeing with the label
    probs[:, np.arange(len(ref) // 2), y[: len(ref) // 2]] += 0.8
    probs /= probs.sum(-1, keepdims=True)
    table = difficulty_table(probs, y, classes=classes, sample_ids=ref.index)
    return p, table, ref, probs


def test_filters_order_and_votes(scored):
    p, table, ref, probs = scored
    d = DifficultyExplorer(table, p, labels=ref, probs=probs)
    shown = d.filtered()
    assert len(d.gallery.children) == 12 and f"{len(table)} images" in d.count.value
    assert shown["x_perplexity"].is_monotonic_decreasing
    d.x_range.value = (0.0, 0.5)
    assert (d.filtered()["x_perplexity"] <= 0.5).all()
    d.cls.value = "3"
    assert set(ref[d.filtered().index]) <= {"3"}
    d.cls.value = "all"
    d.x_range.value = (0.0, 1.0)
    caption = d.gallery.children[0].children[1].value
    assert "votes" in caption and "given" in caption


def test_send_to_relabel_queues_in_the_store(scored):
    p, table, ref, probs = scored
    d = DifficultyExplorer(table, p, labels=ref, probs=probs)
    d.send_btn.click()
    assert "at least one image" in d.status.value
    picks = list(d._checks)[:3]
    for i in picks:
        d._checks[i].value = True
    d.annotator.value = "sim-ada"
    d.send_btn.click()
    assert set(picks) <= set(p.queue("sim-ada")) and "queued 3" in d.status.value
