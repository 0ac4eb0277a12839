"""Anonymisation for exports of images of people: face blurring, metadata stripping, pseudonyms.

OpenCV and Pillow load on first use, so importing this package costs nothing.
"""
from labkit._util.lazy import lazy_exports

__all__ = ["detect_faces", "blur_regions", "anonymize_image", "save_clean", "read_metadata",
           "pseudonym", "new_salt"]

_LAZY = {"detect_faces": "labkit.privacy.faces", "blur_regions": "labkit.privacy.faces",
         "anonymize_image": "labkit.privacy.faces", "save_clean": "labkit.privacy.metadata",
         "read_metadata": "labkit.privacy.metadata", "pseudonym": "labkit.privacy.pseudonyms",
         "new_salt": "labkit.privacy.pseudonyms"}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
