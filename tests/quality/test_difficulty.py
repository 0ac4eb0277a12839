"""Tests for labkit.quality.difficulty (C-/X-perplexity, confusion classes, the table)."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labkit.quality import difficulty as dmod
from labkit.quality.difficulty import ConfusionClasses, c_perplexity, confusion_classes, difficulty_table, x_perplexity

FLOAT_COLUMNS = ["c_perplexity", "x_perplexity", "expected_entropy", "predictive_entropy",
                 "mutual_information", "variation_ratio", "margin", "label_prob"]
COLUMNS = FLOAT_COLUMNS + ["c_confusion", "x_confusion"]


# ----------------------------------------------------------------------------- helpers

def reference(probs, labels=None):
    """The formulas, written plainly in float64 (no chunks, no threads, no tricks)."""
    P = np.asarray(probs, dtype=np.float64)
    M, N, K = P.shape
    plogp = np.zeros_like(P)
    pos = P > 0
    plogp[pos] = P[pos] * np.log2(P[pos])
    H = -plogp.sum(-1)                                   # (M, N)
    expected = H.mean(0)
    pbar = P.mean(0)                                     # (N, K)
    q = np.zeros_like(pbar)
    q[pbar > 0] = pbar[pbar > 0] * np.log2(pbar[pbar > 0])
    predictive = -q.sum(-1)
    top = P.argmax(-1)                                   # (M, N), first max on ties
    votes = np.zeros((N, K), int)
    for m in range(M):
        votes[np.arange(N), top[m]] += 1
    srt = np.sort(pbar, axis=1)
    out = {
        "c_perplexity": 2.0 ** expected,
        "expected_entropy": expected,
        "predictive_entropy": predictive,
        "mutual_information": predictive - expected,
        "variation_ratio": 1 - votes.max(1) / M,
        "margin": srt[:, -1] - srt[:, -2],
        "c_values": -plogp.mean(0),                      # (N, K)
        "votes": votes,
    }
    if labels is not None:
        labels = np.asarray(labels)
        out["x_perplexity"] = (top != labels).mean(0)
        out["label_prob"] = pbar[np.arange(N), labels]
    return out


def random_pool(M, N, K, seed=0, dtype=np.float32, alpha=None):
    rng = np.random.default_rng(seed)
    alpha = np.full(K, 0.3) if alpha is None else alpha
    probs = rng.dirichlet(alpha, size=(M, N)).astype(dtype)
    return probs, rng.integers(0, K, N)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of about 64 samples, so small inputs go through many chunks and both threads."""
    monkeypatch.setattr(dmod, "_CHUNK_VALUES", 64 * 4 * 6)


# ----------------------------------------------------------------------------- hand-computed

def test_uniform_gives_k_and_one_hot_gives_one():
    uniform = np.full((3, 4, 7), 1 / 7)
    np.testing.assert_allclose(c_perplexity(uniform), 7.0, rtol=1e-12)
    np.testing.assert_allclose(c_perplexity(uniform.astype(np.float32)), 7.0, rtol=1e-6)
    one_hot = np.zeros((3, 4, 7))
    one_hot[:, np.arange(4), [0, 3, 6, 2]] = 1
    np.testing.assert_array_equal(c_perplexity(one_hot), 1.0)
    # uniform rows: every model votes class 0 (lowest id wins ties)
    np.testing.assert_array_equal(x_perplexity(uniform, [0, 0, 1, 6]), [0, 0, 1, 1])
    np.testing.assert_array_equal(x_perplexity(one_hot, [0, 3, 6, 2]), 0.0)
    np.testing.assert_array_equal(x_perplexity(one_hot, [1, 1, 1, 1]), 1.0)


