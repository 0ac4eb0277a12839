"""labkit.quality.issues: cleanlab's confident learning combined with X-perplexity.

Cross-checks against cleanlab itself (the peer) and labkit's difficulty scores on random
pools, the ranking contract, the candidate rules, the reasons, input validation, and a
simulated pool with planted label flips.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from cleanlab.count import get_confident_thresholds
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from labkit.quality.difficulty import c_perplexity, x_perplexity
from labkit.quality.issues import ISSUE_COLUMNS, label_issues


def simulated_pool(N=600, K=6, M=5, flip_rate=0.1, skill=2.5, seed=0):
    """M noisy models that mostly know the true class, and labels with planted flips."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, K, N)
    logits = rng.normal(0, 1, (M, N, K))
    logits[:, np.arange(N), truth] += skill + rng.normal(0, 1, (1, N))  # hard samples are hard for all
    probs = np.exp(logits)
    probs /= probs.sum(-1, keepdims=True)
    flipped = np.zeros(N, bool)
    flipped[rng.choice(N, int(flip_rate * N), replace=False)] = True
    labels = truth.copy()
    labels[flipped] = (truth[flipped] + rng.integers(1, K, flipped.sum())) % K
    return probs, labels, truth, flipped


@pytest.fixture(scope="module")
def pool():
    return simulated_pool()


def test_columns_index_and_ranking(pool):
    probs, labels, *_ = pool
    out = label_issues(probs, labels)
    assert tuple(out.columns) == ISSUE_COLUMNS
    assert out.index.name == "sample"
    assert len(out) > 0
    assert np.all(np.diff(out["score"].to_numpy()) <= 0), "candidates must be ranked by score"
    expected = (out.x_perplexity + 1 - out.label_prob) / 2
    np.testing.assert_allclose(out.score, expected, rtol=0, atol=1e-12)
    assert (out.n_models == probs.shape[0]).all()


def test_cleanlab_flags_and_self_confidence_match_cleanlab(pool):
    probs, labels, *_ = pool
    out = label_issues(probs, labels, return_all=True).sort_index()
    pbar = probs.mean(0)
    pbar /= pbar.sum(1, keepdims=True)
    np.testing.assert_array_equal(out.cl_flag.to_numpy(), find_label_issues(labels, pbar, n_jobs=1))
    np.testing.assert_allclose(out.label_prob, get_label_quality_scores(labels, pbar), atol=1e-9)


def test_perplexities_match_labkit_difficulty(pool):
    probs, labels, *_ = pool
    out = label_issues(probs, labels, return_all=True).sort_index()
    np.testing.assert_allclose(out.x_perplexity, x_perplexity(probs, labels), atol=1e-12)
    np.testing.assert_allclose(out.c_perplexity, c_perplexity(probs), atol=1e-9)


def test_suggestion_is_the_best_other_class(pool):
    probs, labels, *_ = pool
    out = label_issues(probs, labels, return_all=True).sort_index()
    pbar = probs.mean(0)
    masked = pbar.copy()
    masked[np.arange(len(labels)), labels] = -1
    np.testing.assert_array_equal(out.suggested_label.astype(int), masked.argmax(1))
    assert (out.suggested_label.astype(int) != out.given_label.astype(int)).all()
    votes = (probs.argmax(-1) == masked.argmax(1)).sum(0)
    np.testing.assert_array_equal(out.votes, votes)


def test_candidate_rules_are_union_intersection_and_single_flags(pool):
    probs, labels, *_ = pool
    full = label_issues(probs, labels, return_all=True)
    cl, x = set(full.index[full.cl_flag]), set(full.index[full.x_perplexity >= 0.8])  # the default
    assert cl and x and cl != x, "the fixture should make the two flags differ"
    assert set(label_issues(probs, labels, candidates="either").index) == cl | x
    assert set(label_issues(probs, labels, candidates="both").index) == cl & x
    assert set(label_issues(probs, labels, candidates="cleanlab").index) == cl
    assert set(label_issues(probs, labels, candidates="x_perplexity").index) == x
    strict = label_issues(probs, labels, candidates="x_perplexity", x_threshold=1.0)
    assert set(strict.index) == set(full.index[full.x_perplexity == 1.0])


def test_return_all_lists_candidates_first(pool):
    probs, labels, *_ = pool
    full = label_issues(probs, labels, return_all=True)
    assert len(full) == len(labels) and full.index.is_unique
    cand = full.candidate.to_numpy()
    assert cand[:cand.sum()].all() and not cand[cand.sum():].any()
    pd.testing.assert_frame_equal(full[full.candidate].drop(columns="candidate"),
                                  label_issues(probs, labels))


