"""Label aggregation: Dawid–Skene and majority vote against crowd-kit on random data,
simulated confusion-matrix annotators, model-assisted consensus, and error messages."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import DawidSkene as CkDawidSkene
from crowdkit.aggregation import MajorityVote as CkMajorityVote
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.quality.aggregate import DawidSkene, MajorityVote, aggregate_with_model

FAST = settings(max_examples=40, deadline=None)
PEER = settings(max_examples=15, deadline=None)  # crowd-kit takes ~0.2 s per fit

# crowd-kit 1.4 uses pandas idioms that pandas 3 deprecates
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning",
                                        "ignore:.*inplace.*", "ignore:The copy keyword")


@st.composite
def long_labels(draw):
    """Small long DataFrames: up to 25 tasks x 5 workers x 4 classes, ~30% missing."""
    n = draw(st.integers(1, 25))
    m = draw(st.integers(1, 5))
    k = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    present = rng.random((n, m)) < 0.7
    present[np.arange(n), rng.integers(0, m, n)] = True  # every task has a label
    t, w = np.nonzero(present)
    truth = rng.integers(0, k, n)
    acc = rng.uniform(0.3, 0.95, m)
    labels = np.where(rng.random(len(t)) < acc[w], truth[t], rng.integers(0, k, len(t)))
    names = np.array([f"w{i}" for i in range(m)])
    return pd.DataFrame({"task": t, "worker": names[w], "label": labels})


def _margin(probas: pd.DataFrame) -> pd.Series:
    p = np.sort(probas.to_numpy(), axis=1)
    top2 = p[:, -1] - (p[:, -2] if p.shape[1] > 1 else 0.0)
    return pd.Series(top2, index=probas.index)


@PEER
@given(long_labels())
def test_dawid_skene_matches_crowdkit(df):
    ck = CkDawidSkene(n_iter=50).fit(df)
    ours = DawidSkene(n_iter=50).fit(df)
    # same EM: same iterations, same bound at every step
    assert ours.n_iter_ == len(ck.loss_history_)
    np.testing.assert_allclose(ours.loss_history_, ck.loss_history_, rtol=1e-9, atol=1e-12)
    probas = ck.probas_.sort_index()
    np.testing.assert_allclose(ours.probas_.loc[probas.index, probas.columns], probas, atol=1e-9)
    np.testing.assert_allclose(ours.priors_.loc[ck.priors_.index], ck.priors_, atol=1e-9)
    np.testing.assert_allclose(ours.errors_.loc[ck.errors_.index, ck.errors_.columns], ck.errors_, atol=1e-9)
    # labels equal wherever the posterior has a clear winner (exact ties: crowd-kit orders
    # classes by frequency, labkit by category order)
    clear = _margin(probas) > 1e-9
    labels = ck.labels_.sort_index()
    assert (ours.labels_.loc[labels.index][clear] == labels[clear]).all()


@PEER
@given(long_labels(), st.data())
def test_dawid_skene_gold_labels_match_crowdkit(df, data):
    tasks = sorted(df["task"].unique())
    picked = data.draw(st.lists(st.sampled_from(tasks), max_size=5, unique=True))
    cats = sorted(df["label"].unique())
    gold = pd.Series([data.draw(st.sampled_from(cats)) for _ in picked], index=picked, dtype=df["label"].dtype)
    ck = CkDawidSkene(n_iter=30).fit(df, true_labels=gold)
    ours = DawidSkene(n_iter=30).fit(df, true_labels=gold)
    probas = ck.probas_.sort_index()
    np.testing.assert_allclose(ours.probas_.loc[probas.index, probas.columns], probas, atol=1e-9)
    assert (ours.labels_.loc[picked] == gold).all()


@FAST
@given(long_labels())
def test_majority_vote_matches_crowdkit(df):
    ck = CkMajorityVote().fit(df)
    ours = MajorityVote().fit(df)
    probas = ck.probas_.sort_index()
    np.testing.assert_allclose(ours.probas_.loc[probas.index, probas.columns], probas, atol=1e-12)
    clear = _margin(probas) > 1e-12
    labels = ck.labels_.sort_index()
    assert (ours.labels_.loc[labels.index][clear] == labels[clear]).all()
    if clear.all():  # skills are accuracies against the labels, so they follow the tie-breaks
        np.testing.assert_allclose(ours.skills_.loc[ck.skills_.index], ck.skills_, atol=1e-12)


def test_majority_vote_ties_go_to_first_category():
    df = pd.DataFrame({"task": [1, 1, 2, 2], "worker": ["a", "b", "a", "b"], "label": ["z", "y", "y", "z"]})
    assert MajorityVote().fit_predict(df).tolist() == ["y", "y"]
    assert MajorityVote(categories=["z", "y"]).fit_predict(df).tolist() == ["z", "z"]
    np.testing.assert_allclose(MajorityVote().fit_predict_proba(df), 0.5)


def test_majority_vote_weights():
    df = pd.DataFrame({"task": [1, 1, 1], "worker": ["a", "b", "c"], "label": [0, 1, 1]})
    assert MajorityVote().fit_predict(df).tolist() == [1]
    assert MajorityVote().fit_predict(df, weights={"a": 3, "b": 1, "c": 1}).tolist() == [0]
    with pytest.raises(ValueError, match=r"no value for workers \['c'\]"):
        MajorityVote().fit(df, weights={"a": 1, "b": 1})


def simulate(n_tasks, n_workers, k, seed=0):
    """Confusion-matrix annotators: accuracies from 0.45 to 0.85, structured confusions."""
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.full(k, 5.0))
    truth = rng.choice(k, n_tasks, p=prior)
    labels = np.empty((n_workers, n_tasks), dtype=np.int64)
    for w, acc in enumerate(np.linspace(0.45, 0.85, n_workers)):
        conf = np.zeros((k, k))
        for c in range(k):
            conf[c, np.arange(k) != c] = (1 - acc) * rng.dirichlet(np.full(k - 1, 0.5))
            conf[c, c] = acc
        u = rng.random(n_tasks)[:, None]
        labels[w] = (u > conf.cumsum(1)[truth]).sum(1)
    df = pd.DataFrame({"task": np.repeat(np.arange(n_tasks), n_workers),
                       "worker": np.tile([f"w{i}" for i in range(n_workers)], n_tasks),
                       "label": labels.T.ravel()})
    return df, truth


def test_dawid_skene_on_simulated_annotators_beats_majority_and_equals_crowdkit():
    df, truth = simulate(3000, 5, 6)
    ours = DawidSkene().fit(df)
    ck = CkDawidSkene().fit(df)
    acc = (ours.labels_.to_numpy() == truth).mean()
    acc_ck = (ck.labels_.sort_index().to_numpy() == truth).mean()
    acc_mv = (MajorityVote().fit_predict(df).to_numpy() == truth).mean()
    assert acc >= acc_ck and acc > acc_mv + 0.02
    # a worker's confusion matrix: columns (true class) sum to 1, diagonal near its accuracy
    best = ours.errors_.loc["w4"].to_numpy()
    np.testing.assert_allclose(best.sum(0), 1.0)
    assert abs(np.diag(best).mean() - 0.85) < 0.05


def test_dawid_skene_string_labels_and_unused_categories():
    df = pd.DataFrame({"task": ["t1", "t1", "t2", "t2"], "worker": ["a", "b", "a", "b"],
                       "label": ["cat", "cat", "dog", "dog"]})
    ds = DawidSkene(categories=["bird", "cat", "dog"]).fit(df)
    assert ds.labels_.to_dict() == {"t1": "cat", "t2": "dog"}
    assert list(ds.probas_.columns) == ["bird", "cat", "dog"]
    assert ds.probas_["bird"].max() < 1e-6
    assert ds.errors_.index.names == ["worker", "label"]


def test_dawid_skene_rejects_bad_input():
    with pytest.raises(ValueError, match=r"missing columns \['label'\]"):
        DawidSkene().fit(pd.DataFrame({"task": [1], "worker": ["a"]}))
    df = pd.DataFrame({"task": [1, 1], "worker": ["a", "a"], "label": [0, 1]})
    with pytest.raises(ValueError, match="more than one label"):
        DawidSkene().fit(df)
    assert DawidSkene(duplicates="first").fit_predict(df).tolist() == [0]
    with pytest.raises(ValueError, match="n_iter must be a non-negative integer"):
        DawidSkene(n_iter=-1)
    with pytest.raises(ValueError, match=r"true_labels has labels \[7\]"):
        DawidSkene().fit(pd.DataFrame({"task": [1], "worker": ["a"], "label": [0]}), true_labels=pd.Series({1: 7}))


# ------------------------------------------------------------------ model-assisted
def test_model_as_annotator_hard_votes_equal_an_extra_worker():
    df, truth = simulate(400, 3, 4, seed=3)
    rng = np.random.default_rng(5)
    probs = np.full((400, 4), 0.05)
    guess = np.where(rng.random(400) < 0.8, truth, rng.integers(0, 4, 400))
    probs[np.arange(400), guess] = 0.85
    hard = aggregate_with_model(df, probs, soft=False, name="pool")
    extra = pd.concat([df, pd.DataFrame({"task": np.arange(400), "worker": "pool", "label": guess})])
    ref = DawidSkene().fit(extra)
    np.testing.assert_allclose(hard.probas_, ref.probas_.loc[hard.probas_.index], atol=1e-9)
    assert "pool" in hard.errors_.index.get_level_values("worker")


def test_model_assisted_soft_votes_help_and_weight_zero_is_humans_only():
    df, truth = simulate(2000, 3, 5, seed=1)
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3, 2000, 5))
    logits[:, np.arange(2000), truth] += 2.5  # three out-of-sample models, fairly good
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    humans = DawidSkene().fit(df)
    with_pool = aggregate_with_model(df, probs)
    acc = lambda agg: (agg.labels_.to_numpy() == truth).mean()  # noqa: E731
    assert acc(with_pool) > acc(humans) + 0.02
    none = aggregate_with_model(df, probs, weight=0.0)
    np.testing.assert_allclose(none.probas_, humans.probas_, atol=1e-9)
    mv = aggregate_with_model(df, probs, method="majority_vote")
    assert acc(mv) > (MajorityVote().fit_predict(df).to_numpy() == truth).mean()


def test_model_assisted_aligns_by_sample_ids_and_classes():
    df = pd.DataFrame({"task": ["b", "b", "a", "a"], "worker": ["x", "y", "x", "y"],
                       "label": ["cat", "dog", "dog", "cat"]})
    probs = np.array([[0.1, 0.9], [0.95, 0.05], [0.5, 0.5]])  # rows: a, b, c (c has no humans)
    agg = aggregate_with_model(df, probs, sample_ids=["a", "b", "c"], classes=["cat", "dog"],
                               method="majority_vote")
    assert agg.labels_.to_dict() == {"a": "dog", "b": "cat"}


def test_model_assisted_errors():
    df = pd.DataFrame({"task": [0], "worker": ["x"], "label": ["cat"]})
    with pytest.raises(ValueError, match="classes has 3 names but probs has K=2"):
        aggregate_with_model(df, np.full((1, 2), 0.5), classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="sums to"):
        aggregate_with_model(df, np.array([[0.5, 0.6]]), classes=["cat", "dog"])
    with pytest.raises(ValueError, match=r"not in categories"):
        aggregate_with_model(df, np.array([[0.5, 0.5]]), classes=["dog", "bird"])
    with pytest.raises(ValueError, match="already in the data"):
        aggregate_with_model(df, np.array([[0.5, 0.5]]), classes=["cat", "dog"], name="x")
    with pytest.raises(ValueError, match="unknown method 'em'"):
        aggregate_with_model(df, np.array([[0.5, 0.5]]), classes=["cat", "dog"], method="em")
