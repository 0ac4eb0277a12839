"""The contract audit: everything ``notebooks/quality_audit.ipynb`` shows.

- :mod:`~labkit.reports.audit.audit`: :func:`run_audit` measures a project against a
  contract and returns a :class:`QualityAudit`, one method per report section;
- :mod:`~labkit.reports.audit.sections`: the sections, one function each (a new section
  is a function here and a method of :class:`QualityAudit`);
- :mod:`~labkit.reports.audit.evidence`: thumbnails and galleries embedded in the HTML;
- :mod:`~labkit.reports.audit.inspection`: the ISO 2859-1 sample and its inspection sheet.
"""
from labkit._util.lazy import lazy_exports

_MODULES = {
    "labkit.reports.audit.audit": ["DEFAULT_CONTRACT", "Predictions", "QualityAudit", "delivered_labels",
                                   "load_predictions", "run_audit"],
    "labkit.reports.audit.inspection": ["Inspection", "SHEET_NAME", "check_sheet", "fill_sheet",
                                        "plan_inspection", "write_sheet"],
}
_LAZY = {name: mod for mod, names in _MODULES.items() for name in names}
__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
