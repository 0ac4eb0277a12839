"""Acceptance against a data-quality contract: clauses, measurements and a verdict.

A *contract* (a data-quality agreement between a data provider and a data user, after
the image-recognition data-quality agreement template labkit follows) sets a threshold
per clause; a *measurement* is what the audit found for a clause, with the
evidence behind it; :func:`evaluate` turns both into a PASS / FAIL / NOT EVALUATED
verdict per clause and an overall verdict. A clause without a measurement is NOT
EVALUATED, never PASS, and makes the overall verdict INCOMPLETE unless another clause
fails.

Contracts are TOML files or dicts (``contracts/example.toml`` shows every table)::

    [contract]    name, provider, user, date, ...   (free text, shown in the report)
    [thresholds]  one number per clause of CLAUSES
    [taxonomy]    classes (valid classes), main_classes (need images_per_class)
    [requirements] annotation_kinds, attributes     (what every image must have)
    [coverage]    min_images, per_class, [coverage.scenarios] attribute = [required values]
    [sampling]    level, seed, decision, interval  (ISO 2859-1 inspection)
    [agreement]   metric, kind, level, n_boot
    [annotations] exclude_workers (e.g. a reference annotator that is not part of the delivery)
    [validation]  baselines of model-based validation, e.g. pool_accuracy = 0.9

The measurement helpers here are pure (pandas in, :class:`Measurement` out); reading a
project lives in :mod:`labkit.reports`.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .sampling import AQLS, LEVELS, SamplingPlan, proportion_interval

__all__ = ["CLAUSES", "DIMENSIONS", "Contract", "Measurement", "Verdict", "load_contract", "evaluate",
           "measure_completeness", "measure_class_counts", "measure_coverage", "measure_agreement",
           "measure_inspection", "measure_rate", "metric_title", "inspection_template", "read_inspection",
           "INSPECTION_COLUMNS", "DEFECT_TYPES"]

#: The six quality dimensions of the data-quality agreement, in report order.
DIMENSIONS = ("accuracy", "completeness", "diversity", "consistency", "annotation_quality", "cleanliness")

#: clause -> (dimension, direction, description). ``max``: the measured value must be at
#: most the threshold; ``min``: at least.
CLAUSES: dict[str, tuple[str, str, str]] = {
    "key_error_rate": ("accuracy", "max", "key (critical) label errors among inspected samples"),
    "annotation_error_rate": ("annotation_quality", "max", "annotation errors of any kind among inspected samples"),
    "completeness_rate": ("completeness", "min", "images intact, with their required annotations and attributes"),
    "images_per_class": ("completeness", "min", "images of the least represented main class"),
    "scenario_coverage": ("diversity", "min", "required scenarios (attribute values, or class × value) "
                                              "with enough images"),
    "agreement": ("consistency", "min", "inter-annotator agreement, lower bound of its interval"),
    "label_issue_rate": ("cleanliness", "max", "label-error candidates from the model pool among labeled images"),
    "duplicate_conflicts": ("cleanliness", "max", "duplicate images whose labels conflict"),
    "geometry_error_rate": ("annotation_quality", "max", "annotations with geometry problems"),
    "unreviewed_proposal_rate": ("annotation_quality", "max", "machine proposals no person has reviewed yet, among "
                                                              "the delivered annotations and the proposals"),
}

_SECTIONS: dict[str, dict[str, type | tuple]] = {
    "contract": {},  # free text
    "thresholds": {k: (int, float) for k in CLAUSES},
    "taxonomy": {"classes": list, "main_classes": list},
    "requirements": {"annotation_kinds": list, "attributes": list},
    "coverage": {"min_images": int, "scenarios": dict, "per_class": list},
    "sampling": {"level": str, "seed": int, "decision": str, "interval": str},
    "agreement": {"metric": str, "kind": str, "level": float, "n_boot": int},
    "annotations": {"exclude_workers": list},
    "validation": {"pool_accuracy": (int, float), "mask_miou": (int, float)},
}
_DECISIONS = ("iso2859", "upper_bound", "point")
_INTERVALS = {"wilson": "Wilson", "clopper-pearson": "Clopper–Pearson"}
#: How a report names an agreement metric; others are shown with spaces for underscores.
METRIC_TITLES = {"krippendorff_alpha": "Krippendorff's alpha", "fleiss_kappa": "Fleiss' kappa",
                 "cohen_kappa": "Cohen's kappa", "gwet_ac1": "Gwet's AC1", "scott_pi": "Scott's pi",
                 "percent_agreement": "percent agreement"}
_RATE_CLAUSES = ("key_error_rate", "annotation_error_rate", "completeness_rate", "scenario_coverage",
                 "label_issue_rate", "geometry_error_rate", "unreviewed_proposal_rate")


def _close(name: str, valid: Iterable[str]) -> str:
    near = difflib.get_close_matches(name, list(valid), n=2)
    return f" (did you mean {' or '.join(map(repr, near))}?)" if near else ""


@dataclass(frozen=True)
class Contract:
    """A parsed, validated contract. ``sections`` holds every table but ``thresholds``."""

    name: str
    thresholds: dict[str, float]
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "dict"

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self.sections.get(section, {}).get(key, default)

    @property
    def parties(self) -> dict[str, Any]:
        return {k: v for k, v in self.sections.get("contract", {}).items() if k != "name"}


def load_contract(spec: str | Path | Mapping[str, Any]) -> Contract:
    """Read and validate a contract from a TOML file or a dict.

    Unknown tables, keys or clause names are errors that list the valid ones; rates
    must lie in [0, 1]; a rate judged by ISO 2859-1 must be an AQL of Table 2-A.

    Examples
    --------
    >>> c = load_contract({"contract": {"name": "demo"}, "thresholds": {"key_error_rate": 0.01}})
    >>> c.name, c.thresholds
    ('demo', {'key_error_rate': 0.01})
    >>> load_contract({"thresholds": {"key_eror_rate": 0.01}})
    Traceback (most recent call last):
    ...
    ValueError: contract [thresholds]: unknown key 'key_eror_rate' (did you mean 'key_error_rate' ...
    """
    source = "dict"
    if isinstance(spec, (str, Path)):
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib
            except ImportError as exc:
                raise ImportError("reading a contract file on Python 3.10 needs tomli: "
                                  "`pip install tomli`") from exc

        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"contract file {path} does not exist; see contracts/example.toml")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"contract file {path} is not valid TOML: {exc}") from None
        source = str(path)
    elif isinstance(spec, Mapping):
        data = dict(spec)
    else:
        raise ValueError(f"contract must be a TOML file path or a dict, got {type(spec).__name__}")
    for section, body in data.items():
        if section not in _SECTIONS:
            raise ValueError(f"contract: unknown table [{section}]{_close(section, _SECTIONS)}; "
                             f"valid tables: {list(_SECTIONS)}")
        if not isinstance(body, Mapping):
            raise ValueError(f"contract [{section}] must be a table of keys, got {body!r}")
        valid = _SECTIONS[section]
        for key, value in body.items():
            if valid and key not in valid:
                raise ValueError(f"contract [{section}]: unknown key {key!r}{_close(key, valid)}; "
                                 f"valid keys: {list(valid)}")
            if valid and (isinstance(value, bool) or not isinstance(value, valid[key])):
                want = valid[key] if isinstance(valid[key], type) else "number"
                raise ValueError(f"contract [{section}] {key} = {value!r}; expected a "
                                 f"{getattr(want, '__name__', want)}")
    thresholds = {k: float(v) for k, v in data.get("thresholds", {}).items()}
    for k, v in thresholds.items():
        if not math.isfinite(v) or v < 0 or (k in _RATE_CLAUSES and v > 1):
            raise ValueError(f"contract [thresholds] {k} = {v}; expected "
                             f"{'a rate in [0, 1]' if k in _RATE_CLAUSES else 'a number >= 0'}")
    sections = {k: dict(v) for k, v in data.items() if k != "thresholds"}
    sampling = sections.get("sampling", {})
    if sampling.get("level", "II") not in LEVELS:
        raise ValueError(f"contract [sampling] level = {sampling['level']!r}; expected one of {LEVELS}")
    decision = sampling.get("decision", "iso2859")
    if decision not in _DECISIONS:
        raise ValueError(f"contract [sampling] decision = {decision!r}; expected one of {_DECISIONS}")
    if sampling.get("interval", "wilson") not in ("wilson", "clopper-pearson"):
        raise ValueError(f"contract [sampling] interval = {sampling['interval']!r}; expected "
                         "'wilson' or 'clopper-pearson'")
    coverage = sections.get("coverage", {})
    unlisted = [a for a in coverage.get("per_class", []) if a not in coverage.get("scenarios", {})]
    if unlisted:
        raise ValueError(f"contract [coverage] per_class names {unlisted}, which [coverage.scenarios] does not "
                         f"list (it lists {list(coverage.get('scenarios', {}))}); add the values every main class "
                         f"needs, e.g. [coverage.scenarios] {unlisted[0]} = [...]")
    if decision == "iso2859":
        for k in ("key_error_rate", "annotation_error_rate"):
            if k in thresholds and not any(math.isclose(thresholds[k] * 100, a) for a in AQLS):
                raise ValueError(f"contract [thresholds] {k} = {thresholds[k]} is {thresholds[k] * 100:g}%, "
                                 f"not an ISO 2859-1 AQL; use one of {[a / 100 for a in AQLS if a <= 10]} "
                                 "or set [sampling] decision = 'upper_bound'")
    name = str(sections.get("contract", {}).get("name", "unnamed contract"))
    return Contract(name=name, thresholds=thresholds, sections=sections, source=source)


# ----------------------------------------------------------------- measurement --
@dataclass(frozen=True)
class Measurement:
    """What the audit measured for one clause.

    ``value`` None means NOT EVALUATED (``reason`` says why). ``low``/``high``: an
    interval of the value; ``n``: how many items it rests on; ``ids``: the items
    behind a failure (images or annotations); ``passed``: a decision made by a rule of
    its own (an ISO 2859-1 plan), else the value is compared with the threshold;
    ``decision``: that rule's outcome in words, with its numbers (a report shows it as
    the measured value).
    """

    value: float | None
    evidence: str = ""
    n: int | None = None
    low: float | None = None
    high: float | None = None
    ids: tuple = ()
    passed: Any = None  # callable threshold -> bool, or None
    reason: str = ""
    judged_on: str = "value"
    decision: str = ""


def not_evaluated(reason: str) -> Measurement:
    return Measurement(value=None, reason=reason)


def measure_completeness(images: Sequence[Any], findings: pd.DataFrame) -> Measurement:
    """Share of images without an error finding of the completeness dimension.

    Examples
    --------
    >>> f = pd.DataFrame({"rule": ["missing_file"], "dimension": ["completeness"],
    ...                   "severity": ["error"], "image": [2]})
    >>> m = measure_completeness([1, 2, 3, 4], f)
    >>> m.value, m.ids
    (0.75, (2,))
    """
    images = list(images)
    if not images:
        return not_evaluated("the project has no images")
    bad = findings[(findings["dimension"] == "completeness") & (findings["severity"] == "error")]
    ids = tuple(sorted(set(bad["image"].dropna().astype(int)) & set(images)))
    by_rule = bad.groupby("rule")["image"].nunique().to_dict()
    what = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in sorted(by_rule.items())) or "no problems"
    return Measurement(value=1 - len(ids) / len(images), n=len(images), ids=ids,
                       evidence=f"{len(images) - len(ids)} of {len(images)} images complete ({what})")


def measure_class_counts(counts: pd.Series, *, minimum: float | None = None) -> Measurement:
    """The smallest number of images of any main class; ``counts``: class -> images."""
    if counts.empty:
        return not_evaluated("no main class has been specified or labeled")
    low = counts.sort_values(kind="stable")
    below = low[low < minimum] if minimum is not None else low.iloc[:0]
    shown = below if len(below) else low.iloc[:3]
    text = ", ".join(f"class {c} ({int(n)} images)" for c, n in shown.items())
    head = f"{len(below)} of {len(counts)} classes below {minimum:g}: " if minimum is not None and len(below) \
        else "fewest images: "
    return Measurement(value=float(low.iloc[0]), n=len(counts), ids=tuple(below.index),
                       evidence=head + text)


def measure_coverage(counts: pd.DataFrame, required: Mapping[str, Sequence[Any]], *,
                     min_images: int = 1, per_class: Mapping[str, pd.DataFrame] | None = None) -> Measurement:
    """Share of required scenarios with at least ``min_images`` images.

    A scenario is an (attribute, value) pair of ``required``; for an attribute of
    ``per_class`` it is a (class, attribute, value) combination instead: every class
    must have ``min_images`` images with each required value (e.g. every class in each
    split).

    Parameters
    ----------
    counts : DataFrame with columns ``attribute``, ``value``, ``images`` (e.g. from
        :func:`labkit.quality.composition.attribute_shares`)
    required : attribute -> the values the contract requires
    per_class : attribute -> images per class (rows, the classes that must be covered) and
        value (columns), e.g. :func:`labkit.quality.composition.coverage_matrix`; a
        required value that is not a column has no image

    Examples
    --------
    >>> c = pd.DataFrame({"attribute": ["light", "light"], "value": ["day", "night"], "images": [9, 1]})
    >>> m = measure_coverage(c, {"light": ["day", "night", "dusk"]}, min_images=2)
    >>> round(m.value, 3), m.ids
    (0.333, ('light=night', 'light=dusk'))
    >>> by_class = pd.DataFrame({"day": [5, 4], "night": [1, 0]}, index=["cat", "dog"])
    >>> m = measure_coverage(c, {"light": ["day", "night"]}, min_images=2, per_class={"light": by_class})
    >>> m.value, m.ids
    (0.5, ('cat × light=night', 'dog × light=night'))
    """
    if not required:
        return not_evaluated("the contract lists no scenarios ([coverage.scenarios])")
    per_class = dict(per_class or {})
    have = {(a, str(v)): int(n) for a, v, n in zip(counts["attribute"], counts["value"], counts["images"])}
    missing, total = [], 0
    for attr, values in required.items():
        if attr in per_class:
            m = per_class[attr].rename(columns=str)
            for cls in m.index:
                for v in values:
                    total += 1
                    if (int(m.at[cls, str(v)]) if str(v) in m.columns else 0) < min_images:
                        missing.append(f"{cls} × {attr}={v}")
            continue
        for v in values:
            total += 1
            if have.get((attr, str(v)), 0) < min_images:
                missing.append(f"{attr}={v}")
    if not total:
        return not_evaluated("the scenarios the contract lists have no value or class to cover")
    what = "scenarios" if not per_class else "scenarios (attribute values, or class × value)"
    text = (f"{total - len(missing)} of {total} {what} have ≥ {min_images} images"
            + (f"; short: {', '.join(missing[:12])}" + (" …" if len(missing) > 12 else "") if missing else ""))
    return Measurement(value=(total - len(missing)) / total, n=total, ids=tuple(missing), evidence=text)


def metric_title(metric: str) -> str:
    """How a report names an agreement metric: ``"krippendorff_alpha"`` -> ``"Krippendorff's alpha"``."""
    return METRIC_TITLES.get(metric, metric.replace("_", " "))


def measure_agreement(interval: Any, *, n_tasks: int, metric: str) -> Measurement:
    """Agreement judged on the lower bound of its interval (an ``AgreementInterval``)."""
    name = metric_title(metric)
    if interval is None or not math.isfinite(getattr(interval, "estimate", float("nan"))):
        return not_evaluated(f"{name} is undefined (fewer than 2 annotators on any image, or one "
                             "label only)")
    return Measurement(value=float(interval.estimate), low=float(interval.low), high=float(interval.high),
                       n=n_tasks, judged_on="low",
                       evidence=f"{name} {interval.estimate:.3f}, {interval.level:.0%} interval "
                                f"[{interval.low:.3f}, {interval.high:.3f}] over {n_tasks} images "
                                f"({interval.n_boot} bootstrap resamples)")


def measure_rate(k: int, n: int, *, ids: Sequence[Any] = (), what: str = "items",
                 interval: str = "wilson") -> Measurement:
    """``k`` of ``n`` items, with a confidence interval (evidence names the first ids)."""
    if n == 0:
        return not_evaluated(f"no {what} to measure")
    rate, low, high = proportion_interval(int(k), int(n), method=interval)
    shown = ", ".join(map(str, list(ids)[:10])) + (" …" if len(ids) > 10 else "")
    return Measurement(value=rate, low=low, high=high, n=int(n), ids=tuple(ids),
                       evidence=f"{k} of {n} {what} ({rate:.1%}; 95% interval {low:.1%}–{high:.1%})"
                                + (f": {shown}" if len(ids) else ""))


# ----------------------------------------------------------------- inspection --
#: Columns of an inspection sheet; ``verdict`` is ``ok`` or ``defect``, ``defect_type``
#: ``key`` (a critical error: wrong class, missed object) or ``minor`` (any other).
INSPECTION_COLUMNS = ("order", "image", "path", "verdict", "defect_type", "inspector", "note")
DEFECT_TYPES = ("key", "minor")


def inspection_template(sample: Sequence[Any], path: str | Path, *,
                        paths: Mapping[Any, Any] | None = None, overwrite: bool = False) -> Path:
    """Write the inspection sheet (CSV) for a drawn sample, one row per item in draw order.

    Inspectors fill ``verdict`` (ok/defect), ``defect_type`` (key/minor), ``inspector``
    and ``note``; :func:`read_inspection` reads it back. An existing sheet is kept
    unless ``overwrite`` (it may hold finished work).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists and may hold inspection results; pass overwrite=True "
                              "or choose another file")
    paths = dict(paths or {})
    df = pd.DataFrame({"order": range(1, len(sample) + 1), "image": list(sample),
                       "path": [str(paths.get(i, "")) for i in sample], "verdict": "", "defect_type": "",
                       "inspector": "", "note": ""}, columns=list(INSPECTION_COLUMNS))
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


