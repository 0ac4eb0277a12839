"""Per-annotator numbers, the plot and gold mixing."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.plots import plot_annotator_stats
from labkit.quality.agreement import cohen_kappa
from labkit.quality.annotators import annotator_stats, gold_mix

T0 = pd.Timestamp("2024-03-01 09:00", tz="UTC")


def at(*seconds):
    return [T0 + pd.Timedelta(seconds=s) for s in seconds]


def test_throughput_sessions_and_batches():
    # a: saves at 0, 60, 120 (one object each), pauses 2 h, then 2 objects saved together at 7320
    # and one at 7380. Active time: 60 + 60 + 60 = 180 s; objects at the end of a gap: 1+1+1 = 3.
    df = pd.DataFrame({"task": [1, 2, 3, 4, 4, 5], "worker": "a", "label": "cat",
                       "created_at": at(0, 60, 120, 7320, 7320, 7380)})
    s = annotator_stats(df).loc["a"]
    assert s.n_objects == 6 and s.n_tasks == 5
    assert s.active_hours == pytest.approx(180 / 3600)
    assert s.throughput_per_hour == pytest.approx(3 / (180 / 3600))
    assert s.median_time_s == pytest.approx(60) and s.time_source == "created_at"


def test_time_spent_from_provenance_wins():
    df = pd.DataFrame({"task": [1, 2, 3, 1], "worker": ["a", "a", "a", "b"], "label": "cat",
                       "created_at": at(0, 10, 20, 0),
                       "provenance": [{"time_spent_s": 4.0}, {"time_spent_s": 8.0}, {}, {"sam": True}]})
    s = annotator_stats(df)
    assert s.loc["a", "median_time_s"] == 6.0 and s.loc["a", "time_source"] == "provenance"
    assert np.isnan(s.loc["b", "median_time_s"]) and pd.isna(s.loc["b", "time_source"])
    assert np.isnan(s.loc["b", "throughput_per_hour"])  # one save: no measured interval


def test_agreement_with_consensus_and_gold():
    rng = np.random.default_rng(0)
    truth = rng.choice(["cat", "dog", "bird"], 60)
    rows = []
    for w, acc in (("good", 0.95), ("poor", 0.5)):
        labels = np.where(rng.random(60) < acc, truth, rng.choice(["cat", "dog", "bird"], 60))
        rows += [{"task": t, "worker": w, "label": lab} for t, lab in enumerate(labels)]
    rows.append({"task": 0, "worker": "consensus", "label": "cat", "source": "consensus"})
    df = pd.DataFrame(rows)
    consensus = pd.Series(truth, index=range(60))
    gold = consensus.iloc[:10]
    s = annotator_stats(df, consensus=consensus, gold=gold)
    assert "consensus" not in s.index  # consensus rows are a reference, not an annotator
    poor = df[df.worker == "poor"]
    assert s.loc["poor", "consensus_accuracy"] == pytest.approx((poor.label.to_numpy() == truth).mean())
    assert s.loc["poor", "consensus_kappa"] == pytest.approx(cohen_kappa(poor.label.to_numpy(), truth))
    assert s.loc["good", "gold_accuracy"] > s.loc["poor", "gold_accuracy"]
    assert (s["n_gold"] == 10).all() and (s["n_consensus"] == 60).all()


def test_agreement_with_consensus_boxes():
    df = pd.DataFrame({"task": 1, "label": "car", "worker": ["a", "a", "b"], "kind": "box",
                       "x0": [0, 50, 0], "y0": 0, "x1": [10, 60, 10], "y1": 10})
    consensus = pd.DataFrame({"task": [1], "label": ["car"], "x0": [0.0], "y0": [0.0], "x1": [10.0], "y1": [10.0]})
    s = annotator_stats(df, consensus=consensus)
    assert s.loc["a", "consensus_f1"] == pytest.approx(2 / 3) and s.loc["b", "consensus_f1"] == 1.0
    assert s.loc["b", "consensus_iou"] == 1.0 and s.loc["a", "n_consensus"] == 2


def test_plot_returns_a_figure():
    from matplotlib.figure import Figure

    stats = pd.DataFrame({"throughput_per_hour": [100.0, 80.0], "median_time_s": [12.0, 20.0],
                          "consensus_accuracy": [0.9, 0.7], "consensus_kappa": [0.85, 0.5],
                          "gold_accuracy": [1.0, np.nan]}, index=pd.Index(["a", "b"], name="worker"))
    fig = plot_annotator_stats(stats)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert fig.axes[2].get_legend() is not None
    with pytest.raises(ValueError, match="none of the plotted columns"):
        plot_annotator_stats(pd.DataFrame({"x": [1]}))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 60), st.integers(1, 40), st.floats(0.0, 0.5), st.integers(0, 1000))
def test_gold_mix_rate_order_and_spread(n_queue, n_gold, rate, seed):
    queue = list(range(n_queue))
    gold = [f"g{i}" for i in range(n_gold)]
    need = round(rate * n_queue / (1 - rate))
    if need > n_gold:
        with pytest.raises(ValueError, match=f"needs {need} gold items but only {n_gold}"):
            gold_mix(queue, gold, rate, seed=seed)
        return
    out = gold_mix(queue, gold, rate, seed=seed)
    assert [x for x in out if not isinstance(x, str)] == queue  # queue order kept
    inserted = [i for i, x in enumerate(out) if isinstance(x, str)]
    assert len(inserted) == need and len(set(out[i] for i in inserted)) == need
    if need:
        # one gold item in each of `need` equal stretches
        edges = np.arange(need + 1) * len(out) // need
        stretch = np.searchsorted(edges, inserted, side="right") - 1
        assert stretch.tolist() == list(range(need))
    assert gold_mix(queue, gold, rate, seed=seed) == out


def test_gold_mix_skips_items_already_queued_and_validates():
    assert "g1" not in gold_mix(["g1", 2, 3], ["g1", "g2"], 0.25, seed=1)[1:]
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        gold_mix([1], ["g"], 1.0)
    with pytest.raises(ValueError, match="no gold items to mix in"):
        gold_mix([1, 2, 3], [], 0.5)
    assert len(gold_mix(list(range(9)), ["g"], 0.25, seed=0, replace=True)) == 12
