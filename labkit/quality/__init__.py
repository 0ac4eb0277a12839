"""labkit.quality: the pure numpy/pandas core (difficulty, agreement, consensus, delivered labels, layouts).

Nothing here imports an image, plotting or model library, ipywidgets or papermill (files
are read by ``labkit.store``, figures drawn by ``labkit.plots``); names load on first use,
so ``labkit.quality.difficulty`` stays numpy-only.
"""
from __future__ import annotations

from labkit._util.lazy import lazy_exports

_MODULES = {
    "labkit.quality.integrity": ["RULES", "perceptual_hash", "find_duplicates",
                                 "geometry_findings", "summarize_findings"],
    "labkit.quality.acceptance": ["Contract", "Measurement", "Verdict", "load_contract", "evaluate"],
    "labkit.quality.sampling": ["SamplingPlan", "code_letter", "sampling_plan", "draw_sample",
                                "proportion_interval", "plan_table"],
    "labkit.quality.composition": ["attribute_shares", "coverage_matrix", "validation_table"],
    "labkit.quality.delivered": ["Delivery", "deliver", "find_references"],
    "labkit.quality.disagreement": ["disagreement_by_task"],
    "labkit.quality.issues": ["ISSUE_COLUMNS", "label_issues"],
    "labkit.quality.aggregate": [
        "DawidSkene", "MajorityVote", "StapleResult", "aggregate_with_model", "cluster_boxes", "fuse_boxes",
        "fuse_masks", "mask_majority", "staple"],
    "labkit.quality.geometric": ["Matches", "geometric_agreement", "match_boxes", "summarize_agreement"],
    "labkit.quality.annotators": ["annotator_stats", "gold_mix"],
    "labkit.quality.agreement": [
        "AgreementInterval", "LEVELS", "METRICS", "cohen_kappa", "confidence_interval", "fleiss_kappa",
        "gwet_ac1", "krippendorff_alpha", "pairwise", "per_class_agreement", "per_class_intervals", "percent_agreement",
        "worker_vs_rest"],
    "labkit.quality.difficulty": [
        "ConfusionClasses", "c_perplexity", "confusion_classes", "difficulty_table", "x_perplexity"],
    "labkit.quality.prelabel": ["PrelabelReport", "prelabel_report"],
    "labkit.quality.layouts": [
        "Reliability", "long_to_reliability", "long_to_wide", "reliability_to_long", "to_counts", "wide_to_long"],
}
_LAZY = {name: mod for mod, names in _MODULES.items() for name in names}
__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
