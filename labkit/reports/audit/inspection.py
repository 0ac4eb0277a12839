"""Sampling inspection of a project: the ISO 2859-1 plans a contract asks for, the
reproducible sample, and the inspection sheet (CSV) inspectors fill in."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from labkit.quality import acceptance as acc
from labkit.quality.sampling import AQLS, SamplingPlan, draw_sample, sampling_plan

if TYPE_CHECKING:
    from labkit.services.project import Project

#: Contract clauses judged by sampling inspection, and which defects each counts.
INSPECTED = {"key_error_rate": "key", "annotation_error_rate": "any"}
SHEET_NAME = "inspection_sheet.csv"


@dataclass(frozen=True)
class Inspection:
    """The plans per clause, the drawn sample (draw order) and the seed."""

    plans: dict[str, SamplingPlan]
    sample: pd.Index
    seed: int


def plan_inspection(image_ids: Any, contract: acc.Contract, *, seed: int | None = None) -> Inspection:
    """ISO 2859-1 plans for the contract's inspected clauses and one shared sample.

    The lot is every image. The AQL of a clause is its threshold in percent (a
    decision rule other than ``iso2859`` takes the nearest AQL, for the sample size).
    One sample of the largest n is drawn; each clause inspects the first n of it.
    """
    ids = pd.Index(image_ids)
    seed = int(contract.get("sampling", "seed", 0) if seed is None or seed < 0 else seed)
    level = contract.get("sampling", "level", "II")
    exact = contract.get("sampling", "decision", "iso2859") == "iso2859"
    plans = {}
    for clause in INSPECTED:
        if clause not in contract.thresholds or not len(ids):
            continue
        pct = contract.thresholds[clause] * 100
        aql = round(pct, 6) if exact else min(AQLS, key=lambda a: abs(a - pct))
        plans[clause] = sampling_plan(len(ids), aql, level=level)
    n = max((p.sample_size for p in plans.values()), default=0)
    return Inspection(plans, draw_sample(ids, n, seed=seed), seed)


def write_sheet(project: Project, inspection: Inspection, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the inspection sheet for ``inspection.sample`` (absolute image paths included)."""
    paths = {int(i): str(project.image_path(int(i))) for i in inspection.sample}
    return acc.inspection_template(list(inspection.sample), path, paths=paths, overwrite=overwrite)


def check_sheet(sheet: pd.DataFrame, inspection: Inspection, path: Any) -> None:
    """A filled sheet must list the drawn sample in draw order."""
    drawn = [int(i) for i in inspection.sample]
    got = [int(i) for i in sheet["image"].iloc[:len(drawn)]]
    if got != drawn:
        raise ValueError(f"inspection sheet {path} lists images {got[:8]}…, but the sample drawn for this lot "
                         f"(seed {inspection.seed}) is {drawn[:8]}…; fill in the sheet the audit writes "
                         f"({SHEET_NAME}) for this project and contract")


def fill_sheet(path: str | Path, verdicts: dict[int, tuple[str, str, str]], *, inspector: str) -> Path:
    """Record verdicts in a sheet: image id -> (verdict, defect_type, note). Other rows are kept."""
    path = Path(path)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for k, row in df.iterrows():
        v = verdicts.get(int(row["image"]))
        if v is not None:
            df.loc[k, ["verdict", "defect_type", "note", "inspector"]] = [v[0], v[1], v[2], inspector]
    df.to_csv(path, index=False)
    return path