def test_finds_planted_flips_well_above_chance():
    probs, labels, truth, flipped = simulated_pool(N=1000, seed=3)
    out = label_issues(probs, labels)
    hits = flipped[out.index.to_numpy()].sum()
    precision, recall = hits / len(out), hits / flipped.sum()
    # seeds 0-4 give precision 0.64-0.68, recall 0.96-0.99; chance is 0.1
    assert precision >= 0.5 and recall >= 0.85, (precision, recall)
    # the suggestion is the true class for most flips found
    found = out.index.to_numpy()[flipped[out.index.to_numpy()]]
    agree = (out.loc[found, "suggested_label"].astype(int).to_numpy() == truth[found]).mean()
    assert agree >= 0.8


def test_names_ids_and_reasons():
    cat, dog, sure_dog = [0.9, 0.1], [0.2, 0.8], [0.1, 0.9]
    probs = np.array([[cat, cat, cat, dog, dog, sure_dog]] * 3)
    out = label_issues(probs, [0, 0, 0, 1, 1, 0], classes=["cat", "dog"],
                       sample_ids=[f"img{i}" for i in range(6)])
    assert list(out.index) == ["img5"]
    row = out.iloc[0]
    assert (row.given_label, row.suggested_label, row.votes) == ("cat", "dog", 3)
    assert row.reason == ("cleanlab flags it (p('cat') = 0.10, below the class threshold 0.70); "
                          "3/3 models vote 'dog'")
    # thresholds in the reason are cleanlab's
    thr = get_confident_thresholds(np.array([0, 0, 0, 1, 1, 0]), probs.mean(0))
    assert f"{thr[0]:.2f}" in row.reason


def test_reason_for_a_split_vote_and_an_unflagged_candidate():
    # sample 0: labelled 0; two models say 1, one says 2, one agrees
    p0 = [[0.2, 0.7, 0.1], [0.2, 0.7, 0.1], [0.3, 0.1, 0.6], [0.8, 0.1, 0.1]]
    rest = [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]] * 4
    probs = np.array([[p] + rest for p in p0])
    labels = np.array([0] + [0, 1, 2] * 4)
    out = label_issues(probs, labels, candidates="x_perplexity", x_threshold=0.75, return_all=True)
    reason = out.loc[0, "reason"]
    assert "3/4 models vote against 0, 2 of them for 1" in reason
    assert out.loc[0, "candidate"]
    assert out.loc[1, "reason"].endswith("all 4 models vote 0")


def test_iterable_of_models_equals_array(pool):
    probs, labels, *_ = pool
    pd.testing.assert_frame_equal(label_issues(probs, labels),
                                  label_issues((m for m in probs), labels))


@pytest.mark.parametrize("kwargs, match", [
    (dict(labels=np.zeros(5, int)), r"labels has shape \(5,\); expected one label per sample"),
    (dict(labels=np.full(600, 6)), r"labels has values up to 6; expected K=7"),
    (dict(labels=np.zeros(600)), r"labels has dtype float64; expected integer class indices"),
    (dict(classes=list("abc")), r"classes has 3 names but probs has K=6"),
    (dict(candidates="all"), r"candidates is 'all'; expected one of"),
    (dict(x_threshold=0), r"x_threshold is 0; expected a number in \(0, 1\]"),
    (dict(sample_ids=[1] * 600), r"sample_ids has duplicates"),
])
def test_bad_input_is_explained(pool, kwargs, match):
    probs, labels, *_ = pool
    args = {"labels": labels, **kwargs}
    with pytest.raises(ValueError, match=match):
        label_issues(probs, **args)


def test_bad_probabilities_are_explained(pool):
    probs, labels, *_ = pool
    with pytest.raises(ValueError, match=r"probs has shape \(600, 6\); expected \(M models"):
        label_issues(probs[0], labels)
    bad = probs.copy()
    bad[1, 7, 2] = np.nan
    with pytest.raises(ValueError, match=r"probs\[1, 7\] has nan for class 2"):
        label_issues(bad, labels)


def test_stays_free_of_torch():
    code = ("import sys, numpy as np; from labkit.quality.issues import label_issues; "
            "p = np.full((2, 20, 2), 0.5); label_issues(p, np.arange(20) % 2); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
