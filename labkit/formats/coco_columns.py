"""COCO annotations read column by column: the fast path of :mod:`labkit.formats.coco`.

A batch of well-formed boxes, polygons and compressed-RLE masks (integer ids, known image
and category, finite numbers, no keypoints or extra fields) is checked and converted a
field at a time, over all its annotations at once, into
:class:`~labkit.formats._columns.ObjectColumns`. Anything else sends the batch back to the
record-by-record reader, which says exactly what is wrong; ``tests/store/test_bulk.py``
holds the two to the same results.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from itertools import chain, repeat
from typing import Any, Protocol

import numpy as np
import orjson

from labkit._util.checks import limits
from labkit.formats._base import ImageRecord, ObjectRecord, Problems
from labkit.formats._columns import IntFields, JsonTexts, ObjectColumns

__all__ = ["LONG_RUN", "Header", "read_columns"]

#: pycocotools writes each run in at most 7 characters; 13 continuation characters in a row
#: (65 bits) are never a run length, and decoding them costs time quadratic in their number.
LONG_RUN = re.compile(r"[P-o]{13,}")


class Header(Protocol):
    """What the column path reads of a COCO file's checked images and categories (``coco``'s header)."""

    @property
    def images(self) -> list[ImageRecord]: ...

    @property
    def by_id(self) -> Mapping[Any, ImageRecord]: ...  # image id -> its record

    @property
    def position(self) -> Mapping[Any, int]: ...  # image id -> its place in images

    @property
    def categories(self) -> Mapping[Any, str]: ...  # category id -> class name


FAST_KEYS = frozenset({"id", "image_id", "category_id", "segmentation", "bbox", "area", "iscrowd", "score"})


def read_columns(anns: list[Any], head: Header, *, start: int = 0,
                 read_one: Callable[[Problems, dict[str, Any], str, ImageRecord | None], ObjectRecord | None]
                 ) -> ObjectColumns | None:
    """The objects of well-formed boxes, polygons and masks, checked and converted column by column.

    Returns None as soon as any annotation is not of that common shape (integer ids,
    known image and category, finite numbers, no keypoints or extra fields, within the
    limits): the record-by-record path then reads the file and says exactly what is
    wrong. The result is the same records that path gives (the tests compare them).
    ``read_one`` is that path's reader of one annotation (``coco._read_annotation``), which
    checks the masks whose RLE is not a compressed string.
    """
    by_id, categories = head.by_id, head.categories
    if set(map(type, anns)) - {dict} or not FAST_KEYS.issuperset(chain.from_iterable(anns)):
        return None

    def column(key: str) -> list[Any]:  # each annotation's value (_ABSENT where it has none), one C-level map
        return list(map(dict.get, anns, repeat(key), repeat(_ABSENT)))

    image_ids, category_ids = column("image_id"), column("category_id")
    if set(map(type, image_ids)) | set(map(type, category_ids)) != {int} \
            or not set(image_ids) <= by_id.keys() or not set(category_ids) <= categories.keys():
        return None
    ids, crowd, scores, areas = column("id"), column("iscrowd"), column("score"), column("area")
    whole = _ABSENT not in ids and _ABSENT not in crowd  # every annotation has an id and iscrowd (the usual file)
    if not whole:
        ids, crowd = [v for v in ids if v is not _ABSENT], [v for v in crowd if v is not _ABSENT]
    scores = [v for v in scores if v is not _ABSENT]  # a null score is not a number: the record path says so
    areas = [v for v in areas if v is not _ABSENT and v is not None]  # a null area is as good as none
    if set(map(type, ids)) - {int} or len(set(ids)) != len(ids) or set(map(type, crowd)) - {int}:
        return None
    try:
        if _floats(scores) is None or _floats(areas) is None:
            return None
    except (TypeError, OverflowError):
        return None
    segs: list[Any] = list(map(dict.get, anns, repeat("segmentation")))  # None where absent, as null
    if set(map(type, segs)) - {list, dict, type(None)}:
        return None
    boxes = [i for i, seg in enumerate(segs) if not seg]
    polys = [i for i, seg in enumerate(segs) if seg and type(seg) is list]
    masks = [i for i, seg in enumerate(segs) if seg and type(seg) is dict]
    bboxes = [anns[i].get("bbox") for i in boxes]
    if set(map(type, bboxes)) - {list} or set(map(len, bboxes)) - {4}:
        return None
    parts = [part for i in polys for part in segs[i]]
    limit = limits._get("max_polygon_points")
    if set(map(type, parts)) - {list} or any(len(p) < 6 or len(p) % 2 for p in parts) or (
            limit is not None and any(sum(map(len, segs[i])) // 2 > limit for i in polys)):
        return None
    try:
        b = _floats(list(chain.from_iterable(bboxes)))
        flat = _floats(list(chain.from_iterable(parts)))
    except (TypeError, OverflowError):
        return None
    if b is None or flat is None:
        return None
    b = b.reshape(-1, 4)
    if (b[:, 2:] < 0).any():
        return None
    n = len(anns)
    texts: list[Any] = [None] * n  # each object's geometry as JSON text (JsonTexts)
    extent = np.full((n, 4), np.nan)
    if boxes:
        corners = np.column_stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]])
        extent[boxes] = corners
        for i, row in zip(boxes, _row_texts(corners)):
            texts[i] = _BOX % tuple(row.split(","))
    if polys:
        xy = flat.reshape(-1, 2)
        counts = [sum(map(len, segs[i])) // 2 for i in polys]  # points of each polygon, all its rings
        first = np.r_[0, np.cumsum(counts)[:-1]]
        extent[polys] = np.hstack([np.minimum.reduceat(xy, first), np.maximum.reduceat(xy, first)])
        rings = iter(_ring_texts(xy, [len(part) // 2 for i in polys for part in segs[i]]))
        for i in polys:
            if len(segs[i]) == 1:
                texts[i] = '{"points":[' + next(rings) + "]}"
            else:
                texts[i] = '{"parts":[' + ",".join('{"points":[' + next(rings) + "]}" for _ in segs[i]) + "]}"
    strings = [i for i in masks if type(segs[i].get("counts")) is str]  # compressed RLE: decoded all at once
    if strings:
        rles = _fast_masks([segs[i] for i in strings], [by_id[anns[i]["image_id"]] for i in strings])
        if rles is None:
            return None
        for i, g in zip(strings, rles):
            texts[i] = orjson.dumps(g).decode()
    pr = Problems("")
    score_of = [None if (v := a.get("score")) is None else float(v) for a in anns] if scores else None
    for i in masks:  # other RLE: the record path's checks, one by one
        if texts[i] is None:
            obj = read_one(pr, anns[i], f"annotations[{start + i}]", by_id[anns[i]["image_id"]])
            if pr or obj is None:
                return None
            texts[i] = orjson.dumps(obj.geometry).decode()
            if score_of is not None:
                score_of[i] = obj.score
    kinds = ["box"] * n
    for i in polys:
        kinds[i] = "polygon"
    for i in masks:
        kinds[i] = "mask"
    if whole:
        provenance: Sequence[dict[str, Any]] = IntFields("coco", {
            "id": ids, "image_id": image_ids, "category_id": category_ids, "iscrowd": crowd})
    else:
        provenance = [{"coco": {k: a[k] for k in _PROVENANCE if k in a}} for a in anns]
    position = head.position
    return ObjectColumns(images=head.images, at=np.fromiter(map(position.__getitem__, image_ids), np.int64, n),
                         kinds=kinds, labels=list(map(categories.__getitem__, category_ids)), geometry=JsonTexts(texts),
                         extent=extent, scores=score_of, provenance=provenance, start=start)


def _fast_masks(segs: list[dict[str, Any]], images: list[ImageRecord]) -> list[Any] | None:
    """Canonical geometry of compressed-RLE masks at their images' size, decoded all at once
    (:func:`~labkit.geometry.bulk.normalize_many`); None if any is not that (the record path says why)."""
    from labkit.geometry.bulk import normalize_many

    if not all("size" in s and "counts" in s for s in segs):
        return None
    sizes, counts = [s["size"] for s in segs], [s["counts"] for s in segs]
    if set(map(type, sizes)) - {list} or set(map(len, sizes)) != {2} or set(map(type, counts)) - {str} \
            or {type(v) for z in sizes for v in z} != {int}:
        return None
    most = limits._get("max_image_pixels")
    if any(im.width is None or im.height is None or z != [im.height, im.width]
           or (most is not None and im.width * im.height > most) for z, im in zip(sizes, images)):
        return None
    if any(LONG_RUN.search(c) for c in counts):
        return None
    out, bad = normalize_many(["mask"] * len(segs), [{"size": z, "counts": c} for z, c in zip(sizes, counts)],
                              [im.width for im in images], [im.height for im in images])
    return None if bad else out


_BOX = '{"x0":%s,"y0":%s,"x1":%s,"y1":%s}'
_CLOSE_BRACKET = 93  # ]


def _row_texts(a: np.ndarray) -> list[str]:
    """Each row of a float array ``(m, k)`` as orjson writes a list of those floats, without the
    brackets (``"x0,y0,x1,y1"``): one orjson call for them all (it writes a float64 of numpy as it
    writes a Python float)."""
    if not len(a):
        return []
    return orjson.dumps(np.ascontiguousarray(a), option=orjson.OPT_SERIALIZE_NUMPY).decode()[2:-2].split("],[")


def _ring_texts(xy: np.ndarray, sizes: list[int]) -> list[str]:
    """The points ``xy`` ``(m, 2)`` cut into rings of ``sizes`` points, each written as orjson writes
    a list of ``[x, y]`` lists, without its outer brackets (``"[x,y],[x,y],..."``)."""
    text = orjson.dumps(np.ascontiguousarray(xy), option=orjson.OPT_SERIALIZE_NUMPY)
    ends = np.flatnonzero(np.frombuffer(text, np.uint8) == _CLOSE_BRACKET)[:-1]  # each point's "]"
    starts = np.r_[1, ends[:-1] + 2]  # its "[" (after the previous point's "],")
    last = np.cumsum(sizes)
    decoded = text.decode()
    return [decoded[a:b] for a, b in zip(starts[last - np.asarray(sizes)].tolist(), (ends[last - 1] + 1).tolist())]


_PROVENANCE = ("id", "image_id", "category_id", "iscrowd")
_ABSENT = object()  # a key an annotation does not have (a null value is None)


def _floats(values: list[Any]) -> Any:
    """``values`` as a float array when all are finite ints or floats (not bools); else None."""
    if not set(map(type, values)) <= {int, float}:
        return None
    arr = np.array(values, dtype=np.float64) if values else np.zeros(0)
    return arr if np.isfinite(arr).all() else None
