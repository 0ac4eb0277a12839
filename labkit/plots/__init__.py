"""matplotlib figures for reports and widgets; every function returns a ``Figure``."""
from __future__ import annotations

from labkit._util.lazy import lazy_exports

_LAZY = {
    "pairwise_heatmap": "labkit.plots.agreement",
    "per_class_agreement_plot": "labkit.plots.agreement",
    "iou_distribution": "labkit.plots.agreement",
    "consensus_confusion": "labkit.plots.agreement",
    "difficulty_histograms": "labkit.plots.difficulty",
    "c_vs_x_scatter": "labkit.plots.difficulty",
    "confusion_pairs_heatmap": "labkit.plots.difficulty",
    "plot_annotator_stats": "labkit.plots.annotators",
}
__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
