"""COCO object detection / instance segmentation JSON.

Reading maps an annotation with

* a ``segmentation`` list of flat polygons to kind ``polygon`` (``parts`` when several),
* a ``segmentation`` RLE dict (compressed string or uncompressed list) to ``mask``,
* ``keypoints`` and no segmentation, whose ``bbox`` is missing or spans just the labelled
  keypoints, to ``point`` (this is how the writer stores points),
* otherwise its ``bbox`` ``[x, y, w, h]`` to ``box``.

``score`` (detection results) is kept; COCO ids, ``iscrowd`` and any other annotation
field go to ``provenance["coco"]`` so that a re-export keeps them. Extra image fields
(``license``, ``coco_url``, ...) become image attributes.

Writing (:mod:`labkit.formats.coco_write`) recomputes ``area`` and ``bbox``: polygon area
is the shoelace area summed over parts (as in the COCO release files), mask area and box come from pycocotools. Ellipses
are written as 64-vertex polygons, polygons with holes as RLE masks, points as keypoint
annotations; image-level labels have no COCO form and are skipped with a warning.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import islice, repeat
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from labkit._util.checks import json_problems
from labkit.formats import _shapes, coco_columns
from labkit.formats._base import (
    Dataset,
    FormatError,
    ImageRecord,
    ObjectRecord,
    Problems,
    load_json,
    show,
)
from labkit.formats._columns import ObjectColumns
from labkit.formats._jsonscan import Layout, Unmapped, scan
from labkit.formats.coco_columns import LONG_RUN as _LONG_RUN

_ANN_KEYS = {"id", "image_id", "category_id", "segmentation", "bbox", "area", "iscrowd", "score"}
_IMAGE_KEYS = {"id", "file_name", "width", "height"}



def read(path: str | Path) -> Dataset:
    """Read a COCO JSON file (``images``, ``categories``, ``annotations``).

    Raises
    ------
    FormatError
        Listing every problem: invalid JSON, missing keys, unknown image or category
        ids, polygons with fewer than 3 points, non-finite numbers, corrupt RLE.
    """
    path = Path(path)
    data = load_json(path)
    if isinstance(data, list):
        raise FormatError(path, [("", "top level is a list (a COCO results file?); expected an "
                                      "object with 'images', 'categories' and 'annotations'")])
    pr = Problems(path)
    if not pr.require(data, ("images", "categories", "annotations"), "top level"):
        pr.raise_if_any()
    for key in ("images", "categories", "annotations"):
        if not isinstance(data[key], list):
            pr.add(key, f"is {type(data[key]).__name__}; expected a list")
    pr.raise_if_any()
    head = _Header(pr, data["categories"], data["images"])
    fast = None if pr else _fast_annotations(data["annotations"], head)
    if fast is not None:
        return Dataset(images=head.images, objects=fast, classes=list(head.categories.values()))
    objects = _record_annotations(pr, data["annotations"], head, {})
    pr.raise_if_any()
    return Dataset(images=head.images, objects=objects, classes=list(head.categories.values()))


#: Annotations a streamed read converts at a time (:func:`stream`).
STREAM_BATCH = 25_000


def stream(path: str | Path, *, batch: int | None = None) -> Dataset:
    """Read a COCO file with memory bounded by ``batch`` annotations, not by the file.

    ``images`` and ``categories`` are read (and checked) at once; the annotations come
    from the returned dataset's ``batches()``, which yields the objects ``batch`` (default
    :data:`STREAM_BATCH`) annotations at a time. The file is mapped with numpy and parsed
    by orjson a batch at a time (:mod:`labkit.formats._jsonscan`, ~10x ijson's speed);
    where the map gives up (anything orjson and ijson could read differently), ijson
    reads the file from there, as it did before the map existed. Each
    batch checked and converted as :func:`read` would (the same records, the same
    ``annotations[i]`` in messages).
    After the last batch it raises the :class:`FormatError` :func:`read` would have raised
    for a bad record anywhere in the file, so a consumer that writes as it goes must do so
    in a transaction it can roll back. A file :func:`read` would refuse before its
    annotations (not JSON, no ``images`` list, a bad image or category record) is refused
    here by :func:`read` itself, with its messages.
    """
    import ijson

    path, batch = Path(path), batch or STREAM_BATCH
    layout, parts = _mapped(path)
    if layout is None:
        try:  # images usually come before the annotations: their pass stops where they end
            parts = {key: _top_level(path, key) for key in ("images", "categories")}
        except (ijson.JSONError, UnicodeDecodeError, OSError):
            return read(path)  # raises, saying where the file is broken
    images, categories = parts["images"], parts["categories"]
    if images is None or categories is None:
        return read(path)
    pr = Problems(path)
    head = _Header(pr, categories, images)
    if pr:
        return read(path)
    del parts, images, categories

    def batches() -> Iterator[Sequence[ObjectRecord]]:
        bad = Problems(path)
        ann_ids = _SeenIds()  # COCO ids are unique across the whole file
        n = 0
        try:
            for chunk in _annotation_chunks(path, layout, batch):
                yield _batch(bad, chunk, head, ann_ids, n)
                n += len(chunk)
        except (ijson.JSONError, UnicodeDecodeError):
            read(path)  # the file changed under us: say what is wrong with it now
            raise FormatError(path, [("", "the file changed while it was being read")]) from None
        if n == 0:  # no annotations, or no list of them: read says which
            if read(path).objects:
                raise FormatError(path, [("", "the file changed while it was being read")])
        bad.raise_if_any()

    return Dataset(images=head.images, objects=[], classes=list(head.categories.values()), batches=batches)


def _mapped(path: Path) -> tuple[Layout | None, dict[str, Any]]:
    """The file's layout (:func:`~labkit.formats._jsonscan.scan`) and its ``images`` and ``categories``
    (``None`` where absent or not lists), parsed by orjson; ``(None, {})`` where the map does not
    apply and ijson reads the file as before."""
    try:
        layout = scan(path, ["annotations"])
        doc = layout.skeleton() if layout is not None else None
    except (Unmapped, OSError):
        return None, {}
    if layout is None or doc is None:
        return None, {}
    return layout, {k: v if isinstance(v := doc.get(k), list) else None for k in ("images", "categories")}


def _annotation_chunks(path: Path, layout: Layout | None, batch: int) -> Iterator[list[Any]]:
    """The file's annotations ``batch`` at a time: from the map (orjson) while it can, then by ijson
    from where it could not on (the same values: the map gives up wherever the two could differ)."""
    import ijson

    done = 0
    if layout is not None:
        try:
            for mapped in layout.items("annotations", batch):
                yield mapped
                done += len(mapped)
            return
        except (Unmapped, OSError):
            pass
    with path.open("rb") as f:
        chunk: list[Any] = []
        for ann in islice(ijson.items(f, "annotations.item", use_float=True), done, None):
            chunk.append(ann)
            if len(chunk) == batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _top_level(path: Path, key: str) -> list[Any] | None:
    """The list under the top-level ``key`` of a JSON file, or None if there is none.

    ijson parses only up to the end of that list. A key written twice (RFC 8259 leaves it
    to the reader) is read at its first occurrence, where ``json.load`` keeps the last.
    """
    import ijson

    with path.open("rb") as f:
        found = next(ijson.items(f, key, use_float=True), None)
    return found if isinstance(found, list) else None


def _batch(pr: Problems, anns: list[Any], head: _Header, seen: _SeenIds, start: int) -> Sequence[ObjectRecord]:
    """The objects of ``anns`` (``annotations[start:start + len(anns)]``): the column path when it can."""
    fast = None if pr else _fast_annotations(anns, head, start=start)
    if fast is not None:
        ids: list[Any] = list(map(dict.get, anns, repeat("id")))  # dicts: the fast path checked
        at = None
        if None in ids:  # results files may omit ids
            at = [i for i, v in enumerate(ids) if v is not None]
            ids = [ids[i] for i in at]
        if seen.add(ids, start, at):
            return fast
    return _record_annotations(pr, anns, head, seen.as_dict(), start=start)


class _SeenIds:
    """The annotation ids a streamed read has seen, and where: sorted int64 arrays per batch
    (16 bytes an id; a dict would take ~100) until the record path needs them as a dict."""

    def __init__(self) -> None:
        self.chunks: list[tuple[Any, Any]] = []  # (ids sorted, their indexes)
        self.top = -(2**63)
        self.lookup: dict[Any, int] | None = None

    def add(self, values: list[int], start: int, at: list[int] | None = None) -> bool:
        """Record a batch's distinct integer ids, found at ``start + at`` (``at`` None: ``0, 1, ...``);
        False (nothing recorded) if one was seen before."""
        if not values:
            return True
        where = np.arange(len(values), dtype=np.int64) if at is None else np.array(at, dtype=np.int64)
        where += start
        if self.lookup is not None:
            if not self.lookup.keys().isdisjoint(values):
                return False
            self.lookup.update(zip(values, where.tolist()))
            return True
        try:
            ids = np.array(values, dtype=np.int64)
        except OverflowError:
            return False
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        if ids[0] <= self.top:  # ids mostly grow: look back only when they do not
            for old, _ in self.chunks:
                hit = np.searchsorted(old, ids).clip(max=len(old) - 1)
                if (old[hit] == ids).any():
                    return False
        self.chunks.append((ids, where[order]))
        self.top = max(self.top, int(ids[-1]))
        return True

    def as_dict(self) -> dict[Any, int]:
        """The ids seen so far as ``{id: index}``, which the record path reads and extends from now on."""
        if self.lookup is None:
            self.lookup = {}
            for ids, at in self.chunks:
                self.lookup.update(zip(ids.tolist(), at.tolist()))
            self.chunks = []
        return self.lookup


class _Header:
    """A COCO file's categories and images, checked (problems go to ``pr``)."""

    def __init__(self, pr: Problems, categories_data: list[Any], images_data: list[Any]):
        categories: dict[int | str, str] = {}
        invalid: set[tuple[str, int | str]] = set()  # ids of records with a problem: no follow-on errors
        named: dict[str, str] = {}  # class name -> the category that has it
        for i, cat in enumerate(categories_data):
            where = f"categories[{i}]"
            if not pr.require(cat, ("id", "name"), where) or not _id_ok(pr, cat["id"], where, "id"):
                continue
            if cat["id"] in categories:
                pr.add(where, f"duplicate category id {cat['id']!r}")
            name = pr.name(cat["name"], where, "name")
            if name is None:
                invalid.add(("category", cat["id"]))
                continue
            if name in named:  # one class per name: merging two categories would lose which was which
                pr.add(where, f"name {name!r} is also the name of {named[name]}; rename one of them "
                              "(labkit keeps one class per name)")
            named.setdefault(name, f"categories[{i}] (id {cat['id']!r})")
            categories[cat["id"]] = name

        extra = [{k: v for k, v in im.items() if k not in _IMAGE_KEYS} if isinstance(im, dict) else None
                 for im in images_data]
        # the images' extra fields checked together; one by one only to say what is wrong
        clean = not json_problems([a for a in extra if a is not None], "image")
        self.categories, self.invalid = categories, invalid
        if not (clean and self._plain_images(images_data, extra)):
            self._images(pr, images_data, extra, clean)

    def _plain_images(self, images_data: list[Any], extra: list[Any]) -> bool:
        """Read images that need no message, whole columns at a time: records with integer ids and
        non-empty file names, each distinct, and positive integer sizes. False (nothing read)
        for any other list: :meth:`_images` reads it record by record and says what is wrong."""
        if set(map(type, images_data)) != {dict}:
            return False
        ids, names = [im.get("id") for im in images_data], [im.get("file_name") for im in images_data]
        widths, heights = [im.get("width") for im in images_data], [im.get("height") for im in images_data]
        n = len(images_data)
        if not (n and set(map(type, ids)) == {int} and set(map(type, names)) == {str} and all(names)
                and set(map(type, widths)) == set(map(type, heights)) == {int} and min(widths) > 0
                and min(heights) > 0 and max(widths) < 2**53 and max(heights) < 2**53  # (as floats, exactly)
                and len(set(ids)) == len(set(names)) == n):
            return False
        self.images = list(map(ImageRecord, names, widths, heights, extra, [None] * n,
                               [f"images[{i}]" for i in range(n)]))
        self.by_id = dict(zip(ids, self.images))
        self.position = dict(zip(ids, range(n)))
        return True

    def _images(self, pr: Problems, images_data: list[Any], extra: list[Any], clean: bool) -> None:
        """Read images record by record, every problem said (to ``pr``)."""
        images: list[ImageRecord] = []
        by_id: dict[int | str, ImageRecord] = {}
        position: dict[int | str, int] = {}  # image id -> its place in images
        keys: set[str] = set()
        invalid = self.invalid
        for i, im in enumerate(images_data):
            where = f"images[{i}]"
            if not pr.require(im, ("id", "file_name"), where) or not _id_ok(pr, im["id"], where, "id"):
                continue
            if not isinstance(im["file_name"], str) or not im["file_name"]:
                pr.add(where, f"file_name is {show(im['file_name'])}; expected the image's file name (a string)")
                invalid.add(("image", im["id"]))
                continue
            if im["id"] in by_id:
                pr.add(where, f"duplicate image id {im['id']!r}")
            if im["file_name"] in keys:
                pr.add(where, f"duplicate file_name {im['file_name']!r}")
            keys.add(im["file_name"])
            w = pr.size(im["width"], where, "width") if "width" in im else None
            h = pr.size(im["height"], where, "height") if "height" in im else None
            attributes = extra[i] or {}  # a dict here: im passed require
            if not clean:
                pr.json(attributes, where, "image")
            rec = ImageRecord(key=im["file_name"], width=w, height=h, where=where, attributes=attributes)
            by_id[im["id"]] = rec
            position[im["id"]] = len(images)
            images.append(rec)
        self.images, self.by_id, self.position = images, by_id, position


def _record_annotations(pr: Problems, anns: list[Any], head: _Header, ann_ids: dict[Any, int],
                        start: int = 0) -> list[ObjectRecord]:
    """``anns`` (``annotations[start:]``) read record by record, every problem said."""
    objects: list[ObjectRecord] = []
    by_id, categories, invalid = head.by_id, head.categories, head.invalid
    for i, ann in enumerate(anns, start):
        where = f"annotations[{i}]"
        if not pr.require(ann, ("image_id", "category_id"), where):
            continue
        if "id" in ann and _id_ok(pr, ann["id"], where, "id"):
            if ann["id"] in ann_ids:  # COCO ids are unique; results files may omit them
                pr.add(where, f"duplicate annotation id {ann['id']!r} (also annotations[{ann_ids[ann['id']]}]); "
                              "COCO annotation ids must be unique")
            ann_ids.setdefault(ann["id"], i)
        image = by_id.get(ann["image_id"]) if _hashable(ann["image_id"]) else None
        if image is None and not (_hashable(ann["image_id"]) and ("image", ann["image_id"]) in invalid):
            pr.add(where, f"image_id {show(ann['image_id'])} is not in images")
        label = categories.get(ann["category_id"]) if _hashable(ann["category_id"]) else None
        if label is None and not (_hashable(ann["category_id"]) and ("category", ann["category_id"]) in invalid):
            pr.add(where, f"category_id {show(ann['category_id'])} is not in categories")
        obj = _read_annotation(pr, ann, where, image)
        if obj is not None and image is not None and label is not None:
            obj.image_key, obj.label = image.key, label
            objects.append(obj)
    return objects


def _fast_annotations(anns: list[Any], head: _Header, *, start: int = 0) -> ObjectColumns | None:
    """The objects of ``anns`` (``annotations[start:]``) by the column path
    (:mod:`labkit.formats.coco_columns`), or None where the record path must read them; the
    rare mask the column path does not decode in bulk gets the record path's checks."""
    return coco_columns.read_columns(anns, head, start=start, read_one=_read_annotation)


def _hashable(v: object) -> TypeGuard[int | str]:
    return isinstance(v, (int, str)) and not isinstance(v, bool)


def _id_ok(pr: Problems, v: object, where: str, what: str) -> bool:
    if not _hashable(v):
        pr.add(where, f"{what} is {show(v)}; expected an integer or a string")
        return False
    return True


def _read_annotation(pr: Problems, ann: dict[str, Any], where: str,
                     image: ImageRecord | None) -> ObjectRecord | None:
    seg, kp = ann.get("segmentation"), ann.get("keypoints")
    used = set(_ANN_KEYS)
    n_before = len(pr.items) + pr.more
    if seg not in (None, [], {}):
        kind, geometry = _read_segmentation(pr, seg, where, image)
    elif kp is not None and pr.count(len(kp) // 3 if isinstance(kp, list) else 0, where, "keypoints") \
            and _is_point(ann):
        kind, used = "point", used | {"keypoints", "num_keypoints"}
        pts = pr.points([[kp[j], kp[j + 1]] for j in range(0, len(kp), 3) if kp[j + 2] > 0],
                        where, "keypoints", min_points=1)
        geometry = _shapes.canonical(pr, "point", {"points": pts}, where) if pts else None
    elif "bbox" in ann:
        kind, geometry = "box", None
        b = ann["bbox"]
        if not isinstance(b, list) or len(b) != 4:
            pr.add(where, f"bbox is {show(b)}; expected [x, y, width, height]")
        else:
            x, y, w, h = (pr.number(v, where, f"bbox[{j}]") for j, v in enumerate(b))
            if x is not None and y is not None and w is not None and h is not None:
                if w < 0 or h < 0:
                    pr.add(where, f"bbox {show(b)} has a negative width or height")
                else:
                    geometry = _shapes.canonical(pr, "box", _shapes.box(x, y, x + w, y + h), where)
    else:
        pr.add(where, "no segmentation, keypoints or bbox; found keys " + str(sorted(ann)))
        return None
    score = pr.number(ann["score"], where, "score") if "score" in ann else None
    if len(pr.items) + pr.more > n_before:
        return None
    prov: dict[str, Any] = {k: ann[k] for k in ("id", "image_id", "category_id", "iscrowd") if k in ann}
    if kind == "point":
        prov["keypoints"] = kp
    extra = {k: v for k, v in ann.items() if k not in used}
    if extra:
        prov["extra"] = extra
    # the fields kept in provenance (geometry was checked number by number above)
    if not pr.json({k: v for k, v in ann.items() if k not in ("segmentation", "bbox")}, where, "annotation"):
        return None
    return ObjectRecord(image_key="", kind=kind, label="", geometry=geometry, score=score,
                        provenance={"coco": prov}, where=where)


def _is_point(ann: dict[str, Any]) -> bool:
    kp = ann["keypoints"]
    if not isinstance(kp, list) or len(kp) % 3 or not kp:
        return False
    nums = [_finite(v) for v in kp]
    if any(v is None for v in nums):
        return False
    vis = [(nums[j], nums[j + 1]) for j in range(0, len(nums), 3) if nums[j + 2] > 0]  # type: ignore[operator]
    if not vis:
        return False
    if "bbox" not in ann:
        return True
    xs, ys = [p[0] for p in vis], [p[1] for p in vis]
    span = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]  # type: ignore[type-var, operator]
    b = ann["bbox"]
    if not isinstance(b, list) or len(b) != 4:
        return False
    box = [_finite(v) for v in b]
    return all(v is not None and s is not None and abs(v - s) < 1e-6 for v, s in zip(box, span))


def _finite(v: Any) -> float | None:
    """``v`` as a finite float, or None (text, bool, NaN, an integer too large for a float)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _read_segmentation(pr: Problems, seg: Any, where: str,
                       image: ImageRecord | None) -> tuple[str, dict[str, Any] | None]:
    if isinstance(seg, list):
        total = sum(len(part) // 2 for part in seg if isinstance(part, list))
        if not pr.count(total, where, "segmentation"):
            return "polygon", None
        rings: list[list[list[float]]] = []
        for j, part in enumerate(seg):
            ring = pr.flat_points(part, where, f"segmentation[{j}]", min_points=3)
            if ring is not None:
                rings.append(ring)
        if len(rings) < len(seg):
            return "polygon", None
        return "polygon", _shapes.canonical(pr, "polygon", _shapes.polygon(rings), where)
    if isinstance(seg, dict):
        if not pr.require(seg, ("size", "counts"), f"{where}.segmentation"):
            return "mask", None
        if not _rle_ok(pr, seg, where, image):
            return "mask", None
        return "mask", _shapes.canonical(pr, "mask", {"size": seg["size"], "counts": seg["counts"]}, where)
    pr.add(where, f"segmentation is {type(seg).__name__}; expected a list of polygons or an RLE dict")
    return "mask", None


def _rle_ok(pr: Problems, seg: dict[str, Any], where: str, image: ImageRecord | None) -> bool:
    """Check an RLE's size and counts before anything decodes them (sizes and runs are the file's)."""
    size = seg["size"]
    if not isinstance(size, list) or len(size) != 2:
        pr.add(where, f"segmentation size is {show(size)}; expected [height, width]")
        return False
    h, w = (pr.size(v, where, f"segmentation size[{j}]") for j, v in enumerate(size))
    if h is None or w is None or not pr.image_size(w, h, where):
        return False
    if image is not None and image.width is not None and (h, w) != (image.height, image.width):
        pr.add(where, f"segmentation size [{h}, {w}] is not the image's [height, width] = "
                      f"[{image.height}, {image.width}]")
        return False
    counts = seg["counts"]
    if isinstance(counts, str) and _LONG_RUN.search(counts):
        pr.add(where, "segmentation counts is not a COCO compressed RLE string (a run of more than "
                      "12 continuation characters encodes no 32-bit run length)")
        return False
    if isinstance(counts, list) and len(counts) > h * w + 1:
        pr.add(where, f"segmentation counts has {len(counts)} runs for a {h}x{w} mask; expected at most "
                      f"{h * w + 1}")
        return False
    return True


# --- shared with the writer (labkit.formats.coco_write) ---------------------

#: Image fields that are not image attributes.
IMAGE_KEYS = _IMAGE_KEYS
#: Whether a value can be a COCO id (an integer or a string; not a bool).
is_id = _hashable
