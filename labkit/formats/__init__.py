"""Read and write annotation files: COCO, AI-Hub, Label Studio, CVAT, YOLO.

Every reader returns a :class:`Dataset` with canonical geometry (``docs/data-model.md``)
and raises one :class:`FormatError` listing every problem in the file. Files are read as
hostile: :data:`limits` bounds what a file may ask of labkit (points per polygon, image
pixels, nesting depth), for the readers and the rest of labkit alike.

Examples
--------
>>> from labkit.formats import list_formats, get_reader
>>> list_formats()
['aihub', 'coco', 'cvat', 'labelstudio', 'yolo']
"""
from labkit._util.checks import Limits, limits
from labkit.formats._base import Dataset, FormatError, ImageRecord, ObjectRecord
from labkit.formats._registry import FORMATS, get_reader, get_writer, list_formats

__all__ = [
    "FORMATS",
    "Dataset",
    "FormatError",
    "ImageRecord",
    "Limits",
    "ObjectRecord",
    "get_reader",
    "get_writer",
    "limits",
    "list_formats",
]
