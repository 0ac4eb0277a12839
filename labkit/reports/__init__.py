"""labkit.reports: reproducible quality reports (papermill notebooks rendered to offline HTML).

- :func:`run_report` (:mod:`~labkit.reports.runner`): run ``notebooks/NAME.ipynb`` with
  parameters, keep the executed notebook, render HTML without code and record version,
  parameters, data hashes and time;
- :func:`run_audit` (:mod:`labkit.reports.audit`): the contract audit behind
  ``notebooks/quality_audit.ipynb``, one call per report section;
- :func:`plan_inspection` / :func:`write_sheet`: the ISO 2859-1 sample and its
  inspection sheet;
- :func:`registered`: the reports made from a project; :func:`forget_reports` withdraws
  those that may show a data subject's erased images (:mod:`labkit.services.report_registry`).

The demo's audit is :func:`labkit.demo.audit_demo`. Names load on first use: importing
this package loads neither papermill nor nbconvert.
"""
from __future__ import annotations

from labkit._util.lazy import lazy_exports

_MODULES = {
    "labkit.reports.runner": ["ReportError", "ReportParameterError", "ReportResult", "list_reports",
                              "report_parameters", "run_report"],
    "labkit.reports.audit.audit": ["DEFAULT_CONTRACT", "QualityAudit", "delivered_labels", "load_predictions",
                                   "run_audit"],
    "labkit.reports.audit.inspection": ["plan_inspection", "write_sheet", "fill_sheet"],
    "labkit.services.report_registry": ["forget_reports", "register", "registered"],
}
_LAZY = {name: mod for mod, names in _MODULES.items() for name in names}
__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