def test_worked_example_two_models_three_classes():
    probs = np.array([
        #  sample 0            sample 1
        [[0.50, 0.25, 0.25], [1.0, 0.00, 0.00]],  # model A
        [[0.50, 0.50, 0.00], [0.5, 0.25, 0.25]],  # model B
    ])
    labels = [1, 0]
    # Sample 0: H_A = 0.5*1 + 0.25*2 + 0.25*2 = 1.5 bits, H_B = 0.5*1 + 0.5*1 = 1 bit.
    #           C = 2 ** ((1.5 + 1) / 2) = 2 ** 1.25. Both models vote class 0 (B: 0 and 1 tie,
    #           the lower id wins); label 1 -> X = 2/2 = 1.
    # Sample 1: H_A = 0 (one-hot), H_B = 1.5 -> C = 2 ** 0.75; both vote 0 = label -> X = 0.
    np.testing.assert_allclose(c_perplexity(probs), [2 ** 1.25, 2 ** 0.75], rtol=1e-12)
    np.testing.assert_array_equal(x_perplexity(probs, labels), [1.0, 0.0])

    # C-confusion of sample 0, mean over models of -p log2 p per class:
    #   class 0: (0.5 + 0.5) / 2 = 0.5; class 1: (0.5 + 0.5) / 2 = 0.5;
    #   class 2: (0.5 + 0) / 2 = 0.25
    # sample 1: class 0: (0 + 0.5) / 2 = 0.25, classes 1, 2: (0 + 0.5) / 2 = 0.25 -> ties, by id.
    top = confusion_classes(probs, labels, k=3)
    assert isinstance(top, ConfusionClasses)
    np.testing.assert_array_equal(top.c_classes, [[0, 1, 2], [0, 1, 2]])
    np.testing.assert_allclose(top.c_values, [[0.5, 0.5, 0.25], [0.25, 0.25, 0.25]])
    # X-confusion: sample 0 (label 1): both models voted class 0; sample 1: nobody erred.
    np.testing.assert_array_equal(top.x_classes, [[0, -1, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(top.x_values, [[2, 0, 0], [0, 0, 0]])

    table = difficulty_table(probs, labels, classes=["cat", "dog", "fox"])
    # Sample 0: mean distribution (0.5, 0.375, 0.125).
    pbar = [0.5, 0.375, 0.125]
    predictive = -sum(p * math.log2(p) for p in pbar)
    row = table.loc[0]
    assert row.expected_entropy == pytest.approx(1.25)
    assert row.predictive_entropy == pytest.approx(predictive)
    assert row.mutual_information == pytest.approx(predictive - 1.25)
    assert row.variation_ratio == 0.0          # both models vote class 0
    assert row.margin == pytest.approx(0.125)  # 0.5 - 0.375
    assert row.label_prob == pytest.approx(0.375)
    assert row.c_confusion == "cat|dog"
    assert row.x_confusion == "cat"
    # Sample 1: ties in C-confusion go to the lower ids; no model erred.
    assert table.loc[1, "c_confusion"] == "cat|dog"
    assert pd.isna(table.loc[1, "x_confusion"])


# ----------------------------------------------------------------------------- peers and inputs

@pytest.mark.parametrize("K", [3, 10, 70])  # 70: the code path for many classes
def test_matches_reference(K, small_chunks):
    probs, labels = random_pool(4, 700, K, seed=K, dtype=np.float64)
    ref = reference(probs, labels)
    table = difficulty_table(probs, labels)
    for col in FLOAT_COLUMNS:
        np.testing.assert_allclose(table[col].to_numpy(), ref[col], rtol=1e-12, atol=1e-12,
                                   err_msg=col)
    np.testing.assert_allclose(c_perplexity(probs), ref["c_perplexity"], rtol=1e-12)
    np.testing.assert_array_equal(x_perplexity(probs, labels), ref["x_perplexity"])
    top = confusion_classes(probs, labels, k=4)
    order = np.argsort(-ref["c_values"], axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(top.c_classes, order)
    np.testing.assert_allclose(top.c_values, np.take_along_axis(ref["c_values"], order, 1),
                               rtol=1e-12)
    # the table's confusion columns agree with confusion_classes
    pairs = [f"{min(a, b)}|{max(a, b)}" for a, b in top.c_classes[:, :2]]
    assert table["c_confusion"].astype(str).tolist() == pairs
    x1 = [c if c >= 0 else None for c in top.x_classes[:, 0]]
    got = [None if pd.isna(c) else c for c in table["x_confusion"]]
    assert got == x1


@pytest.mark.parametrize("M, N", [(5, 20_000), (20, 2_000)])  # 20: sums over models in float64
def test_float32_matches_float64_reference(M, N):
    probs, labels = random_pool(M, N, 10, seed=1, dtype=np.float32)
    ref = reference(probs.astype(np.float64), labels)
    table = difficulty_table(probs, labels)
    np.testing.assert_allclose(c_perplexity(probs), ref["c_perplexity"], rtol=1e-6)
    for col in FLOAT_COLUMNS:
        np.testing.assert_allclose(table[col].to_numpy(), ref[col], rtol=1e-6, atol=1e-6,
                                   err_msg=col)


@pytest.mark.parametrize("K", [5, 70])
def test_table_and_confusion_classes_break_ties_alike(K, small_chunks):
    rng = np.random.default_rng(K)
    counts = rng.integers(0, 3, (4, 300, K)).astype(float) + (rng.random((4, 300, 1)) < 0.1)
    counts[..., 0] += counts.sum(-1) == 0
    probs = counts / counts.sum(-1, keepdims=True)  # few distinct values: ties everywhere
    labels = rng.integers(0, K, 300)
    top = confusion_classes(probs, labels, k=2)
    table = difficulty_table(probs, labels)
    pairs = [f"{min(a, b)}|{max(a, b)}" if b >= 0 else "nan" for a, b in top.c_classes]
    assert table["c_confusion"].astype(str).tolist() == pairs
    x1 = [c if c >= 0 else None for c in top.x_classes[:, 0]]
    assert [None if pd.isna(c) else c for c in table["x_confusion"]] == x1
    np.testing.assert_array_equal(table["x_perplexity"], x_perplexity(probs, labels))


def test_array_list_and_generator_agree(small_chunks):
    probs, labels = random_pool(3, 1000, 6, seed=2)
    # the same float32 values as an array, a list and a generator of per-model arrays, and as
    # nested Python lists (computed in float64); iterables add models up one at a time in
    # float64, an array sums a few models in float32 first: equal to float32 precision
    makers = [(list, 1e-6), (lambda p: (m for m in p), 1e-6),
              (lambda p: [m.tolist() for m in p], 1e-6)]
    for make, rtol in makers:
        np.testing.assert_allclose(c_perplexity(make(probs)), c_perplexity(probs), rtol=rtol)
        np.testing.assert_array_equal(x_perplexity(make(probs), labels),
                                      x_perplexity(probs, labels))
        a, b = confusion_classes(make(probs), labels, k=3), confusion_classes(probs, labels, k=3)
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=rtol)
        pd.testing.assert_frame_equal(difficulty_table(make(probs), labels),
                                      difficulty_table(probs, labels), rtol=rtol, atol=1e-7)


def test_from_logits_equals_softmax_first():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=4.0, size=(3, 50, 5))
    logits[0, 0] = [1000.0, 999.0, -1000.0, 0.0, 3.0]  # would overflow a naive softmax
    z = np.exp(logits - logits.max(-1, keepdims=True))
    probs = z / z.sum(-1, keepdims=True)
    labels = rng.integers(0, 5, 50)
    np.testing.assert_allclose(c_perplexity(logits, from_logits=True), c_perplexity(probs),
                               rtol=1e-12)
    np.testing.assert_array_equal(x_perplexity(logits, labels, from_logits=True),
                                  x_perplexity(probs, labels))
    pd.testing.assert_frame_equal(difficulty_table(logits, labels, from_logits=True),
                                  difficulty_table(probs, labels), rtol=1e-12)
    gen = c_perplexity((m for m in logits.astype(np.float32)), from_logits=True)
    np.testing.assert_allclose(gen, c_perplexity(probs), rtol=1e-5)


def test_memory_mapped_and_integer_inputs(tmp_path):
    probs, labels = random_pool(3, 500, 4, seed=5)
    np.save(tmp_path / "probs.npy", probs)
    mapped = np.load(tmp_path / "probs.npy", mmap_mode="r")
    np.testing.assert_array_equal(c_perplexity(mapped), c_perplexity(probs))
    one_hot = np.eye(4, dtype=np.int8)[labels][None].repeat(2, axis=0)  # (2, 500, 4) of 0/1
    np.testing.assert_array_equal(c_perplexity(one_hot), 1.0)
    np.testing.assert_array_equal(x_perplexity(one_hot, labels), 0.0)


def test_empty_sample_axis():
    probs = np.full((2, 0, 4), 0.25)
    assert c_perplexity(probs).shape == (0,)
    assert confusion_classes(probs, np.zeros(0, int)).x_classes.shape == (0, 4)
    assert difficulty_table(probs).shape == (0, len(COLUMNS))


def test_near_one_rows_stay_in_range():
    probs = np.array([[[1.0005, 0.0, 0.0]], [[0.3336, 0.3336, 0.3336]]], dtype=np.float32)
    c = c_perplexity(probs)
    assert 1.0 <= c[0] <= 3.0


# ----------------------------------------------------------------------------- the table

def test_table_columns_index_and_types():
    probs, labels = random_pool(3, 8, 4, seed=4)
    table = difficulty_table(probs, labels, classes=list("abcd"),
                             sample_ids=[f"img{i}.png" for i in range(8)])
    assert list(table.columns) == COLUMNS
    assert table.index.name == "sample" and table.index[0] == "img0.png"
    assert all(table[c].dtype == np.float64 for c in FLOAT_COLUMNS)
    assert isinstance(table["c_confusion"].dtype, pd.CategoricalDtype)
    assert list(table["x_confusion"].cat.categories) == list("abcd")
    pairs = {f"{a}|{b}" for a in "abcd" for b in "abcd" if a < b}
    assert set(table["c_confusion"].dropna()) <= pairs
    assert ((table.c_perplexity >= 1) & (table.c_perplexity <= 4)).all()
    assert (table.mutual_information >= 0).all()

    plain = difficulty_table(probs)
    assert isinstance(plain.index, pd.RangeIndex) and plain.index.name == "sample"
    assert plain[["x_perplexity", "label_prob", "x_confusion"]].isna().all().all()
    assert plain[["c_perplexity", "margin", "c_confusion"]].notna().all().all()
    assert list(plain["x_confusion"].cat.categories) == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- properties

@st.composite
def pools(draw, distinct=False):
    M, N, K = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(2, 6))
    elements = st.floats(0.001, 1) if distinct else st.floats(0, 1)
    raw = draw(arrays(np.float64, (M, N, K), elements=elements, unique=distinct))
    raw = raw + (raw.sum(-1, keepdims=True) == 0)  # an all-zero row becomes uniform
    probs = raw / raw.sum(-1, keepdims=True)
    labels = draw(arrays(np.int64, (N,), elements=st.integers(0, K - 1)))
    return probs, labels


PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(pools())
def test_scores_in_range(pool):
    probs, labels = pool
    M, _, K = probs.shape
    c, x = c_perplexity(probs), x_perplexity(probs, labels)
    assert ((c >= 1) & (c <= K)).all()
    assert ((x >= 0) & (x <= 1)).all()
    np.testing.assert_allclose(x * M, np.round(x * M), atol=1e-12)
    table = difficulty_table(probs, labels)
    assert (table.mutual_information >= 0).all()
    assert (table.margin.between(0, 1)).all() and table.variation_ratio.between(0, 1).all()


@PROPS
@given(pools(), st.randoms())
def test_invariant_under_permuting_models(pool, rnd):
    probs, labels = pool
    perm = list(range(probs.shape[0]))
    rnd.shuffle(perm)
    shuffled = probs[perm]
    np.testing.assert_allclose(c_perplexity(shuffled), c_perplexity(probs), rtol=1e-12)
    np.testing.assert_array_equal(x_perplexity(shuffled, labels), x_perplexity(probs, labels))
    pd.testing.assert_frame_equal(difficulty_table(shuffled, labels),
                                  difficulty_table(probs, labels), rtol=1e-9, atol=1e-12)


@PROPS
@given(pools(distinct=True), st.randoms())
def test_invariant_under_permuting_classes_with_labels(pool, rnd):
    probs, labels = pool
    # with a tie for a model's top class the vote goes to the lowest id, which a
    # permutation changes; away from ties the scores must not move
    top = probs.max(-1, keepdims=True)
    assume(((probs == top).sum(-1) == 1).all())
    K = probs.shape[-1]
    perm = list(range(K))
    rnd.shuffle(perm)
    inverse = np.argsort(perm)              # old class id -> new class id
    new_probs, new_labels = probs[..., perm], inverse[labels]
    np.testing.assert_allclose(c_perplexity(new_probs), c_perplexity(probs), rtol=1e-12)
    np.testing.assert_array_equal(x_perplexity(new_probs, new_labels),
                                  x_perplexity(probs, labels))
    names = [f"c{k}" for k in range(K)]
    a = difficulty_table(probs, labels, classes=names)
    b = difficulty_table(new_probs, new_labels, classes=[names[k] for k in perm])
    pd.testing.assert_frame_equal(a[FLOAT_COLUMNS], b[FLOAT_COLUMNS], rtol=1e-9, atol=1e-12)
    # the wrong class with most votes is the same class, unless two wrong classes tie
    wrong = reference(probs)["votes"].copy()
    wrong[np.arange(len(labels)), labels] = 0
    unique = (wrong == wrong.max(1, keepdims=True)).sum(1) == 1
    assert a.x_confusion[unique].astype(object).equals(b.x_confusion[unique].astype(object))


def test_ties_lower_class_first_and_k_capped():
    probs = np.array([[[0.2, 0.3, 0.3, 0.2]], [[0.2, 0.3, 0.3, 0.2]]])
    top = confusion_classes(probs, k=10)
    assert top.c_classes.shape == (1, 4) and top.x_classes is None
    # -p log2 p: 0.3 -> 0.521, 0.2 -> 0.464
    np.testing.assert_array_equal(top.c_classes, [[1, 2, 0, 3]])
    three = np.array([[[0.6, 0.4, 0.0]], [[0.0, 0.4, 0.6]], [[0.4, 0.6, 0.0]]])
    x = confusion_classes(three, [1], k=2)
    # votes: class 0 once, class 2 once, class 1 (the label) once; the label is not listed
    np.testing.assert_array_equal(x.x_classes, [[0, 2]])
    np.testing.assert_array_equal(x.x_values, [[1, 1]])


# ----------------------------------------------------------------------------- bad input

def bad(probs=None, labels=None, **kw):
    probs = np.full((5, 100, 10), 0.1, np.float32) if probs is None else probs
    return difficulty_table(probs, labels, **kw)


@pytest.mark.parametrize("labels, message", [
    (np.r_[np.zeros(99, int), 9], r"probs has shape \(5, 100, 9\) but labels has values up to 9; "
                                  r"expected K=10 classes"),
])
def test_label_range_message_from_the_style_guide(labels, message):
    with pytest.raises(ValueError, match=message):
        x_perplexity(np.full((5, 100, 9), 1 / 9, np.float32), labels)


@pytest.mark.parametrize("labels, message", [
    (np.zeros(99, int), r"probs has shape \(5, 100, 10\) \(N=100 samples\) but labels has shape "
                        r"\(99,\); expected one label per sample, shape \(100,\)"),
    (np.zeros((100, 1), int), r"labels has shape \(100, 1\); expected one label per sample"),
    (np.full(100, -1), r"labels has values down to -1; expected class indices in \[0, 10\)"),
    (np.zeros(100), r"labels has dtype float64; expected integer class indices 0\.\.9 "
                    r"\(use labels\.astype\(int\)"),
    (np.array(["cat"] * 100), r"labels has dtype <U3; .*map class names to indices"),
])
def test_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        bad(labels=labels)


def _with(index, value, shape=(5, 100, 10)):
    probs = np.full(shape, 0.1, np.float32)
    probs[index] = value
    return probs


@pytest.mark.parametrize("probs, message", [
    (np.full((100, 10), 0.1), r"probs has shape \(100, 10\); expected \(M models, N samples, "
                              r"K classes\).*For a single model use probs\[None\]"),
    (np.full((0, 100, 10), 0.1), r"expected at least one model"),
    (np.ones((5, 100, 1)), r"K=1 class\(es\); expected at least 2 classes"),
    (np.full((2, 3, 4), "x"), r"probs has dtype <U1; expected real numbers"),
    (_with((2, 13, 4), np.nan), r"probs\[2, 13\] has nan for class 4; expected finite"),
    (_with((1, 7, 0), np.inf), r"probs\[1, 7\] has inf for class 0; expected finite"),
    (_with((3, 5, 2), -0.01), r"probs\[3, 5\] has the negative value -0\.01 for class 2; expected "
                              r"probabilities in \[0, 1\]\. If these are logits.*from_logits=True"),
    (_with((0, 42, 9), 0.3), r"probs\[0, 42\] sums to 1\.2; expected each model's probabilities "
                             r"for a sample to sum to 1 \(tolerance 0\.001\)\. Normalise"),
    (_with((0, 42, 9), 0.102), r"probs\[0, 42\] sums to 1\.002"),
])
def test_bad_probabilities(probs, message):
    with pytest.raises(ValueError, match=message):
        bad(probs)


def test_within_tolerance_is_accepted():
    # probs[0, 42] sums to 1.0005 (e.g. rounded float32 outputs): inside the 1e-3 tolerance, so
    # it is scored, not rejected. Every other row is uniform over K=10 classes (C = 10).
    out = c_perplexity(_with((0, 42, 9), 0.1005))
    assert out.shape == (100,) and out.dtype == np.float64
    np.testing.assert_allclose(out, 10.0, rtol=1e-6)
    # Unclipped, sample 42 would score 2 ** mean(H) = 10.0013 > K (its row has a little more
    # than one unit of mass): a row off by up to the tolerance must still give C in [1, K].
    assert reference(_with((0, 42, 9), 0.1005))["c_perplexity"][42] > 10.001
    assert out.max() <= 10.0 and out[42] == 10.0


def test_first_bad_chunk_is_reported(small_chunks):
    probs = np.full((2, 1000, 4), 0.25)
    probs[1, 900] = [1, 1, 1, 1]
    probs[0, 300] = [0.5, 0.5, 0.5, 0.5]
    for _ in range(5):
        with pytest.raises(ValueError, match=r"probs\[0, 300\] sums to 2;"):
            c_perplexity(probs)


@pytest.mark.parametrize("models, message", [
    ([], r"probs is empty; expected at least one model"),
    ([np.full((4, 3), 1 / 3), np.full((5, 3), 1 / 3)],
     r"probs\[1\] has shape \(5, 3\) but probs\[0\] has shape \(4, 3\); expected every model"),
    ([np.full(3, 1 / 3)], r"probs\[0\] has shape \(3,\); expected an \(N samples, K classes\)"),
    ([np.full((4, 3), 1 / 3), np.full((4, 3), 0.5)],
     r"probs\[1\]\[0\] sums to 1\.5; expected"),
])
def test_bad_iterables(models, message):
    with pytest.raises(ValueError, match=message):
        c_perplexity(iter(models))


def test_bad_iterable_labels_and_types():
    with pytest.raises(ValueError, match=r"probs\[0\] has shape \(4, 3\) but labels has values "
                                         r"up to 3; expected K=4 classes"):
        x_perplexity([np.full((4, 3), 1 / 3)], [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"probs has type int; expected an \(M, N, K\) array"):
        c_perplexity(3)


def test_bad_logits():
    logits = np.zeros((2, 3, 4))
    logits[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"probs\[1, 2\] has nan for class 3; expected finite "
                                         r"logits"):
        c_perplexity(logits, from_logits=True)
    c_perplexity(-np.ones((2, 3, 4)), from_logits=True)  # negative logits are fine


@pytest.mark.parametrize("kw, message", [
    ({"classes": ["a", "b"]}, r"classes has 2 names but probs has K=10 classes"),
    ({"classes": list("abcdefghia")}, r"classes has duplicate names, e\.g\. 'a'"),
    ({"classes": ["a|b"] + list("bcdefghij")}, r"class name 'a\|b' contains '\|'"),
    ({"sample_ids": range(99)}, r"sample_ids has 99 ids but probs has N=100 samples"),
    ({"sample_ids": [0] * 100}, r"sample_ids has duplicates, e\.g\. 0; expected unique ids"),
])
def test_bad_names(kw, message):
    with pytest.raises(ValueError, match=message):
        bad(**kw)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k(k):
    with pytest.raises(ValueError, match=r"k is .*; expected a positive integer"):
        confusion_classes(np.full((2, 3, 4), 0.25), k=k)


def test_no_heavy_imports():
    code = ("import sys, numpy as np; import labkit.quality.difficulty as d; "
            "d.c_perplexity(np.full((2, 3, 4), .25)); "
            "d.confusion_classes(np.full((2, 3, 4), .25)); "
            "print(sorted(m for m in ('pandas', 'torch', 'ipywidgets', 'papermill') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
