"""Dawid–Skene on 200,000 tasks x 5 workers x 10 classes: labkit vs crowd-kit, same run.

Run either way:

    .venv/bin/python -m pytest -m bench benchmarks/bench_dawid_skene.py -s
    .venv/bin/python benchmarks/bench_dawid_skene.py

Data: simulated confusion-matrix annotators. True classes follow a skewed prior
(Dirichlet(5)); worker m gives the true class with probability 0.45, 0.55, 0.65, 0.75 or
0.85 and otherwise a wrong class drawn from its own per-class confusion row
(Dirichlet(0.5) over the 9 wrong classes), so errors are structured, as Dawid–Skene
assumes. Every worker labels every task: a long DataFrame of 1,000,000 rows with string
worker ids, given to both libraries as is, with their defaults (100 iterations at most,
tol 1e-5).

Timing: labkit best of 3, crowd-kit best of 2, in one process on the same DataFrame, so
the ratio holds on a shared 2-core machine where absolute times drift. Targets (issue 5):
crowd-kit takes ~5 s here and labkit must take <= 1.5 s, i.e. labkit <= 0.3 x
crowd-kit's time; and labkit's accuracy against the true classes >= crowd-kit's.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest

from labkit.quality.aggregate import DawidSkene, MajorityVote

N, M, K = 200_000, 5, 10
ACCURACIES = (0.45, 0.55, 0.65, 0.75, 0.85)
RATIO_TARGET = 0.3


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def simulate(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.full(K, 5.0))
    truth = rng.choice(K, N, p=prior)
    labels = np.empty((M, N), dtype=np.int64)
    for m, acc in enumerate(ACCURACIES):
        conf = np.zeros((K, K))
        for c in range(K):
            conf[c, np.arange(K) != c] = (1 - acc) * rng.dirichlet(np.full(K - 1, 0.5))
            conf[c, c] = acc
        labels[m] = (rng.random(N)[:, None] > conf.cumsum(1)[truth]).sum(1)
    df = pd.DataFrame({"task": np.repeat(np.arange(N), M),
                       "worker": np.tile([f"w{m}" for m in range(M)], N),
                       "label": labels.T.ravel()})
    return df, truth


def run() -> dict:
    from crowdkit.aggregation import DawidSkene as CkDawidSkene

    df, truth = simulate()
    t_ours, ours = best_of(lambda: DawidSkene().fit(df), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # crowd-kit 1.4's pandas idioms warn under pandas 3
        t_ck, ck = best_of(lambda: CkDawidSkene().fit(df), 2)
    t_mv, mv = best_of(lambda: MajorityVote().fit_predict(df), 3)
    ck_labels = ck.labels_.reindex(np.arange(N)).to_numpy()
    ck_probas = ck.probas_.reindex(index=np.arange(N), columns=ours.probas_.columns).to_numpy()
    return {
        "labkit": (t_ours, (ours.labels_.to_numpy() == truth).mean(), ours.n_iter_),
        "crowd-kit": (t_ck, (ck_labels == truth).mean(), len(ck.loss_history_)),
        "majority vote (labkit)": (t_mv, (mv.to_numpy() == truth).mean(), None),
        "same_labels": float((ours.labels_.to_numpy() == ck_labels).mean()),
        "max_posterior_diff": float(np.abs(ours.probas_.to_numpy() - ck_probas).max()),
    }


def report(r: dict) -> str:
    t_ours, t_ck = r["labkit"][0], r["crowd-kit"][0]
    lines = [f"Dawid-Skene, {N:,} tasks x {M} workers x {K} classes (simulated confusion matrices, "
             f"accuracies {', '.join(map(str, ACCURACIES))}); labkit best of 3, crowd-kit best of 2",
             f"{'method':<24}{'time s':>9}{'accuracy':>10}{'iterations':>12}"]
    for name in ("labkit", "crowd-kit", "majority vote (labkit)"):
        t, acc, it = r[name]
        lines.append(f"{name:<24}{t:>9.3f}{acc:>10.5f}{'' if it is None else it:>12}")
    lines.append(f"time ratio labkit / crowd-kit: {t_ours / t_ck:.3f} (target <= {RATIO_TARGET}); "
                 f"same labels: {r['same_labels']:.6f}; max |posterior difference|: {r['max_posterior_diff']:.1e}")
    return "\n".join(lines)


def missed(r: dict) -> list[str]:
    out = []
    (t_ours, acc_ours, _), (t_ck, acc_ck, _) = r["labkit"], r["crowd-kit"]
    if t_ours > RATIO_TARGET * t_ck:
        out.append(f"labkit took {t_ours:.3f} s, {t_ours / t_ck:.2f}x crowd-kit's {t_ck:.3f} s; "
                   f"target {RATIO_TARGET}x")
    if acc_ours < acc_ck:
        out.append(f"labkit accuracy {acc_ours:.5f} < crowd-kit's {acc_ck:.5f}")
    return out


@pytest.mark.bench
def test_dawid_skene_speed_and_accuracy():
    r = run()
    print("\n" + report(r))
    assert not missed(r), missed(r)


if __name__ == "__main__":
    result = run()
    print(report(result))
    problems = missed(result)
    if problems:
        raise SystemExit("; ".join(problems))