def read_inspection(path: str | Path) -> pd.DataFrame:
    """Read an inspection sheet; validate verdicts and defect types.

    Returns the sheet indexed by ``order`` with ``verdict`` in {"ok", "defect", ""}
    ("" = not inspected yet) and ``defect_type`` in {"key", "minor", ""}.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"inspection sheet {path} does not exist")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("order", "image", "verdict", "defect_type") if c not in df.columns]
    if missing:
        raise ValueError(f"inspection sheet {path} lacks columns {missing}; found {list(df.columns)}. "
                         "Start from the template the report writes (inspection_template)")
    for col in ("verdict", "defect_type", "inspector", "note"):
        if col in df.columns:
            df[col] = df[col].str.strip()
    df["verdict"] = df["verdict"].str.lower()
    df["defect_type"] = df["defect_type"].str.lower()
    bad = df[~df["verdict"].isin(["ok", "defect", ""])]
    if len(bad):
        raise ValueError(f"inspection sheet {path}, row order {bad['order'].iloc[0]}: verdict "
                         f"{bad['verdict'].iloc[0]!r}; expected 'ok', 'defect' or empty (not inspected)")
    bad = df[(df["verdict"] == "defect") & ~df["defect_type"].isin(DEFECT_TYPES)]
    if len(bad):
        raise ValueError(f"inspection sheet {path}, row order {bad['order'].iloc[0]}: a defect needs "
                         f"defect_type 'key' (critical) or 'minor', got {bad['defect_type'].iloc[0]!r}")
    df["order"] = pd.to_numeric(df["order"], errors="raise").astype(int)
    as_int = pd.to_numeric(df["image"], errors="coerce")
    if as_int.notna().all():
        df["image"] = as_int.astype(int)
    return df.set_index("order").sort_index()


def measure_inspection(sheet: pd.DataFrame, plan: SamplingPlan, *, threshold: float, errors: str,
                       decision: str = "iso2859", interval: str = "wilson") -> Measurement:
    """Error rate among the first ``plan.sample_size`` inspected items, and the lot decision.

    Parameters
    ----------
    sheet : DataFrame from :func:`read_inspection` (rows in draw order)
    plan : the ISO 2859-1 plan of this clause (AQL = threshold in percent)
    threshold : the contract's maximum rate
    errors : {"key", "any"}
        Count ``key`` defects only (key error rate) or every defect (annotation error rate).
    decision : {"iso2859", "upper_bound", "point"}
        Pass when the plan accepts the lot (defects <= Ac), when the interval's upper
        bound is at most the threshold, or when the observed rate is. With ``iso2859``
        the measurement's ``decision`` states the outcome with the plan's numbers, e.g.
        ``"3 of 50 sampled defective ≤ Ac 3: lot accepted"``.
    """
    n = plan.sample_size
    part = sheet.iloc[:n]
    done = part[part["verdict"] != ""]
    if len(part) < n or len(done) < n:
        return not_evaluated(f"{len(done)} of the {n} sampled images are inspected "
                             f"({plan.describe()}); finish the inspection sheet and run the report again")
    is_err = (done["verdict"] == "defect") & ((done["defect_type"] == "key") if errors == "key" else True)
    k = int(is_err.sum())
    rate, low, high = proportion_interval(k, n, method=interval)
    verdict = plan.decide(k)
    rule = {"iso2859": plan.outcome(k),
            "upper_bound": f"upper bound {high:.1%} vs {threshold:.1%}",
            "point": f"observed {rate:.1%} vs {threshold:.1%}"}[decision]
    passed = {"iso2859": lambda t: verdict == "accept", "upper_bound": lambda t: high <= t,
              "point": lambda t: rate <= t}[decision]
    ids = tuple(done.loc[is_err, "image"])
    return Measurement(value=rate, low=low, high=high, n=n, ids=ids, passed=passed,
                       judged_on={"iso2859": "plan", "upper_bound": "high", "point": "value"}[decision],
                       decision=rule if decision == "iso2859" else "",
                       evidence=f"{k} of {n} inspected images with {'key ' if errors == 'key' else ''}errors "
                                f"(sample rate {rate:.1%}, 95% {_INTERVALS.get(interval, interval)} interval "
                                f"{low:.1%}–{high:.1%}); ISO 2859-1 plan of code {plan.plan_letter}: n = {n}, "
                                f"Ac {plan.accept}, Re {plan.reject}; "
                                + (f"lot {verdict}ed" if decision == "iso2859" else rule))


# -------------------------------------------------------------------- verdict --
@dataclass(frozen=True)
class Verdict:
    """The verdict per clause (``table``) and overall: PASS, FAIL or INCOMPLETE."""

    overall: str
    table: pd.DataFrame
    contract: Contract

    @property
    def counts(self) -> dict[str, int]:
        return self.table["status"].value_counts().to_dict()

    def summary(self) -> str:
        c = self.counts
        parts = [f"{c.get(s, 0)} {s.lower()}" for s in ("PASS", "FAIL", "NOT EVALUATED") if c.get(s)]
        return f"{self.overall}: {len(self.table)} clauses, " + ", ".join(parts)


def _status(clause: str, m: Measurement, direction: str, threshold: float) -> str:
    if m.value is None:
        return "NOT EVALUATED"
    if m.passed is not None:
        return "PASS" if m.passed(threshold) else "FAIL"
    x = {"low": m.low, "high": m.high}.get(m.judged_on, m.value)
    if x is None:
        raise ValueError(f"the measurement of {clause!r} is judged on {m.judged_on!r} but its {m.judged_on} "
                         f"is None; give Measurement({m.judged_on}=...) or judged_on='value'")
    ok = x <= threshold + 1e-12 if direction == "max" else x >= threshold - 1e-12
    return "PASS" if ok else "FAIL"


def evaluate(contract: Contract, measurements: Mapping[str, Measurement]) -> Verdict:
    """Judge every clause of the contract.

    Returns a :class:`Verdict` whose ``table`` is indexed by clause with columns
    ``dimension``, ``description``, ``measured``, ``low``, ``high``, ``threshold``,
    ``rule`` (e.g. ``"<= 0.01"``), ``judged_on``, ``decision`` (the outcome of a rule of the
    measurement's own, in words, or ""), ``status``, ``evidence``, ``ids``, ``n``.
    The overall verdict is FAIL if any clause fails, else INCOMPLETE if any clause is
    NOT EVALUATED, else PASS.

    Examples
    --------
    >>> c = load_contract({"thresholds": {"completeness_rate": 0.99, "label_issue_rate": 0.05}})
    >>> v = evaluate(c, {"completeness_rate": Measurement(1.0, "all 10 complete")})
    >>> v.overall, list(v.table["status"])
    ('INCOMPLETE', ['PASS', 'NOT EVALUATED'])
    """
    unknown = sorted(set(measurements) - set(CLAUSES))
    if unknown:
        raise ValueError(f"measurements for unknown clauses {unknown}; valid clauses: {list(CLAUSES)}")
    rows = []
    order = sorted(contract.thresholds, key=lambda k: (DIMENSIONS.index(CLAUSES[k][0]), list(CLAUSES).index(k)))
    for clause in order:
        threshold = contract.thresholds[clause]
        dim, direction, text = CLAUSES[clause]
        m = measurements.get(clause) or not_evaluated("not measured by this audit")
        rows.append({"clause": clause, "dimension": dim, "description": text, "measured": m.value,
                     "low": m.low, "high": m.high, "threshold": threshold,
                     "rule": f"{'<=' if direction == 'max' else '>='} {threshold:g}",
                     "judged_on": m.judged_on, "decision": m.decision if m.value is not None else "",
                     "status": _status(clause, m, direction, threshold),
                     "evidence": m.evidence if m.value is not None else f"not evaluated: {m.reason}",
                     "ids": list(m.ids), "n": m.n})
    cols = ["clause", "dimension", "description", "measured", "low", "high", "threshold", "rule",
            "judged_on", "decision", "status", "evidence", "ids", "n"]
    table = pd.DataFrame(rows, columns=cols).set_index("clause")
    statuses = set(table["status"])
    overall = "FAIL" if "FAIL" in statuses else "INCOMPLETE" if "NOT EVALUATED" in statuses else "PASS"
    if table.empty:
        overall = "INCOMPLETE"
    return Verdict(overall=overall, table=table, contract=contract)
