"""Writing COCO JSON, streamed: a dataset of any size in memory bounded by a batch of objects.

A COCO file's ids are decided over the whole dataset (an id in provenance is kept when
it is unique, fresh numbers follow the largest kept), and the images come first in the
file. So :func:`write` reads the objects once, a batch at a time
(:func:`~labkit.formats._base.object_batches`), encoding each annotation without its
three ids into a spool file and keeping only the ids' candidates; then writes the file:
images, categories, and the spooled annotations with their ids. The file is the one a
single ``json.dumps`` of the whole document would give, byte for byte.
"""
from __future__ import annotations

import json
import tempfile
import warnings
from array import array
from collections.abc import Collection, Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from labkit.formats import _shapes
from labkit.formats._base import Dataset, ObjectRecord, geometry_of, object_batches, streams
from labkit.formats._jsonout import Items, JsonOut, encode, json_out
from labkit.formats.coco import IMAGE_KEYS, is_id

__all__ = ["write"]

_K = TypeVar("_K", bound=Hashable)


@streams
def write(dataset: Dataset, path: str | Path, *, indent: int | None = None) -> None:
    """Write ``dataset`` as one COCO JSON file at ``path``.

    Parameters
    ----------
    dataset : Dataset
        Whole or streamed (``dataset.batches``): memory then holds one batch of objects,
        the images and a few integers per object.
    path : str or Path
        The ``.json`` file to create (parent folders are created; the file appears whole
        or not at all).
    indent : int, optional
        Pretty-print with this indent; compact by default.
    """
    sizes = {im.key: (im.height, im.width) for im in dataset.images}
    cat_wanted: dict[str, set[Any]] = {c: set() for c in dataset.classes or []}  # classes in order, then first use
    img_wanted: dict[str, set[Any]] = {im.key: set() for im in dataset.images}
    ann_ids: list[Any] = []  # per written annotation: its kept id, or the _Fresh rank of its new one
    taken: set[Any] = set()
    fresh_needed = 0
    image_of, class_of = array("q"), array("q")
    image_index = {im.key: i for i, im in enumerate(dataset.images)}
    class_index = {c: i for i, c in enumerate(cat_wanted)}
    missing: set[str] = set()
    skipped = 0
    kp_counts: dict[str, set[int]] = {}
    with tempfile.TemporaryFile() as spool:
        for batch in object_batches(dataset):
            for obj in batch:
                prov = obj.provenance.get("coco", {})
                class_index.setdefault(obj.label, len(class_index))  # a class not declared: at first use
                _want(cat_wanted.setdefault(obj.label, set()), prov.get("category_id"))
                if obj.image_key not in sizes:
                    missing.add(obj.image_key)
                    continue
                _want(img_wanted[obj.image_key], prov.get("image_id"))
                pid = prov.get("id")
                kept = is_id(pid) and pid not in taken
                if kept:
                    taken.add(pid)
                else:
                    fresh_needed += 1
                if obj.kind == "label":
                    skipped += 1
                    continue
                rest = _geometry_fields(obj, prov, sizes[obj.image_key])
                rest["iscrowd"] = prov.get("iscrowd", 0) if obj.kind == "mask" else 0
                if obj.score is not None:
                    rest["score"] = obj.score
                if obj.kind == "point":
                    kp_counts.setdefault(obj.label, set()).add(rest["num_keypoints"])
                rest.update({k: v for k, v in prov.get("extra", {}).items()
                             if k not in rest and k not in ("id", "image_id", "category_id")})
                spool.write(encode(rest, path, what=f"data['annotations'][{len(ann_ids)}]") + b"\n")
                ann_ids.append(pid if kept else _Fresh(fresh_needed - 1))
                image_of.append(image_index[obj.image_key])
                class_of.append(class_index[obj.label])
        if missing:
            shown = sorted(missing)
            raise ValueError(f"objects refer to {len(shown)} image key(s) not in dataset.images, "
                             f"e.g. {shown[:3]}; add ImageRecords for them")
        if skipped:
            warnings.warn(f"COCO has no image-level labels: skipped {skipped} object(s) of kind 'label'",
                          stacklevel=2)
        classes = list(cat_wanted)
        cat_ids = _reuse_ids(classes, cat_wanted)
        img_ids = _reuse_ids([im.key for im in dataset.images], img_wanted)
        fresh = _fresh_ids(taken, fresh_needed)
        categories: list[dict[str, Any]] = []
        for c in classes:
            cat: dict[str, Any] = {"id": cat_ids[c], "name": c}
            if len(kp_counts.get(c, ())) == 1:
                n = next(iter(kp_counts[c]))
                cat["keypoints"] = [c] if n == 1 else [f"{c}_{j}" for j in range(n)]
            categories.append(cat)
        images: list[dict[str, Any]] = []
        for im in dataset.images:
            rec: dict[str, Any] = {"id": img_ids[im.key], "file_name": im.key}
            if im.width is not None and im.height is not None:
                rec.update(width=im.width, height=im.height)
            rec.update({k: v for k, v in im.attributes.items() if k not in IMAGE_KEYS})
            images.append(rec)
        spool.seek(0)
        keys = [im.key for im in dataset.images]
        with json_out(path, indent=indent) as out:
            lines = _annotations(out, spool, ann_ids, fresh, [img_ids[k] for k in keys],
                                 [cat_ids[c] for c in classes], image_of, class_of)
            out.object([("images", images), ("categories", categories), ("annotations", Items(lines))])


