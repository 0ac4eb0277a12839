"""OpenCV imported safely from any thread.

OpenCV's first ``import cv2`` is not thread-safe: its loader swaps the module in
``sys.modules`` while it binds the native extension, so a second thread importing at the
same moment gets a module without its Python parts (``cv2.data`` is missing: the face
detector's cascades cannot be found). Threaded code (the anonymised export, image
readers) imports OpenCV through :func:`opencv`.
"""
from __future__ import annotations

import threading
from types import ModuleType

__all__ = ["opencv"]

_LOCK = threading.Lock()


def opencv() -> ModuleType:
    """The ``cv2`` module, fully initialised (``cv2.data`` included), whichever thread asks first.

    Examples
    --------
    >>> opencv().data.haarcascades.endswith("data/")
    True
    """
    with _LOCK:
        import cv2
        import cv2.data  # noqa: F401  (the Haar cascades' folder; bound by the first import)
    return cv2
