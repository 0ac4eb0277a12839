"""labkit.services: the workflows that span the store, the models and the reports.

- :class:`Project` (:mod:`~labkit.services.project`): the public front of a project;
- :mod:`~labkit.services.interchange`, :mod:`~labkit.services.export`: import and export in
  other tools' formats;
- :mod:`~labkit.services.consensus`, :mod:`~labkit.services.adjudication`,
  :mod:`~labkit.services.gold`: consensus, decisions by a person, gold items;
- :mod:`~labkit.services.erasure`: the right to erasure, with registered erasers;
- :mod:`~labkit.services.privacy_report`, :mod:`~labkit.services.verify`: what a data
  protection officer and an integrity check ask of a project;
- :mod:`~labkit.services.report_registry`: where a project's reports went.

Names load on first use.
"""
from labkit._util.lazy import lazy_exports

_MODULES = {
    "labkit.services.project": ["Project"],
    "labkit.services.interchange": ["ImportProblem", "ImportSummary"],
    "labkit.services.consensus": ["annotator_table", "write_consensus"],
    "labkit.services.gold": ["add_gold", "gold_answers", "gold_queue"],
    "labkit.services.adjudication": ["Decision", "adjudicate", "undo_adjudication"],
    "labkit.services.erasure": ["Erasure", "forget_subject", "list_erasers", "register_eraser"],
    "labkit.services.privacy_report": ["PrivacyReport"],
    "labkit.services.verify": ["verify_project"],
    "labkit.services.summary": ["project_summary"],
}
_LAZY = {name: mod for mod, names in _MODULES.items() for name in names}
__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
