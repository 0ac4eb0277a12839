"""The contract audit of a project: everything ``notebooks/quality_audit.ipynb`` shows.

:func:`run_audit` reads the project once, runs the integrity checks, the sampling
inspection, agreement, composition and (when a model pool's predictions exist)
label-error candidates, measures every contract clause and judges it. The returned
:class:`QualityAudit` renders one report section per call (``audit.verdict()``,
``audit.accuracy()``, ...), so the notebook stays a parameters cell and one call per
section.

The delivered label of an image and the annotators agreement is computed over come from
:func:`labkit.quality.delivered.deliver`, the definition every labkit view uses; the
contract's ``[annotations] exclude_workers`` adds reference annotators to the ones it finds.

This is the store-aware shell; the computations are the pure functions of
:mod:`labkit.quality.integrity`, :mod:`~labkit.quality.acceptance`,
:mod:`~labkit.quality.sampling` and :mod:`~labkit.quality.composition`.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from labkit.quality import acceptance as acc
from labkit.quality import composition as comp
from labkit.quality import integrity as integ
from labkit.quality.delivered import deliver
from labkit.reports._html import Html
from labkit.reports.audit import sections
from labkit.reports.audit.inspection import (
    SHEET_NAME,
    check_sheet,
    plan_inspection,
    write_sheet,
)

if TYPE_CHECKING:
    from labkit.services.project import Project

__all__ = ["DEFAULT_CONTRACT", "Predictions", "QualityAudit", "run_audit", "delivered_labels",
           "load_predictions"]

#: The contract used when none is given (the numbers of ``contracts/example.toml``).
DEFAULT_CONTRACT: dict[str, Any] = {
    "contract": {"name": "labkit default contract", "provider": "(data provider)", "user": "(data user)"},
    "thresholds": {"key_error_rate": 0.025, "annotation_error_rate": 0.04, "completeness_rate": 0.99,
                   "images_per_class": 20, "agreement": 0.667, "label_issue_rate": 0.05,
                   "duplicate_conflicts": 0, "geometry_error_rate": 0.01},
    "sampling": {"level": "II", "seed": 0, "decision": "iso2859", "interval": "wilson"},
    "agreement": {"metric": "krippendorff_alpha", "kind": "label", "level": 0.95, "n_boot": 1000},
}


@dataclass(frozen=True)
class Predictions:
    """Per-model class probabilities for images: ``probs`` (M, N, K) in the order of ``images``."""

    probs: np.ndarray
    images: pd.Index
    classes: tuple[str, ...]
    source: str
    fold: np.ndarray | None = None
    models: tuple[str, ...] = ()


def load_predictions(project: Project, predictions: str = "auto", *, pool: str = "default"
                     ) -> tuple[Predictions | None, str]:
    """The pool predictions to audit with, or ``(None, why not)``.

    ``predictions``: ``"none"`` (skip), a ``.npz`` file with ``probs`` (M, N, K),
    ``images`` (N,) and ``classes`` (K,), or ``"auto"``: the model pool ``pool`` trained
    in the project (``ModelPool.load``; its saved predictions are reused).
    """
    if predictions == "none":
        return None, "predictions were switched off (predictions='none')"
    if predictions not in ("", "auto"):
        path = Path(predictions)
        if not path.is_file():
            raise FileNotFoundError(f"predictions file {path} does not exist")
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("probs", "images", "classes") if k not in z.files]
            if missing:
                raise ValueError(f"{path} lacks arrays {missing}; found {z.files}. Expected probs (M, N, K), "
                                 "images (N,), classes (K,)")
            probs, images, classes = z["probs"], z["images"], z["classes"]
        if probs.ndim != 3 or probs.shape[1] != len(images) or probs.shape[2] != len(classes):
            raise ValueError(f"{path}: probs has shape {probs.shape}, images {len(images)}, classes "
                             f"{len(classes)}; expected probs (M, N, K) with N images and K classes")
        return Predictions(probs, pd.Index(images, name="image"), tuple(map(str, classes)), str(path)), ""
    root = Path(getattr(project, "root", "."))
    if not (root / "pool" / pool / "pool.json").is_file():
        return None, (f"no trained model pool {pool!r} in the project and no predictions file; train one "
                      "(labkit.models.pool.ModelPool.train) or pass -p predictions FILE.npz")
    try:
        from labkit.models.pool import ModelPool
    except ImportError as exc:  # torch/timm missing
        return None, f"the model pool cannot be loaded: {exc}"
    p = ModelPool.load(project, pool).predict(project, progress=False, num_workers=0)
    source = f"model pool {pool!r} ({p.provenance['pool_id'][:12]})"
    return Predictions(np.asarray(p.probs), p.images, tuple(p.classes), source,
                       fold=np.asarray(p.fold), models=tuple(p.models)), ""


def delivered_labels(annotations: pd.DataFrame, classes: list[str], *, references: Sequence[str] = ()) -> pd.Series:
    """One image-level label per image: :func:`labkit.quality.delivered.deliver`'s labels.

    The stored consensus, else the majority of the annotators (one vote each; ties to the
    class listed first in ``classes``); reference annotators (``references`` and the ones
    :func:`~labkit.quality.delivered.find_references` finds) are not votes.
    ``annotations`` is ``project.annotations()`` (it needs the ``simulated`` column).
    """
    return deliver(annotations, classes, references=references).labels


class QualityAudit:
    """Everything measured for one audit; each section method returns displayable HTML."""

    def __init__(self, project: Project, contract: acc.Contract, *, title: str, inspection: str,
                 predictions: str, pool: str, seed: int | None, max_evidence: int, out_dir: Path):
        self.project, self.contract, self.title = project, contract, title
        self.max_evidence, self.out_dir = max_evidence, out_dir
        self.notes: list[str] = []
        self._read_project()
        self._integrity()
        self._sampling(inspection, seed)
        self._agreement()
        self._composition()
        self._model(predictions, pool)
        self.measurements = self._measure()
        self.verdict_ = acc.evaluate(contract, self.measurements)
        self._save()

    # ------------------------------------------------------------------ reading --
    def _read_project(self) -> None:
        p = self.project
        self.info = p.info()
        images = p.images()
        images["path"] = p.image_files(list(images.index), purpose="quality audit")["path"].astype(str)
        self.images = images
        self.classes = p.classes()
        ann = p.annotations()
        self._proposals(ann)
        # the one definition of every view: the contract's exclude_workers are references,
        # added to the ones the project shows by itself (a simulation's dataset labels)
        self.delivery = deliver(ann, self.classes,
                                references=list(self.contract.get("annotations", "exclude_workers", []) or []))
        excluded = list(self.delivery.references)
        self.excluded_workers = excluded
        self.reference = ann[ann["worker"].isin(excluded)]
        self.annotations = ann[~ann["worker"].isin(excluded)]
        self.taxonomy = list(self.contract.get("taxonomy", "classes", None) or self.classes)
        self.main_classes = list(self.contract.get("taxonomy", "main_classes", None) or self.taxonomy)
        self.delivered = self.delivery.labels
        objects = self.annotations[self.annotations["kind"] != "label"]
        present: dict[int, set] = {}
        for t, lab in zip(objects["task"], objects["label"]):
            present.setdefault(int(t), set()).add(lab)
        for t, lab in self.delivered.items():
            present.setdefault(int(t), set()).add(lab)
        self.image_classes = present

    def _proposals(self, ann: pd.DataFrame) -> None:
        """Machine proposals, how they fared in review, and where the delivered annotations come from."""
        from labkit.quality.prelabel import prelabel_report

        self.proposals = self.project.proposals(None)
        undelivered = self.proposals.index[self.proposals["state"] != "accepted"]
        delivered = ann[~ann.index.isin(undelivered)]  # (annotations() leaves them out already)
        self.prelabel = prelabel_report(self.proposals, drawn=delivered)
        states = self.proposals["state"]
        replacements = set(self.proposals["replaced_by"].dropna().astype(int))
        people = delivered[~delivered.index.isin(self.proposals.index) & ~delivered.index.isin(replacements)]
        rows = {"machine-proposed, accepted by a person": (int((states == "accepted").sum()), True),
                "machine-proposed, corrected by a person": (len(replacements & set(delivered.index)), True),
                "made by people (or imported) without a proposal": (len(people), True),
                "proposed, not reviewed yet (not delivered)": (int((states == "proposed").sum()), False),
                "proposed, rejected (not delivered)": (int((states == "rejected").sum()), False)}
        self.provenance_counts = pd.DataFrame(
            [{"origin": k, "annotations": n, "delivered": d} for k, (n, d) in rows.items()]).set_index("origin")
        self.delivered_annotations = len(delivered)

    # ---------------------------------------------------------------- integrity --
    def _integrity(self) -> None:
        c = self.contract
        from labkit.store.files import inspect_files

        # the paths came from project.image_files in _read_project: one audited read, not two
        self.file_report = inspect_files(self.images[["path", "sha256"]])
        hashes = self.file_report["phash"].dropna()
        self.duplicates = integ.find_duplicates(hashes.astype(object), sha256=self.file_report["sha256_now"])
        labels = {i: (self.delivered[i] if i in self.delivered.index else frozenset(s))
                  for i, s in self.image_classes.items()}
        parts = [
            integ.file_findings(self.file_report),
            integ.required_findings(self.images, self.annotations,
                                    kinds=c.get("requirements", "annotation_kinds"),
                                    attributes=c.get("requirements", "attributes", []) or []),
            integ.duplicate_findings(self.duplicates, labels),
            integ.class_findings(self.annotations, self.taxonomy),
            integ.geometry_findings(self.annotations, self.images[["width", "height"]]),
            integ.overlap_findings(self.annotations),
        ]
        parts = [p for p in parts if len(p)]
        self.findings = (pd.concat(parts, ignore_index=True) if parts
                         else integ.geometry_findings(self.annotations.iloc[:0], self.images[["width", "height"]]))
        self.findings.index.name = "finding"

    # ----------------------------------------------------------------- sampling --
    def _sampling(self, inspection: str, seed: int | None) -> None:
        plan = plan_inspection(self.images.index, self.contract, seed=seed)
        self.plans, self.sample, self.seed = plan.plans, plan.sample, plan.seed
        self.sheet, self.sheet_path = None, None
        if inspection:
            self.sheet_path = Path(inspection)
            self.sheet = acc.read_inspection(self.sheet_path)
            check_sheet(self.sheet, plan, self.sheet_path)
        elif len(self.sample):
            self.sheet_path = self.out_dir / SHEET_NAME
            if not self.sheet_path.exists():
                write_sheet(self.project, plan, self.sheet_path)

    # ---------------------------------------------------------------- agreement --
    def _agreement(self) -> None:
        from labkit.quality.agreement import confidence_interval

        c = self.contract
        self.agreement_metric = c.get("agreement", "metric", "krippendorff_alpha")
        kind = c.get("agreement", "kind", "label")
        self.agreement_kind = kind
        self.interval, self.pairwise, self.geometric = None, None, None
        if kind == "label":
            long = self.delivery.agreement_votes  # the voters of the delivered labels, as every view
            self.agreement_tasks = int(long["task"].nunique())
            if long["worker"].nunique() >= 2 and long["label"].nunique() >= 2:
                from labkit.quality.agreement import pairwise

                self.interval = confidence_interval(self.agreement_metric, long,
                                                    level=float(c.get("agreement", "level", 0.95)),
                                                    n_boot=int(c.get("agreement", "n_boot", 1000)), seed=self.seed)
                try:
                    self.pairwise = pairwise(long, metric="cohen_kappa")
                except ValueError:
                    self.pairwise = None
        else:
            self.agreement_tasks = 0
        boxes = self.annotations[(self.annotations["kind"] == "box") & (self.annotations["source"] != "consensus")]
        if boxes["worker"].nunique() >= 2:
            from labkit.quality.geometric import (
                geometric_agreement,
                summarize_agreement,
            )

            pairs = geometric_agreement(boxes, kind="box")
            if len(pairs):
                self.geometric = summarize_agreement(pairs, by="pair")

    # -------------------------------------------------------------- composition --
    def _composition(self) -> None:
        self.attributes = comp.attribute_table(self.images)
        self.shares = comp.attribute_shares(self.attributes)
        counts = pd.Series({c: sum(c in s for s in self.image_classes.values()) for c in self.main_classes},
                           dtype=int)
        self.class_counts = counts
        ids = sorted(self.image_classes)
        self.class_labels = pd.Series([c for i in ids for c in sorted(self.image_classes[i])],
                                      index=pd.Index([i for i in ids for _ in self.image_classes[i]], name="image"),
                                      dtype=object)

    def coverage(self, attribute: str) -> pd.DataFrame:
        """Images per main class (rows) and value of ``attribute`` (columns, as text).

        The values ``[coverage.scenarios]`` requires for the attribute are columns even
        when no image has them; images without the attribute are the last column,
        ``(missing)``.
        """
        required = [str(v) for v in (self.contract.get("coverage", "scenarios", {}) or {}).get(attribute, [])]
        rows = pd.Index(self.main_classes, name="class")
        if attribute in self.attributes.columns and len(self.class_labels):
            m = comp.coverage_matrix(self.class_labels, self.attributes, attribute, classes=self.main_classes)
            m = m.T.groupby(m.columns.map(str), sort=False).sum().T  # 1 and "1" are one value in a contract
        else:
            m = pd.DataFrame(index=rows)
        values = [c for c in m.columns if c != comp.MISSING] + [v for v in required if v not in m.columns]
        m = m.reindex(columns=values + [c for c in m.columns if c == comp.MISSING], fill_value=0)
        m.index, m.columns.name = rows, attribute
        return m.astype(int)

    # -------------------------------------------------------------------- model --
    def _model(self, predictions: str, pool: str) -> None:
        self.preds, self.model_reason = load_predictions(self.project, predictions, pool=pool)
        self.issues, self.difficulty, self.labeled_for_model = None, None, pd.Index([])
        self.pool_untrusted = ""
        if self.preds is None:
            return
        from labkit.quality.difficulty import difficulty_table
        from labkit.quality.issues import label_issues

        p = self.preds
        labels = self.delivered[self.delivered.isin(p.classes)]
        labels = labels[labels.index.isin(p.images)]
        if labels.empty:
            self.model_reason = "no delivered image-level label is among the pool's classes"
            self.preds = None
            return
        pos = p.images.get_indexer(labels.index)
        y = pd.Categorical(labels.to_numpy(), categories=list(p.classes)).codes
        probs = p.probs[:, pos]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.issues = label_issues(probs, y, classes=list(p.classes), sample_ids=labels.index)
        self.difficulty = difficulty_table(probs, y, classes=list(p.classes), sample_ids=labels.index)
        self.labeled_for_model = labels.index
        self.pool_accuracy = comp.accuracy(pd.Series(np.asarray(p.classes)[probs.mean(0).argmax(1)],
                                                     index=labels.index), labels)

    # ------------------------------------------------------------------ measure --
    def _measure(self) -> dict[str, acc.Measurement]:
        c, m = self.contract, {}
        interval = c.get("sampling", "interval", "wilson")
        f = self.findings
        m["completeness_rate"] = acc.measure_completeness(self.images.index, f)
        m["images_per_class"] = acc.measure_class_counts(self.class_counts,
                                                         minimum=c.thresholds.get("images_per_class"))
        required = c.get("coverage", "scenarios", {}) or {}
        per_class = {a: self.coverage(a) for a in c.get("coverage", "per_class", []) or []}
        m["scenario_coverage"] = acc.measure_coverage(self.shares, required,
                                                      min_images=int(c.get("coverage", "min_images", 1)),
                                                      per_class=per_class)
        m["agreement"] = acc.measure_agreement(self.interval, n_tasks=self.agreement_tasks,
                                               metric=self.agreement_metric)
        if self.agreement_kind != "label":
            m["agreement"] = acc.not_evaluated(f"agreement on {self.agreement_kind!r} annotations is shown in the "
                                               "consistency section; the clause is judged on image-level labels")
        for clause, errors in (("key_error_rate", "key"), ("annotation_error_rate", "any")):
            if clause not in self.plans:
                continue
            if self.sheet is None:
                m[clause] = acc.not_evaluated(f"no inspection recorded: inspect the {len(self.sample)} sampled "
                                              f"images in {SHEET_NAME} and run the report with "
                                              f"-p inspection {SHEET_NAME}")
            else:
                m[clause] = acc.measure_inspection(self.sheet, self.plans[clause], threshold=c.thresholds[clause],
                                                   errors=errors, decision=c.get("sampling", "decision", "iso2859"),
                                                   interval=interval)
        baseline = c.get("validation", "pool_accuracy")
        if self.issues is None:
            m["label_issue_rate"] = acc.not_evaluated(self.model_reason)
        elif baseline is not None and self.pool_accuracy[0] < baseline:
            self.pool_untrusted = (f"the pool's accuracy {self.pool_accuracy[0]:.1%} is below its agreed baseline "
                                   f"{baseline:.0%}, so its label-error candidates are not evidence")
            m["label_issue_rate"] = acc.not_evaluated(self.pool_untrusted)
        else:
            m["label_issue_rate"] = acc.measure_rate(len(self.issues), len(self.labeled_for_model),
                                                     ids=list(self.issues.index), what="labeled images",
                                                     interval=interval)
        conflicts = f[f["rule"] == "duplicate_label_conflict"]
        m["duplicate_conflicts"] = acc.Measurement(
            value=float(len(conflicts)), n=len(self.images), ids=tuple(zip(conflicts["image"], conflicts["related"])),
            evidence=f"{len(conflicts)} duplicate pair(s) with conflicting labels among {len(self.duplicates)} "
                     "duplicate pair(s)")
        geo = f[(f["dimension"] == "annotation_quality") & f["annotation"].notna()]
        n_geo = int((self.annotations["kind"] != "label").sum())
        m["geometry_error_rate"] = acc.measure_rate(geo["annotation"].nunique(), n_geo,
                                                    ids=sorted(geo["annotation"].dropna().astype(int).unique()),
                                                    what="annotations with geometry", interval=interval) \
            if n_geo else acc.not_evaluated("the project has no geometric annotations")
        pending = self.proposals.index[self.proposals["state"] == "proposed"]
        m["unreviewed_proposal_rate"] = acc.measure_rate(
            len(pending), self.delivered_annotations + len(pending), ids=[int(i) for i in pending],
            what="delivered annotations and unreviewed proposals", interval=interval)
        return {k: v for k, v in m.items() if k in c.thresholds}

    def _save(self) -> None:
        """Full findings and the verdict next to the report (the HTML shows the first rows)."""
        self.findings.to_csv(self.out_dir / "integrity_findings.csv")
        table = self.verdict_.table.copy()
        table["ids"] = table["ids"].map(lambda v: [x if isinstance(x, (int, str)) else str(x) for x in v])
        record = {"overall": self.verdict_.overall, "contract": self.contract.name,
                  "contract_source": self.contract.source,
                  "clauses": json.loads(table.reset_index().to_json(orient="records"))}
        (self.out_dir / "verdict.json").write_text(json.dumps(record, indent=2, default=str))

    # --------------------------------------------------------------- sections --
    def header(self) -> Html:
        return sections.header(self)

    def verdict(self) -> Html:
        return sections.verdict(self)

    def accuracy(self) -> Html:
        return sections.accuracy(self)

    def completeness(self) -> Html:
        return sections.completeness(self)

    def diversity(self) -> Html:
        return sections.diversity(self)

    def consistency(self) -> Html:
        return sections.consistency(self)

    def annotation_quality(self) -> Html:
        return sections.annotation_quality(self)

    def cleanliness(self) -> Html:
        return sections.cleanliness(self)

    def model_validation(self) -> Html:
        return sections.model_validation(self)

    def prelabeling(self) -> Html:
        return sections.prelabeling(self)

    def known_issues(self) -> Html:
        return sections.known_issues(self)


def run_audit(project: Project | str | Path, *, contract: Any = None, title: str = "Data quality audit",
              inspection: str = "",
              predictions: str = "auto", pool: str = "default", seed: int | None = None,
              max_evidence: int = 12, out_dir: str | Path = ".") -> QualityAudit:
    """Audit ``project`` (a :class:`labkit.Project`, a folder or a URL) against ``contract``.

    Parameters
    ----------
    contract : path to a TOML file, dict, Contract or None/"" (:data:`DEFAULT_CONTRACT`)
    inspection : path to a filled inspection sheet, or "" (the audit writes the sheet
        for the drawn sample, and the sampling clauses are NOT EVALUATED)
    predictions : "auto" (the trained pool ``pool``), "none", or a ``.npz`` file
    seed : the sampling seed (None or negative: the contract's ``[sampling] seed``)
    max_evidence : thumbnails per gallery
    out_dir : where the inspection sheet, findings CSV and verdict JSON go
    """
    from labkit.services.project import Project

    if isinstance(project, (str, Path)):
        project = Project.open(project)
    if contract is None or contract == "":
        c = acc.load_contract(DEFAULT_CONTRACT)
    elif isinstance(contract, acc.Contract):
        c = contract
    else:
        c = acc.load_contract(contract)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return QualityAudit(project, c, title=title, inspection=inspection, predictions=predictions, pool=pool,
                        seed=seed, max_evidence=max_evidence, out_dir=out)
