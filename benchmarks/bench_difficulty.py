"""Speed of labkit.quality.difficulty on 5 models x 1,000,000 samples x 10 classes (float32).

Run either way:

    .venv/bin/python -m pytest -m bench benchmarks/bench_difficulty.py -s
    .venv/bin/python benchmarks/bench_difficulty.py

Peers, in the same run on the same data: the plain numpy expression for C
(``2 ** -(p * log2 p).sum(-1).mean(0)``, +400 MB of temporaries), and a
per-model, per-sample Python loop over the same formulas, written the way the
paper's released code computes them (timed on the first 20,000 samples and
extrapolated per sample). Times are the best of 3: the machine has 2 cores and
other work may be running.

Targets: ``c_perplexity`` <= 0.3 s and ``difficulty_table`` <= 2 s.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from labkit.quality import difficulty
from labkit.quality.difficulty import c_perplexity, difficulty_table, x_perplexity

M, N, K = 5, 1_000_000, 10
LOOP_N = 20_000
TARGETS = {"c_perplexity": 0.3, "difficulty_table": 2.0}


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def plain_numpy_c(probs):
    return 2.0 ** -(probs * np.log2(probs)).sum(-1).mean(0)


def loop_c(probs):
    """C the way the released code does it: model by model, sample by sample."""
    n_models, n = probs.shape[:2]
    entropy = np.zeros(n)
    for m in range(n_models):
        for i, q in enumerate(probs[m]):
            class_entropy = np.nan_to_num(q * np.log2(q))
            entropy[i] += -np.nansum(class_entropy, -1)
    return np.power(2, entropy / n_models)


def loop_x(probs, labels):
    """X the same way: the top class of every model for every sample."""
    n_models, n = probs.shape[:2]
    wrong = np.zeros(n)
    for m in range(n_models):
        for i, q in enumerate(probs[m]):
            wrong[i] += int(np.argmax(q)) != labels[i]
    return wrong / n_models


def loop_all(probs, labels):
    """C, X, per-class C-confusion and X vote counts, the same way."""
    n_models, n, k = probs.shape
    entropy, wrong = np.zeros(n), np.zeros(n)
    c_confusion = [np.zeros(k) for _ in range(n)]
    votes = [{} for _ in range(n)]
    for m in range(n_models):
        for i, q in enumerate(probs[m]):
            top = int(np.argmax(q))
            wrong[i] += top != labels[i]
            votes[i][top] = votes[i].get(top, 0) + 1
        for i, q in enumerate(probs[m]):
            class_entropy = np.nan_to_num(q * np.log2(q))
            entropy[i] += -np.nansum(class_entropy, -1)
            c_confusion[i] += -class_entropy / n_models
    return np.power(2, entropy / n_models), wrong / n_models, c_confusion, votes


def run() -> dict:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(K), size=(M, N)).astype(np.float32)
    labels = rng.integers(0, K, N)
    sub, sub_labels = probs[:, :LOOP_N], labels[:LOOP_N]

    r = {}
    r["c_perplexity"], c = best_of(lambda: c_perplexity(probs))
    r["plain numpy C"], c_plain = best_of(lambda: plain_numpy_c(probs))
    r["x_perplexity"], x = best_of(lambda: x_perplexity(probs, labels))
    r["difficulty_table"], table = best_of(lambda: difficulty_table(probs, labels))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_loop_c, c_loop = best_of(lambda: loop_c(sub), repeat=1)
        t_loop_x, x_loop = best_of(lambda: loop_x(sub, sub_labels), repeat=1)
        t_loop_all, (c_loop2, x_loop2, _, _) = best_of(lambda: loop_all(sub, sub_labels),
                                                       repeat=1)
    r["python loop C"] = t_loop_c * N / LOOP_N
    r["python loop X"] = t_loop_x * N / LOOP_N
    r["python loop C+X+confusion"] = t_loop_all * N / LOOP_N

    # same numbers, whichever way they are computed
    np.testing.assert_allclose(c, c_plain, rtol=1e-5)
    np.testing.assert_allclose(c[:LOOP_N], c_loop, rtol=1e-5)
    np.testing.assert_allclose(c[:LOOP_N], c_loop2, rtol=1e-5)
    np.testing.assert_array_equal(x[:LOOP_N], x_loop)
    np.testing.assert_array_equal(x[:LOOP_N], x_loop2)
    np.testing.assert_allclose(table["c_perplexity"].to_numpy(), c, rtol=1e-6)
    return r


def report(r: dict) -> str:
    loop_of = {"c_perplexity": "python loop C", "x_perplexity": "python loop X",
               "difficulty_table": "python loop C+X+confusion"}
    lines = [f"labkit.quality.difficulty: {M} models x {N:,} samples x {K} classes, float32, "
             f"{difficulty._n_threads()} threads, best of 3",
             f"(python loops timed once on {LOOP_N:,} samples, extrapolated to {N:,})",
             f"{'what':<42}{'seconds':>9}{'target':>8}{'vs numpy':>10}{'vs loop':>9}"]
    for name, t in r.items():
        target = f"{TARGETS[name]:.1f}" if name in TARGETS else ""
        vs_np = f"{r['plain numpy C'] / t:.1f}x" if name == "c_perplexity" else ""
        vs_loop = f"{r[loop_of[name]] / t:.0f}x" if name in loop_of else ""
        label = name + (" (extrapolated)" if name.startswith("python") else "")
        lines.append(f"{label:<42}{t:>9.3f}{target:>8}{vs_np:>10}{vs_loop:>9}")
    headroom = ", ".join(f"{k} {TARGETS[k] / r[k]:.1f}x under its target" for k in TARGETS)
    lines.append(f"headroom: {headroom}")
    return "\n".join(lines)


@pytest.mark.bench
def test_difficulty_speed():
    r = run()
    print("\n" + report(r))
    for name, limit in TARGETS.items():
        assert r[name] <= limit, f"{name} took {r[name]:.3f} s; target {limit} s"


if __name__ == "__main__":
    result = run()
    print(report(result))
    missed = [k for k, limit in TARGETS.items() if result[k] > limit]
    raise SystemExit(f"missed targets: {missed}" if missed else 0)
