"""Annotator figures: throughput, time per object, agreement with consensus, gold accuracy."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from labkit.plots._display import new_figure

__all__ = ["plot_annotator_stats"]


def plot_annotator_stats(stats: pd.DataFrame, *, figsize: tuple[float, float] | None = None) -> Any:
    """Bar charts of annotator statistics: throughput, time per object, consensus, gold.

    ``stats`` is what :func:`labkit.quality.annotators.annotator_stats` returns. Panels
    for columns that are missing or all NaN are left out.

    Parameters
    ----------
    stats : DataFrame
        The output of :func:`labkit.quality.annotators.annotator_stats`.
    figsize : (float, float), optional

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot, so nothing is shown twice; Jupyter displays it when it is
        the cell's value.

    Examples
    --------
    >>> stats = pd.DataFrame({"throughput_per_hour": [120.0, 360.0], "median_time_s": [30.0, 10.0],
    ...                       "consensus_accuracy": [1.0, 0.67], "consensus_kappa": [1.0, 0.4]},
    ...                      index=pd.Index(["a", "b"], name="worker"))
    >>> fig = plot_annotator_stats(stats)
    >>> [ax.get_title() for ax in fig.axes]
    ['Throughput (objects / active hour)', 'Median time per object (s)', 'Agreement with consensus']
    """
    panels = []
    for title, cols in (("Throughput (objects / active hour)", ["throughput_per_hour"]),
                        ("Median time per object (s)", ["median_time_s"]),
                        ("Agreement with consensus", ["consensus_accuracy", "consensus_kappa",
                                                      "consensus_f1", "consensus_iou"]),
                        ("Accuracy on gold items", ["gold_accuracy", "gold_f1", "gold_iou"])):
        present = [c for c in cols if c in stats.columns and stats[c].notna().any()]
        if present:
            panels.append((title, present))
    if not panels:
        raise ValueError(f"stats has none of the plotted columns; found {list(map(str, stats.columns))}; "
                         "pass the output of annotator_stats")
    n = len(panels)
    fig = new_figure(*(figsize or (4.2 * n, 3.4 + 0.12 * len(stats))))
    x = np.arange(len(stats))
    for k, (title, cols) in enumerate(panels):
        ax = fig.add_subplot(1, n, k + 1)
        width = 0.8 / len(cols)
        for j, c in enumerate(cols):
            ax.bar(x + (j - (len(cols) - 1) / 2) * width, stats[c].to_numpy(dtype=float), width,
                   label=c.split("_", 1)[1] if len(cols) > 1 else None)
        ax.set_xticks(x, [str(w) for w in stats.index], rotation=45 if len(stats) > 6 else 0, ha="right"
                      if len(stats) > 6 else "center")
        ax.set_title(title)
        if len(cols) > 1:  # below the axis, so it never hides a bar
            ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=len(cols),
                      frameon=False)
        if title.startswith(("Agreement", "Accuracy")):
            ax.set_ylim(min(0.0, float(np.nanmin(stats[cols].to_numpy(dtype=float)))), 1.05)
    return fig
