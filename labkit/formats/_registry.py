"""Format registry: name -> (reader or None, writer or None)."""
from __future__ import annotations

import difflib
from collections.abc import Callable

from labkit.formats import aihub, coco, coco_write, cvat, labelstudio, yolo

#: ``name -> (read(path, **options) -> Dataset or None, write(dataset, path, **options) or None)``
FORMATS: dict[str, tuple[Callable | None, Callable | None]] = {
    "aihub": (aihub.read, aihub.write),
    "coco": (coco.read, coco_write.write),
    "cvat": (cvat.read, cvat.write),
    "labelstudio": (labelstudio.read, labelstudio.write),
    "yolo": (yolo.read, yolo.write),
}


def list_formats() -> list[str]:
    """Registered format names, sorted."""
    return sorted(FORMATS)


def _entry(name: str) -> tuple[Callable | None, Callable | None]:
    if name not in FORMATS:
        close = difflib.get_close_matches(str(name).lower(), FORMATS, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown format {name!r}; valid formats: {', '.join(list_formats())}{hint}")
    return FORMATS[name]


def get_reader(name: str) -> Callable:
    """The ``read(path, **options) -> Dataset`` function of format ``name``.

    Examples
    --------
    >>> get_reader("coco").__module__
    'labkit.formats.coco'
    """
    reader = _entry(name)[0]
    if reader is None:
        raise ValueError(f"format {name!r} cannot be read; formats with a reader: "
                         f"{', '.join(n for n in list_formats() if FORMATS[n][0])}")
    return reader


def get_writer(name: str) -> Callable:
    """The ``write(dataset, path, **options)`` function of format ``name``."""
    writer = _entry(name)[1]
    if writer is None:
        raise ValueError(f"format {name!r} cannot be written; formats with a writer: "
                         f"{', '.join(n for n in list_formats() if FORMATS[n][1])}")
    return writer
