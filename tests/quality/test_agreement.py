"""Agreement statistics: published worked examples, peers on random data, properties,
the vectorised bootstrap, CIFAR-10H, and the error messages."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from labkit.quality._agreement import count_stat
from labkit.quality.agreement import (
    LEVELS,
    METRICS,
    AgreementInterval,
    cohen_kappa,
    confidence_interval,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    pairwise,
    per_class_agreement,
    percent_agreement,
    worker_vs_rest,
)
from labkit.quality.agreement_ci import _resample_weights, _unique_rows
from labkit.quality.layouts import reliability_to_long, to_counts

# peers warn where a statistic is undefined (0/0); ours returns NaN quietly
pytestmark = [
    pytest.mark.filterwarnings("ignore:invalid value encountered in scalar divide:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:.*cohen_kappa_score. is undefined"),
    pytest.mark.filterwarnings("ignore:A single label was found"),
]
nan = np.nan
CIFAR10H = Path(__file__).parents[2].parent / "shared" / "data" / "cifar10h" / "cifar10h-counts.npy"
FAST = settings(max_examples=40, deadline=None)

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", pp. 3-4 and 6-7:
# 4 observers x 12 units with missing values. Published: nominal .743, ordinal .815,
# interval .849, ratio .797 (the krippendorff package's doctests reproduce .743, .815, .797).
K2011 = [[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
         [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
         [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
         [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]]
# krippendorff package docstring (from Wikipedia's worked example): 3 coders x 15 units,
# nominal 0.691358, interval 0.810845.
WIKI = [[nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
        [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
        [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4]]
# Gwet (2014), Handbook of Inter-Rater Reliability, 4 raters x 12 subjects; irrCAC 0.4.4's
# doctest (dataset raw_4raters): AC1 0.77544, Fleiss' kappa 0.76117, P_a 0.81818.
GWET2014 = [[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, nan],
            [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 3],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]]
# Fleiss (1971), Table 1: 30 patients x 6 psychiatrists, 5 diagnoses (raw ratings as in
# statsmodels' test_inter_rater.py, `diagnoses`). Published: kappa = .430 (R irr's
# kappam.fleiss: 0.4302445); category-specific kappas .245, .245, .520, .471, .566.
FLEISS1971 = np.array([
    [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5],
    [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4],
    [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
    [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5], [3, 3, 3, 3, 3, 5],
    [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
    [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
    [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4],
    [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5]])
# Wikipedia's Fleiss example (statsmodels test_fleiss_kappa): 10 subjects x 14 raters, 0.210.
WIKI_FLEISS = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
               [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]


# --------------------------------------------------------------------- strategies
@st.composite
def reliability(draw, min_workers=2, max_workers=5, max_tasks=25, missing=True,
                values=(0.0, 1.0, 2.0, 3.5, 7.0)):
    """Reliability data (M, N) with NaN for missing, at least one task labelled twice and
    at least two distinct values in use."""
    m = draw(st.integers(min_workers, max_workers))
    n = draw(st.integers(2, max_tasks))
    domain = draw(st.lists(st.sampled_from(values), min_size=2, max_size=len(values), unique=True))
    elements = st.sampled_from(domain + [nan] if missing else domain)
    data = draw(arrays(float, (m, n), elements=elements))
    present = ~np.isnan(data)
    assume((present.sum(0) >= 2).any() and len(np.unique(data[present])) >= 2)
    return data


def close(a: float, b: float, tol: float = 1e-9) -> bool:
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= tol


# ---------------------------------------------------------- published reference values
@pytest.mark.parametrize("level, published", [("nominal", 0.743), ("ordinal", 0.815),
                                              ("interval", 0.849), ("ratio", 0.797)])
def test_alpha_krippendorff_2011_example(level, published):
    assert round(krippendorff_alpha(K2011, level=level), 3) == published


def test_alpha_wikipedia_example_as_in_krippendorff_package():
    assert round(krippendorff_alpha(WIKI), 6) == 0.691358
    assert round(krippendorff_alpha(WIKI, level="interval"), 6) == 0.810845
    # the same units given as value counts (krippendorff package doctest)
    counts = to_counts(np.asarray(WIKI, float), categories=[1.0, 2.0, 3.0, 4.0])
    assert round(krippendorff_alpha(counts=counts.to_numpy()), 6) == 0.691358


def test_alpha_ordinal_strings_need_an_order():
    # krippendorff package doctest: the K2011 data as words, ordinal 0.815 and nominal 0.743
    words = {1: "very low", 2: "low", 3: "mid", 4: "high", 5: "very high"}
    data = np.array([[words.get(v) for v in row] for row in K2011], dtype=object)
    scale = ["very low", "low", "mid", "high", "very high"]
    assert round(krippendorff_alpha(data, level="ordinal", categories=scale), 3) == 0.815
    assert round(krippendorff_alpha(data), 3) == 0.743


def test_fleiss_1971_example():
    counts, _ = aggregate_raters(FLEISS1971)
    assert round(fleiss_kappa(counts=counts), 7) == 0.4302445
    assert round(fleiss_kappa(FLEISS1971.T), 7) == 0.4302445  # raters x subjects
    per_class = per_class_agreement(FLEISS1971.T)
    np.testing.assert_allclose(per_class["kappa"].round(3), [0.245, 0.245, 0.520, 0.471, 0.566])
    assert list(per_class.index) == [1, 2, 3, 4, 5]
    assert round(fleiss_kappa(counts=WIKI_FLEISS), 3) == 0.210


def test_gwet_2014_example_with_missing_ratings():
    assert round(gwet_ac1(GWET2014), 5) == 0.77544
    assert round(fleiss_kappa(GWET2014), 5) == 0.76117
    assert round(percent_agreement(GWET2014), 5) == 0.81818
    # q counts categories nobody used (irrCAC 0.4.4, categories=[1..6]: 0.7855267812)
    assert round(gwet_ac1(GWET2014, categories=[1, 2, 3, 4, 5, 6]), 10) == 0.7855267812


def test_long_dataframe_gives_the_same_as_reliability_data():
    long = reliability_to_long(K2011, workers=["ann", "bo", "cy", "di"])
    long["label"] = long["label"].astype(int)
    for level in LEVELS:
        expected = krippendorff_alpha(K2011, level=level)
        assert krippendorff_alpha(long, level=level) == pytest.approx(expected, abs=1e-12)
    for fn in (fleiss_kappa, gwet_ac1, percent_agreement):
        assert fn(long) == pytest.approx(fn(K2011), abs=1e-12)


# ---------------------------------------------------------------- peers, random data
@FAST
@given(reliability(), st.sampled_from(LEVELS))
def test_alpha_equals_krippendorff_package(data, level):
    ours = krippendorff_alpha(data, level=level)
    theirs = float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
    assert close(ours, theirs)


@FAST
@given(reliability(), st.sampled_from(LEVELS))
def test_alpha_from_counts_equals_krippendorff_value_counts(data, level):
    counts = to_counts(data)
    values = counts.columns.to_numpy(float)
    ours = krippendorff_alpha(counts=counts, level=level)  # DataFrame columns are the values
    theirs = float(krippendorff.alpha(value_counts=counts.to_numpy(), value_domain=values,
                                      level_of_measurement=level))
    assert close(ours, theirs)


@FAST
@given(reliability(missing=False, max_workers=7))
def test_fleiss_equals_statsmodels_when_every_task_has_all_workers(data):
    counts = to_counts(data).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        assert close(fleiss_kappa(data), float(sm_fleiss_kappa(counts)))
        assert close(fleiss_kappa(counts=counts), float(sm_fleiss_kappa(counts)))


@FAST
@given(st.integers(2, 40), st.integers(2, 5), st.integers(0, 2 ** 32 - 1),
       st.sampled_from([None, "linear", "quadratic"]))
def test_cohen_equals_sklearn(n, k, seed, weights):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, k, n), rng.integers(0, k, n)
    assume(len(np.union1d(a, b)) >= 2)
    assert close(cohen_kappa(a, b, weights=weights), cohen_kappa_score(a, b, weights=weights))
    # string labels, missing pairs dropped
    sa, sb = np.array(list("abcde"), dtype=object)[a], np.array(list("abcde"), dtype=object)[b]
    sa = np.append(sa, None)
    sb = np.append(sb, "a")
    assert close(cohen_kappa(sa, sb, weights=weights), cohen_kappa_score(a, b, weights=weights))


def naive_gwet_parts(data, q=None):
    """Gwet (2014) ch. 2 formulas, task by task: P_a, pi_k."""
    data = np.asarray(data, float)
    cats = np.unique(data[~np.isnan(data)])
    units = [col[~np.isnan(col)] for col in data.T]
    units = [u for u in units if len(u) >= 1]
    pairs = [sum(np.sum(u == c) * (np.sum(u == c) - 1) for c in cats) / (len(u) * (len(u) - 1))
             for u in units if len(u) >= 2]
    pi = np.array([np.mean([np.sum(u == c) / len(u) for u in units]) for c in cats])
    return np.mean(pairs), pi, (q or len(cats))


@FAST
@given(reliability())
def test_gwet_fleiss_percent_equal_task_by_task_formulas(data):
    pa, pi, q = naive_gwet_parts(data)
    assert close(percent_agreement(data), pa)
    pe = float((pi * (1 - pi)).sum() / (q - 1))
    assert close(gwet_ac1(data), (pa - pe) / (1 - pe))
    pe = float((pi ** 2).sum())
    assert close(fleiss_kappa(data), (pa - pe) / (1 - pe) if pe < 1 else nan)


@FAST
@given(reliability(missing=False, max_workers=6))
def test_per_class_kappa_is_fleiss_of_the_category_against_the_rest(data):
    counts = to_counts(data).to_numpy()
    result = per_class_agreement(counts=counts)
    for k in range(counts.shape[1]):
        binary = np.column_stack([counts[:, k], counts.sum(1) - counts[:, k]])
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = float(sm_fleiss_kappa(binary))
        assert close(result["kappa"].iloc[k], expected if np.isfinite(expected) else nan)
    assert ((result["specific_agreement"].dropna() >= 0) & (result["specific_agreement"].dropna() <= 1)).all()
    assert result["n_labels"].sum() == counts.sum()


@FAST
@given(reliability(max_workers=4), st.sampled_from(METRICS))
def test_pairwise_equals_the_two_worker_statistic(data, metric):
    table = pairwise(data, metric=metric)
    cats = np.unique(data[~np.isnan(data)])
    for i in range(data.shape[0]):
        for j in range(data.shape[0]):
            shared = ~np.isnan(data[i]) & ~np.isnan(data[j])
            if shared.sum() < 2:
                assert np.isnan(table.iloc[i, j])
                continue
            pair = data[[i, j]][:, shared]
            if metric == "cohen_kappa":
                with np.errstate(divide="ignore", invalid="ignore"):
                    # sklearn takes class ids, not 3.5: pass positions on the shared scale
                    ids = np.searchsorted(cats, pair)
                    expected = cohen_kappa_score(ids[0], ids[1], labels=np.arange(len(cats)),
                                                 weights="linear")
                assert close(pairwise(data, metric=metric, weights="linear").iloc[i, j], expected)
                expected = cohen_kappa(pair[0], pair[1])
            elif metric == "gwet_ac1":
                expected = gwet_ac1(pair, categories=cats)
            elif metric == "percent_agreement":
                expected = percent_agreement(pair)
            elif len(np.unique(pair)) < 2:
                expected = nan  # chance agreement is 1
            elif metric == "krippendorff_alpha":
                expected = float(krippendorff.alpha(pair, level_of_measurement="nominal"))
            else:
                expected = fleiss_kappa(pair)
            assert close(table.iloc[i, j], expected)
    np.testing.assert_array_equal(table.to_numpy(), table.to_numpy().T)


@FAST
@given(reliability(max_workers=5), st.sampled_from(["cohen_kappa", "percent_agreement"]))
def test_worker_vs_rest_equals_a_loop_over_tasks(data, metric):
    result = worker_vs_rest(data, metric=metric)
    cats = np.unique(data[~np.isnan(data)])
    for w in range(data.shape[0]):
        own, rest = [], []
        for t in range(data.shape[1]):
            others = [v for i, v in enumerate(data[:, t]) if i != w and not np.isnan(v)]
            if np.isnan(data[w, t]) or not others:
                continue
            ranked = Counter(others).most_common()
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                continue  # the others tie
            own.append(data[w, t])
            rest.append(ranked[0][0])
        if len(own) < 2:
            assert np.isnan(result.iloc[w])
        elif metric == "percent_agreement":
            assert close(result.iloc[w], np.mean(np.equal(own, rest)))
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                ids = np.searchsorted(cats, [own, rest])
                assert close(result.iloc[w], cohen_kappa_score(ids[0], ids[1], labels=np.arange(len(cats))))


# -------------------------------------------------------------------------- properties
def relabel(data, perm):
    out = np.full(data.shape, nan)
    present = ~np.isnan(data)
    values = np.unique(data[present])
    out[present] = perm[np.searchsorted(values, data[present])]
    return out


@FAST
@given(reliability(), st.integers(0, 2 ** 32 - 1))
def test_invariant_under_permuting_workers_tasks_and_renaming_classes(data, seed):
    rng = np.random.default_rng(seed)
    shuffled = data[rng.permutation(data.shape[0])][:, rng.permutation(data.shape[1])]
    n_values = len(np.unique(data[~np.isnan(data)]))
    renamed = relabel(data, rng.permutation(n_values) * 10.0 + 100)
    for fn in (krippendorff_alpha, fleiss_kappa, gwet_ac1, percent_agreement):
        ref = fn(data)
        assert close(fn(shuffled), ref, 1e-12)
        assert close(fn(renamed), ref, 1e-12)
    for level in ("ordinal", "interval", "ratio"):  # order-aware: permute workers and tasks only
        assert close(krippendorff_alpha(shuffled, level=level), krippendorff_alpha(data, level=level), 1e-12)
    # pairwise and worker_vs_rest follow the workers
    perm = rng.permutation(data.shape[0])
    table = pairwise(data, metric="percent_agreement")
    np.testing.assert_allclose(pairwise(data[perm], metric="percent_agreement").to_numpy(),
                               table.to_numpy()[np.ix_(perm, perm)], equal_nan=True, atol=1e-12)


@FAST
@given(reliability())
def test_statistics_are_in_range(data):
    assert 0 <= percent_agreement(data) <= 1
    for fn in (krippendorff_alpha, fleiss_kappa, gwet_ac1):
        # chance-corrected: at most 1; no general lower bound with missing labels
        value = fn(data)
        assert np.isnan(value) or value <= 1 + 1e-12
    assert (pairwise(data).stack().dropna().between(-1 - 1e-12, 1 + 1e-12)).all()  # Cohen: [-1, 1]
    table = per_class_agreement(data)
    assert np.isclose(table["prevalence"].sum(), 1)


def test_perfect_agreement_is_one_and_undefined_is_nan():
    data = [[0, 1, 2, 1], [0, 1, 2, 1], [0, 1, 2, nan]]
    for fn in (krippendorff_alpha, fleiss_kappa, gwet_ac1, percent_agreement):
        assert fn(data) == pytest.approx(1.0)
    assert cohen_kappa([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)
    one_value = [[3, 3, 3], [3, 3, nan]]
    assert np.isnan(krippendorff_alpha(one_value)) and np.isnan(fleiss_kappa(one_value))
    assert percent_agreement(one_value) == 1.0


# --------------------------------------------------------------------------- bootstrap
@pytest.mark.parametrize("metric, options", [("krippendorff_alpha", {"level": lv}) for lv in LEVELS]
                         + [(m, {}) for m in ("fleiss_kappa", "gwet_ac1", "percent_agreement")])
@pytest.mark.parametrize("n_tasks", [12, 3000])  # index draws (many distinct tasks) / multinomial
def test_each_resample_equals_recomputing_from_scratch(metric, options, n_tasks):
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 4, n_tasks)
    data = np.where(rng.random((4, n_tasks)) < 0.7, truth, rng.integers(0, 4, (4, n_tasks))).astype(float)
    data[rng.random(data.shape) < 0.2] = nan
    counts = to_counts(data)
    stat = count_stat(metric, counts.columns, options)
    c = counts.to_numpy()
    units = c[c.sum(1) >= stat.min_labels]
    patterns, freq = _unique_rows(units)
    weights = next(_resample_weights(freq, 8, rng))[:8]
    assert (weights.sum(1) == len(units)).all()
    fast = stat.finish(weights @ stat.features(patterns))
    fn = {"krippendorff_alpha": krippendorff_alpha, "fleiss_kappa": fleiss_kappa,
          "gwet_ac1": gwet_ac1, "percent_agreement": percent_agreement}[metric]
    for b in range(len(weights)):
        resample = np.repeat(patterns, weights[b].astype(int), axis=0)
        frame = pd.DataFrame(resample, columns=counts.columns)  # keep the values for interval/ratio
        assert close(fast[b], fn(counts=frame, **options), 1e-9)


def test_confidence_interval_contract():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 5, 2000)
    data = np.where(rng.random((5, 2000)) < 0.6, truth, rng.integers(0, 5, (5, 2000))).astype(float)
    for metric in ("krippendorff_alpha", "fleiss_kappa", "gwet_ac1", "percent_agreement"):
        ci = confidence_interval(metric, data, n_boot=300, seed=1)
        assert isinstance(ci, AgreementInterval) and ci.metric == metric and ci.n_boot == 300
        fn = globals()[metric]
        assert ci.estimate == pytest.approx(fn(data), abs=1e-12)
        assert ci.low < ci.estimate < ci.high
        assert ci.high - ci.low < 0.1
    ci = confidence_interval(krippendorff_alpha, data, n_boot=300, seed=1)  # the function works too
    assert ci == confidence_interval("krippendorff_alpha", data, n_boot=300, seed=1)
    # same seed: same interval, whatever the task order; other seed: another interval
    shuffled = data[:, rng.permutation(data.shape[1])]
    assert confidence_interval("krippendorff_alpha", shuffled, n_boot=300, seed=1) == ci
    assert confidence_interval("krippendorff_alpha", data, n_boot=300, seed=2) != ci
    narrow = confidence_interval("krippendorff_alpha", data, n_boot=300, seed=1, level=0.5)
    assert ci.low < narrow.low < narrow.high < ci.high
    ordinal = confidence_interval("krippendorff_alpha", data, n_boot=200, options={"level": "ordinal"})
    assert ordinal.estimate == pytest.approx(krippendorff_alpha(data, level="ordinal"), abs=1e-12)


def test_confidence_interval_for_cohen_with_two_workers():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, 500)
    data = np.where(rng.random((2, 500)) < 0.7, truth, rng.integers(0, 3, (2, 500))).astype(float)
    data[0, :10] = nan
    long = reliability_to_long(data, workers=["a", "b"])
    ci = confidence_interval("cohen_kappa", long, n_boot=300, options={"weights": "quadratic"})
    expected = cohen_kappa_score(data[0, 10:], data[1, 10:], weights="quadratic")
    assert ci.estimate == pytest.approx(expected, abs=1e-12)
    assert ci.low < ci.estimate < ci.high
    with pytest.raises(ValueError, match="cohen_kappa compares 2 workers; data has 3: use pairwise"):
        confidence_interval("cohen_kappa", np.vstack([data, data[:1]]))


# ----------------------------------------------------------------------------- CIFAR-10H
@pytest.fixture(scope="module")
def cifar10h():
    if not CIFAR10H.exists():
        pytest.skip(f"CIFAR-10H counts not found at {CIFAR10H}")
    return np.load(CIFAR10H)


def test_cifar10h_fleiss_equals_statsmodels_on_rows_with_equal_raters(cifar10h):
    # statsmodels' fleiss_kappa assumes the same number of raters per row (it asserts so);
    # CIFAR-10H has 47-63 per image, so compare on each group of rows with one count.
    n_raters = cifar10h.sum(1)
    for m in (50, 51, 52):
        rows = cifar10h[n_raters == m]
        assert len(rows) > 1000
        assert fleiss_kappa(counts=rows) == pytest.approx(sm_fleiss_kappa(rows), abs=1e-9)
    # on the whole table (unequal raters): alpha from counts equals the krippendorff package
    assert krippendorff_alpha(counts=cifar10h) == pytest.approx(
        krippendorff.alpha(value_counts=cifar10h, level_of_measurement="nominal"), abs=1e-9)
    assert 0.9 < fleiss_kappa(counts=cifar10h) < 0.93  # humans agree strongly on CIFAR-10
    ci = confidence_interval("fleiss_kappa", counts=cifar10h, n_boot=200)
    assert ci.low < fleiss_kappa(counts=cifar10h) < ci.high
    classes = per_class_agreement(counts=cifar10h)
    assert classes["kappa"].idxmin() == 3  # cat is the hardest class for people


# --------------------------------------------------------------------------------- errors
def test_unknown_names_list_the_valid_ones_and_close_matches():
    with pytest.raises(ValueError,
                       match=r"unknown level 'nominl'.*'nominal', 'ordinal'.*did you mean 'nominal'"):
        krippendorff_alpha(K2011, level="nominl")
    with pytest.raises(ValueError, match=r"unknown metric 'cohens_kappa'.*did you mean 'cohen_kappa'"):
        pairwise(K2011, metric="cohens_kappa")
    with pytest.raises(ValueError, match=r"unknown metric 'alpha'; expected one of \['krippendorff_alpha'"):
        confidence_interval("alpha", K2011)
    with pytest.raises(ValueError, match=r"unknown weights 'quadratik'.*did you mean 'quadratic'"):
        cohen_kappa([1, 2], [1, 2], weights="quadratik")


def test_bad_inputs_say_what_was_received():
    with pytest.raises(ValueError, match=r"at least 2 workers; got 1"):
        krippendorff_alpha([[1, 2, 3]])
    with pytest.raises(ValueError, match="no task has labels from 2 or more workers"):
        fleiss_kappa([[1, nan], [nan, 2]])
    with pytest.raises(ValueError, match="a has 3 labels and b has 2"):
        cohen_kappa([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="no task that both labelled"):
        cohen_kappa([1, None], [None, 2])
    with pytest.raises(ValueError, match="either data .* or counts=.*not both"):
        fleiss_kappa(K2011, counts=WIKI_FLEISS)
    with pytest.raises(ValueError, match="got neither"):
        gwet_ac1()
    with pytest.raises(ValueError, match="non-negative whole numbers"):
        fleiss_kappa(counts=[[1.5, 2], [0, 3]])
    with pytest.raises(ValueError, match=r"level='interval' needs numeric labels, got \['a', 'b'\]"):
        words = pd.DataFrame({"task": [1, 1], "worker": [1, 2], "label": ["a", "b"]})
        krippendorff_alpha(words, level="interval")
    with pytest.raises(ValueError, match=r"weights='linear' applies to metric='cohen_kappa' only"):
        pairwise(K2011, metric="percent_agreement", weights="linear")
    with pytest.raises(ValueError, match=r"options \['weights'\] do not apply to krippendorff_alpha"):
        confidence_interval("krippendorff_alpha", K2011, options={"weights": "linear"})
    with pytest.raises(ValueError, match="level=1.5; expected a confidence level between 0 and 1"):
        confidence_interval("krippendorff_alpha", K2011, level=1.5)
    with pytest.raises(ValueError, match="n_boot=0; expected a positive number"):
        confidence_interval("krippendorff_alpha", K2011, n_boot=0)


def test_quality_imports_no_heavy_libraries():
    code = ("import sys, labkit.quality.agreement, labkit.quality.layouts; "
            "print([m for m in ('torch', 'ipywidgets', 'papermill') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_per_class_intervals_match_point_estimates_and_cover_them():
    from labkit.quality import per_class_agreement, per_class_intervals

    rng = np.random.default_rng(3)
    rows = [(t, w, "abc"[y if rng.random() < 0.75 else rng.integers(0, 3)])
            for t in range(400) for y in [rng.integers(0, 3)] for w in "pqrs" if rng.random() < 0.85]
    df = pd.DataFrame(rows, columns=["task", "worker", "label"])
    ci = per_class_intervals(df, n_boot=400, seed=1)
    ref = per_class_agreement(df)
    np.testing.assert_allclose(ci["kappa"], ref["kappa"], atol=1e-12)
    assert ((ci["low"] < ci["kappa"]) & (ci["kappa"] < ci["high"])).all()
    assert (ci["high"] - ci["low"] < 0.3).all()
    with pytest.raises(ValueError, match="confidence level"):
        per_class_intervals(df, level=95)
