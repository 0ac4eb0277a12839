"""The audit that ends ``make demo``: the demo project against a demo contract.

:func:`audit_demo` trains a small model pool on the delivered labels (the simulated
annotators' majority; the dataset's own labels, annotator ``sklearn-digits``, are the
reference and not part of the delivery), draws the ISO 2859-1 sample, has a
*simulated* inspector check it against the reference (recorded as such in the sheet),
and runs ``notebooks/quality_audit.ipynb``.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from labkit.demo.build import PHOTOS
from labkit.geometry import box_iou
from labkit.quality.acceptance import load_contract
from labkit.reports.audit import delivered_labels
from labkit.reports.audit.inspection import fill_sheet, plan_inspection, write_sheet
from labkit.reports.runner import ReportResult, run_report
from labkit.services.project import Project

__all__ = ["DEMO_CONTRACT", "REFERENCE", "audit_demo"]

REFERENCE = "sklearn-digits"
INSPECTOR = "simulated inspector (checks against the dataset's own labels and the demo's reference boxes)"

DEMO_CONTRACT = """\
# The demo contract: the delivery is the simulated annotators' work; the dataset's own
# labels (annotator sklearn-digits) are the reference the simulated inspector uses.
[contract]
name = "labkit demo: digits and photos, delivery 1"
provider = "four simulated annotators"
user = "labkit demo"

[thresholds]
key_error_rate = 0.025
annotation_error_rate = 0.04
completeness_rate = 0.99
images_per_class = 20
scenario_coverage = 1.0
agreement = 0.667
label_issue_rate = 0.10
duplicate_conflicts = 0
geometry_error_rate = 0.01

[taxonomy]
main_classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]

[requirements]
annotation_kinds = ["label", "box"]
attributes = ["source"]

[coverage]
min_images = 4

[coverage.scenarios]
split = ["digits", "photos"]

[sampling]
level = "II"
seed = 0

[agreement]
metric = "krippendorff_alpha"
n_boot = 1000

[annotations]
exclude_workers = ["sklearn-digits"]

[validation]
pool_accuracy = 0.80
"""


def _simulated_verdicts(project: Project, sample, delivered) -> dict[int, tuple[str, str, str]]:
    """Inspect the sample against the reference: a wrong digit is a key error; a photo box
    off its reference (IoU < 0.5) a minor one, a missing object a key one."""
    ann = project.annotations()
    ref = ann[(ann["worker"] == REFERENCE) & (ann["kind"] == "label")].set_index("task")["label"]
    paths = project.images()["path"]
    photo_refs = {f"{name}.png": objs for name, objs in PHOTOS}
    out = {}
    for img in (int(i) for i in sample):
        if img in ref.index:
            got = delivered.get(img)
            ok = got == ref[img]
            out[img] = ("ok", "", "") if ok else ("defect", "key", f"labeled {got}, the image shows {ref[img]}")
            continue
        objs = photo_refs.get(Path(paths[img]).name, [])
        boxes = ann[(ann["task"] == img) & (ann["kind"] == "box") & (ann["worker"] != REFERENCE)]
        problems, severity = [], "minor"
        for cls, box in objs:
            drawn = boxes[boxes["label"] == cls]
            if drawn.empty:
                problems.append(f"no {cls} box")
                severity = "key"
                continue
            iou = box_iou(np.array([box], float), drawn[["x0", "y0", "x1", "y1"]].to_numpy(float)
                          if "x0" in drawn else np.array([[g["x0"], g["y0"], g["x1"], g["y1"]]
                                                          for g in drawn["geometry"]], float))
            if iou.min() < 0.5:
                problems.append(f"{cls} box IoU {iou.min():.2f} with the reference")
        out[img] = ("defect", severity, "; ".join(problems)) if problems else ("ok", "", "")
    return out


def audit_demo(project: Project | str | Path = "demo_project", out_dir: str | Path = "demo_project/reports", *,
               train_pool: bool = True, pool_options: dict | None = None, progress: bool = True,
               log: Callable[[str], None] | None = None) -> ReportResult:
    """Audit the demo project and return the :class:`~labkit.reports.runner.ReportResult`.

    Parameters
    ----------
    project : Project or folder built by ``labkit demo``
    out_dir : where the report, the demo contract and the inspection sheet go
    train_pool : train (or reuse) the model pool ``"default"`` so the cleanliness and
        model-validation sections are evaluated; False leaves them NOT EVALUATED
    pool_options : options for ``ModelPool.train`` (default: resnet10t at 16 px, two
        training-set sizes, 3 folds, 20 epochs: 6 models, about 75 s on 2 CPU cores)
    progress : show progress bars (live on a terminal or in a notebook, a few lines in a log)
    log : called with one line as each stage starts and ends (e.g. ``print``), with its time
    """
    say = _stages(log)
    p = Project.open(project) if isinstance(project, (str, Path)) else project
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    contract_path = out / "demo_contract.toml"
    contract_path.write_text(DEMO_CONTRACT)
    contract = load_contract(contract_path)
    ann = p.annotations()
    delivered = delivered_labels(ann, p.classes(), references=[REFERENCE])  # as every view: the reference is no vote
    if train_pool:
        from labkit.models.pool import ModelPool

        # measured on the demo (2 CPU cores, one run): resnet10t at 16 px (the digits are 8 px),
        # 20 epochs, batch 16, two models at a time: 0.89 cross-fitted accuracy against the
        # delivered labels in 73 s; resnet18 at 32 px, 15 epochs, batch 32, one at a time:
        # 0.88 in 147 s. Fewer steps stay near chance. Images are decoded in this process:
        # for 300 small images, starting DataLoader workers costs more than it saves.
        options: dict[str, Any] = {"archs": ("resnet10t",), "fractions": (0.5, 1.0), "folds": 3, "epochs": 20,
                                   "batch_size": 16, "image_size": 16, "jobs": 2, "num_workers": 0,
                                   "progress": progress}
        options.update(pool_options or {})
        n = len(options["archs"]) * len(options["fractions"]) * options["folds"]
        with say(f"training the model pool ({n} {'/'.join(options['archs'])} models at "
                 f"{options['image_size']} px, cross-fitted)"):
            pool = ModelPool.train(p, labels=delivered[delivered.isin([str(d) for d in range(10)])], **options)
        with say(f"scoring {len(p.images())} images with the pool"):
            pool.predict(p, num_workers=0, progress=progress)  # saved in the project; the report reuses them
    plan = plan_inspection(p.images().index, contract)
    sheet = out / "demo_inspection_sheet.csv"
    with say(f"inspecting the ISO 2859-1 sample ({len(plan.sample)} images, simulated inspector)"):
        write_sheet(p, plan, sheet, overwrite=True)
        fill_sheet(sheet, _simulated_verdicts(p, plan.sample, delivered), inspector=INSPECTOR)
    with say("rendering the audit report (papermill)"):
        return run_report("quality_audit", project=p.location, out_dir=out,
                          params={"contract": str(contract_path.resolve()), "inspection": str(sheet.resolve()),
                                  "predictions": "auto" if train_pool else "none",
                                  "title": "Data quality audit: labkit demo project"})


def _stages(log: Callable[[str], None] | None) -> Callable[[str], contextlib.AbstractContextManager[None]]:
    """``with say("what"):`` logs "what ..." and then "what: done in N s" (nothing without ``log``)."""
    @contextlib.contextmanager
    def say(what: str) -> Iterator[None]:
        if log is None:
            yield
            return
        log(f"{what} ...")
        t = time.perf_counter()
        yield
        log(f"{what}: done in {time.perf_counter() - t:.0f} s")
    return say
