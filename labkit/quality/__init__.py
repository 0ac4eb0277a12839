"""labkit.quality: the pure numpy/pandas core (difficulty, agreement, layouts).

Nothing here imports torch, ipywidgets or papermill.
"""
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
from labkit.quality.difficulty import (
    ConfusionClasses,
    c_perplexity,
    confusion_classes,
    difficulty_table,
    x_perplexity,
)
from labkit.quality.layouts import (
    Reliability,
    long_to_reliability,
    long_to_wide,
    reliability_to_long,
    to_counts,
    wide_to_long,
)

__all__ = [
    "AgreementInterval", "ConfusionClasses", "LEVELS", "METRICS", "Reliability", "c_perplexity",
    "cohen_kappa", "confidence_interval", "confusion_classes", "difficulty_table", "fleiss_kappa",
    "gwet_ac1", "krippendorff_alpha", "long_to_reliability", "long_to_wide", "pairwise",
    "per_class_agreement", "percent_agreement", "reliability_to_long", "to_counts", "wide_to_long",
    "worker_vs_rest", "x_perplexity",
]
