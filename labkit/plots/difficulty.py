"""Difficulty figures (Example Perplexity): per-class histograms, C vs X, confusion pairs."""
from __future__ import annotations

import numpy as np
import pandas as pd

from labkit.plots._display import new_figure


def difficulty_histograms(table: pd.DataFrame, labels: pd.Series, *, score: str = "c_perplexity", cols: int = 5):
    """One histogram of ``score`` per given class (:func:`labkit.quality.difficulty_table` rows).

    Parameters
    ----------
    table : DataFrame indexed by sample
    labels : Series
        Given class name per sample (same index).
    """
    lab = labels.reindex(table.index)
    classes = [c for c in pd.unique(lab.dropna())]
    classes = sorted(classes, key=str)
    rows = int(np.ceil(len(classes) / cols)) or 1
    fig = new_figure(2.4 * min(cols, max(1, len(classes))), 1.9 * rows + 0.5)
    fig.suptitle(f"{score.replace('_', '-')} per class")
    values = table[score].to_numpy(float)
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    if hi - lo < 1e-6:  # every sample scores the same: centre one bar on it
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, 16)
    for k, c in enumerate(classes):
        ax = fig.add_subplot(rows, min(cols, len(classes)), k + 1)
        v = table.loc[lab == c, score]
        ax.hist(v, bins=bins, color="#1f77b4")
        ax.set_title(f"{c} (n={len(v)}, median {v.median():.2f})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="x", useOffset=False)
    return fig


def c_vs_x_scatter(table: pd.DataFrame, *, highlight=None, seed: int = 0):
    """C-perplexity against X-perplexity, coloured by the mean probability of the given label.

    X takes M + 1 values for M models, so points are jittered vertically to show density.
    ``highlight`` (sample ids, e.g. label-error candidates) are circled.
    """
    fig = new_figure(6, 4.2)
    ax = fig.add_subplot()
    rng = np.random.default_rng(seed)
    x = table["c_perplexity"].to_numpy(float)
    y = table["x_perplexity"].to_numpy(float) + rng.uniform(-0.02, 0.02, len(table))
    sc = ax.scatter(x, y, c=table["label_prob"], cmap="viridis_r", s=10, alpha=0.7, vmin=0, vmax=1)
    if highlight is not None:
        h = table.index.isin(list(highlight))
        ax.scatter(x[h], y[h], facecolors="none", edgecolors="#d62728", s=40, lw=1, label="candidates")
        ax.legend(loc="lower right", fontsize=8)
    fig.colorbar(sc, ax=ax, label="mean probability of the given label")
    ax.set_xlabel("C-perplexity (confusion; 1 = every model certain)")
    ax.set_ylabel("X-perplexity (share of models disagreeing with the label)")
    ax.set_title("Difficulty: confusion vs mistakes")
    return fig


def confusion_pairs_heatmap(table: pd.DataFrame, labels: pd.Series | None = None, *, top: int = 12):
    """How often each class is confused with each other class, for the ``top`` most confused classes.

    With ``labels``: given label (rows) x the wrong class most models voted (``x_confusion``).
    Without: the top-2 C-confusion pairs (``c_confusion``), counted both ways.
    """
    if labels is not None:
        given = labels.reindex(table.index).astype(str)
        wrong = table["x_confusion"].astype(object)
        ok = wrong.notna()
        counts = pd.crosstab(given[ok], wrong[ok].astype(str))
    else:
        pairs = table["c_confusion"].dropna().astype(str).str.split("|", expand=True)
        both = pd.concat([pairs, pairs.rename(columns={0: 1, 1: 0})])
        counts = pd.crosstab(both[0], both[1])
    classes = (counts.sum(0).add(counts.sum(1), fill_value=0)).sort_values(ascending=False).index[:top]
    m = counts.reindex(index=classes, columns=classes, fill_value=0)
    fig = new_figure(1.5 + 0.45 * len(classes), 1.2 + 0.4 * len(classes))
    ax = fig.add_subplot()
    im = ax.imshow(m.to_numpy(), cmap="Reds")
    ax.set_xticks(range(len(classes)), [str(c) for c in classes], rotation=90)
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    for (i, j), v in np.ndenumerate(m.to_numpy()):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    ax.set_xlabel("most-voted wrong class" if labels is not None else "confused with")
    ax.set_ylabel("given label" if labels is not None else "class")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title("Most frequent confusion pairs")
    return fig