class _Fresh(int):
    """The rank of an object among those given a fresh id (their ids are known at the end)."""


def _want(wanted: set[Any], value: Any) -> None:
    """Record an id candidate as :func:`_reuse_ids` weighs it: only ints, strings and None count."""
    if value is None or is_id(value):
        wanted.add(value)


def _fresh_ids(taken: set[Any], n: int) -> list[int]:
    """``n`` integers from one past the largest taken integer on, skipping taken ones."""
    out: list[int] = []
    fresh = max([v for v in taken if isinstance(v, int)], default=0) + 1
    while len(out) < n:
        if fresh not in taken:
            out.append(fresh)
        fresh += 1
    return out


def _annotations(out: JsonOut, spool: Any, ann_ids: list[Any], fresh: list[int], img_ids: list[Any],
                 cat_ids: list[Any], image_of: array, class_of: array) -> Iterator[bytes]:
    """The spooled annotations with their ids in front, encoded for ``out`` (level 2)."""
    enc = json.JSONEncoder(ensure_ascii=False).encode  # ids are ints or strings: nothing to refuse

    def text(v: Any) -> str:
        return str(v) if type(v) is int else enc(v)
    for n, (line, aid) in enumerate(zip(spool, ann_ids)):
        aid = fresh[aid] if type(aid) is _Fresh else aid
        img, cat = img_ids[image_of[n]], cat_ids[class_of[n]]
        if out.indent is None:  # the three ids spliced in front of the spooled line's fields
            yield (f'{{"id": {text(aid)}, "image_id": {text(img)}, "category_id": {text(cat)}, '
                   ).encode() + line[1:-1]
        else:
            yield out.encode({"id": aid, "image_id": img, "category_id": cat, **json.loads(line)}, 2)


def _reuse_ids(names: list[_K], wanted: Mapping[_K, Collection[Any]]) -> dict[_K, int | str]:
    """An id per name: the one its provenance agrees on when unique, else a fresh integer."""
    ids: dict[_K, int | str] = {}
    taken: set[int | str] = set()
    for name in names:
        cands = {v for v in wanted.get(name, []) if is_id(v)}
        if len(cands) == 1 and None not in wanted.get(name, []) and (v := cands.pop()) not in taken:
            ids[name] = v
            taken.add(v)
    fresh = max([v for v in taken if isinstance(v, int)], default=0) + 1
    for name in names:
        if name not in ids:
            while fresh in taken:
                fresh += 1
            ids[name] = fresh
            taken.add(fresh)
    return ids


def _geometry_fields(obj: ObjectRecord, prov: dict[str, Any],
                     size: tuple[int | None, int | None]) -> dict[str, Any]:
    g, kind = geometry_of(obj), obj.kind
    if kind == "box":
        w, h = g["x1"] - g["x0"], g["y1"] - g["y0"]
        return {"bbox": [g["x0"], g["y0"], w, h], "area": w * h}
    if kind == "point":
        pts = g["points"]
        kp = prov.get("keypoints")
        if not (isinstance(kp, list) and [[kp[j], kp[j + 1]] for j in range(0, len(kp), 3)
                                          if kp[j + 2] > 0] == pts):
            kp = [v for x, y in pts for v in (x, y, 2)]
        x0, y0, x1, y1 = _shapes.bounds("point", g)
        return {"keypoints": kp, "num_keypoints": len(pts), "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": 0.0}
    if kind == "ellipse":
        kind, g = "polygon", {"points": _shapes.ellipse_polygon(g)}
    if kind == "polygon":
        parts = _shapes.parts_of(g)
        if not any(p.get("holes") for p in parts):
            xs = [float(xy[0]) for p in parts for xy in p["points"]]
            ys = [float(xy[1]) for p in parts for xy in p["points"]]
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
            return {"segmentation": [[v for xy in p["points"] for v in xy] for p in parts],
                    "area": sum(_shapes.shoelace(p["points"]) for p in parts),
                    "bbox": [x0, y0, x1 - x0, y1 - y0]}
        height, width = size
        if height is None or width is None:
            raise ValueError(f"image {obj.image_key!r} has no width/height: needed to write a "
                             "polygon with holes as a COCO RLE mask")
        from labkit.geometry import polygon_to_rle

        g = polygon_to_rle(g, height, width)
    if kind in ("polygon", "mask"):
        from pycocotools import mask as mu

        rle = _shapes.to_bytes_rle(g)
        return {"segmentation": {"size": list(g["size"]), "counts": g["counts"]},
                "area": float(mu.area(rle)), "bbox": [float(v) for v in mu.toBbox(rle)]}
    raise ValueError(f"cannot write an object of kind {kind!r} to COCO")
