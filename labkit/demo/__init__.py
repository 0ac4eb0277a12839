"""The demo: a project built from images that ship with installed packages, and its audit.

- :func:`build_demo` (:mod:`~labkit.demo.build`): digits from scikit-learn and photos from
  scikit-image, labeled by four simulated annotators (``labkit demo``);
- :func:`audit_demo` (:mod:`~labkit.demo.audit`): trains a small model pool and renders the
  quality audit against the demo's own contract (the end of ``make demo``).

Names load on first use.
"""
from labkit._util.lazy import lazy_exports

_MODULES = {
    "labkit.demo.build": ["DIGIT_CLASSES", "PHOTO_CLASSES", "PHOTOS", "SIMULATED", "SimulatedAnnotator",
                          "build_demo", "summary"],
    "labkit.demo.audit": ["DEMO_CONTRACT", "REFERENCE", "audit_demo"],
}
_LAZY = {name: mod for mod, names in _MODULES.items() for name in names}
__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
