"""Read and write annotation files: COCO, AI-Hub, Label Studio, CVAT, YOLO.

Every reader returns a :class:`Dataset` with canonical geometry (``docs/data-model.md``)
and raises one :class:`FormatError` listing every problem in the file.

Examples
--------
>>> from labkit.formats import list_formats, get_reader
>>> list_formats()
['aihub', 'coco', 'cvat', 'labelstudio', 'yolo']
"""
from labkit.formats._base import Dataset, FormatError, ImageRecord, ObjectRecord
from labkit.formats._registry import FORMATS, get_reader, get_writer, list_formats

__all__ = [
    "FORMATS",
    "Dataset",
    "FormatError",
    "ImageRecord",
    "ObjectRecord",
    "get_reader",
    "get_writer",
    "list_formats",
]
