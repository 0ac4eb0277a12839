"""Agreement figures: pairwise heat map, per-class agreement with intervals, IoU
distributions, annotator-vs-consensus confusion matrices."""
from __future__ import annotations

import numpy as np
import pandas as pd

from labkit.plots._display import new_figure


def pairwise_heatmap(pairwise: pd.DataFrame, *, title: str = "Pairwise agreement", vmin: float = -1.0):
    """Heat map of a workers x workers agreement table (:func:`labkit.quality.pairwise`).

    Parameters
    ----------
    pairwise : DataFrame of shape (W, W)
        NaN where two annotators share too few tasks (shown blank).
    """
    n = len(pairwise)
    fig = new_figure(1.2 + 0.55 * n, 0.9 + 0.5 * n)
    ax = fig.add_subplot()
    values = pairwise.to_numpy(float)
    im = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=vmin, vmax=1.0)
    ax.set_xticks(range(n), pairwise.columns, rotation=45, ha="right")
    ax.set_yticks(range(n), pairwise.index)
    for i in range(n):
        for j in range(n):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title)
    return fig


def per_class_agreement_plot(table: pd.DataFrame, *, title: str = "Agreement per class (Fleiss' kappa)"):
    """Per-class kappa with interval bars (:func:`labkit.quality.per_class_intervals`).

    Parameters
    ----------
    table : DataFrame
        Indexed by class, with ``kappa``, ``low``, ``high`` columns.
    """
    t = table.sort_values("kappa")
    fig = new_figure(6, 0.8 + 0.3 * len(t))
    ax = fig.add_subplot()
    y = np.arange(len(t))
    err = np.vstack([t["kappa"] - t["low"], t["high"] - t["kappa"]]).clip(min=0)
    ax.errorbar(t["kappa"], y, xerr=err, fmt="o", color="#1f77b4", ecolor="#7f7f7f", capsize=3)
    ax.set_yticks(y, t.index.astype(str))
    ax.set_ylim(-1.2, len(t) - 0.5)
    ax.axvline(0, color="black", lw=0.5)
    for x, name in [(0.4, "fair"), (0.6, "moderate"), (0.8, "substantial")]:
        ax.axvline(x, color="#cccccc", lw=0.8, ls="--")
        ax.text(x, -0.9, name, fontsize=7, color="#888888", ha="center")
    ax.set_xlim(min(-0.1, float(np.nanmin(t["low"])) - 0.05), 1.02)
    ax.set_xlabel("kappa (bars: 95% bootstrap interval over tasks)")
    ax.set_title(title)
    return fig


def iou_distribution(pairs: pd.DataFrame, *, column: str = "mean_iou", by: str = "label",
                     title: str = "IoU between annotators"):
    """Histogram of per-pair IoU (:func:`labkit.quality.geometric_agreement` rows), one series per ``by``."""
    fig = new_figure(6, 3.2)
    ax = fig.add_subplot()
    groups = pairs.groupby(by)[column] if by in pairs else [("all", pairs[column])]
    bins = np.linspace(0, 1, 21)
    for name, values in groups:
        ax.hist(values.dropna(), bins=bins, alpha=0.55, label=str(name))
    ax.set_xlabel(column.replace("_", " "))
    ax.set_ylabel("annotator pairs x images")
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(title)
    return fig


def consensus_confusion(long: pd.DataFrame, consensus: pd.Series, *, classes=None, normalize: bool = True,
                        title: str = "Annotators vs consensus"):
    """One confusion matrix per annotator: their label (columns) vs the consensus (rows).

    Parameters
    ----------
    long : DataFrame
        Long layout ``task``, ``worker``, ``label``.
    consensus : Series
        Consensus label indexed by task.
    """
    classes = list(classes) if classes is not None else sorted(set(long["label"]) | set(consensus))
    workers = sorted(long["worker"].unique())
    cols = min(4, len(workers))
    rows = int(np.ceil(len(workers) / cols))
    fig = new_figure(3.0 * cols, 2.8 * rows + 0.4)
    fig.suptitle(title)
    for k, w in enumerate(workers):
        ax = fig.add_subplot(rows, cols, k + 1)
        g = long[long["worker"] == w]
        truth = consensus.reindex(g["task"]).to_numpy()
        m = pd.crosstab(pd.Categorical(truth, classes), pd.Categorical(g["label"], classes), dropna=False)
        values = m.to_numpy(float)
        if normalize:
            values = values / np.maximum(values.sum(1, keepdims=True), 1)
        ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
        acc = np.trace(m.to_numpy()) / max(1, m.to_numpy().sum())
        ax.set_title(f"{w} (accuracy {acc:.0%})", fontsize=9)
        ticks = range(len(classes))
        ax.set_xticks(ticks, classes, rotation=90, fontsize=7)
        ax.set_yticks(ticks, classes, fontsize=7)
        if k % cols == 0:
            ax.set_ylabel("consensus")
        ax.set_xlabel("annotator")
    return fig
