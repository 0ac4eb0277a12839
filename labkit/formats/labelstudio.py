"""Label Studio JSON export (a list of tasks) and pre-label import files.

Result types read (coordinates are percentages of ``original_width/height``):

=================  ======================================================
``rectanglelabels``  ``box``; a non-zero ``rotation`` (degrees, about the top-left
                     corner) gives the ``polygon`` of the turned rectangle
``polygonlabels``    ``polygon``
``ellipselabels``    ``ellipse`` (``radiusX`` in % of width, ``radiusY`` of height)
``keypointlabels``   ``point``
``brushlabels``      ``mask`` (``format: "rle"``, Label Studio's own brush RLE)
``choices``          ``label``, one object per choice
=================  ======================================================

The bare tool types (``rectangle``, ``polygon``, ...) and the generic ``labels`` type are
read the same way. Other result types (text areas, ratings, relations) are skipped with
a warning. ``completed_by`` becomes ``ObjectRecord.worker``; ``predictions[]`` are read
with ``worker=None`` and ``provenance["labelstudio"]["source"] == "prediction"``.

The image key is the file name in ``data.image``, without Label Studio's
``/data/upload/<project>/`` folder and ``abcdef12-`` upload prefix; the original string
is kept in provenance.
"""
from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

from labkit.formats import _ls_brush, _shapes
from labkit.formats._base import (
    Dataset,
    FormatError,
    ImageRecord,
    ObjectRecord,
    Problems,
    classes_in_order,
    geometry_of,
    image_groups,
    load_json,
    show,
    streams,
)
from labkit.formats._jsonout import JsonOut, json_out

_TOOLS = {"rectangle": "box", "polygon": "polygon", "ellipse": "ellipse", "keypoint": "point",
          "brush": "mask"}
_TYPES = {"rectanglelabels": "rectangle", "polygonlabels": "polygon", "ellipselabels": "ellipse",
          "keypointlabels": "keypoint", "brushlabels": "brush", **{t: t for t in _TOOLS}}
_FROM_NAMES = {"rectanglelabels": "label", "polygonlabels": "polygon", "ellipselabels": "ellipse",
               "keypointlabels": "keypoint", "brushlabels": "brush", "choices": "choice"}


def image_key(src: str) -> str:
    """The file name in a ``data.image`` value (URL, upload path or local-files query)."""
    u = urlparse(src)
    q = parse_qs(u.query)
    path = q["d"][0] if "d" in q else unquote(u.path)
    name = PurePosixPath(path).name
    if re.match(r"^/data/upload/\d+/", u.path) and re.match(r"^[0-9a-f]{8}-.", name):
        name = name[9:]
    return name


def read(path: str | Path, *, data_key: str = "image") -> Dataset:
    """Read a Label Studio JSON export.

    Parameters
    ----------
    path : str or Path
        The ``.json`` export: a list of tasks (a single task object is accepted too).
    data_key : str
        The key of ``task["data"]`` that holds the image (the ``value="$image"`` name).
    """
    path = Path(path)
    tasks = load_json(path)
    if isinstance(tasks, dict) and "data" in tasks:
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise FormatError(path, [("", f"top level is {type(tasks).__name__}; expected a list of tasks")])
    pr = Problems(path)
    images: dict[str, ImageRecord] = {}
    objects: list[ObjectRecord] = []
    skipped: Counter[str] = Counter()
    for t, task in enumerate(tasks):
        objects += _task(pr, t, task, data_key, images, skipped)
    pr.raise_if_any()
    _warn_skipped(skipped)
    return Dataset(images=list(images.values()), objects=objects, classes=classes_in_order(objects))


#: Objects a streamed read yields at a time, at least (:func:`stream`; whole tasks).
STREAM_BATCH = 25_000


def stream(path: str | Path, *, data_key: str = "image", batch: int | None = None) -> Dataset:
    """Read a Label Studio export with memory bounded by ``batch`` objects, not by the file.

    A first pass over the tasks (ijson, one task at a time) checks the whole file as
    :func:`read` does and keeps only the images, the class names in order of first use
    and the annotators (``Dataset.workers``); the returned dataset's ``batches()`` reads the
    tasks again and yields their objects, whole tasks at a time, ``batch`` (default
    :data:`STREAM_BATCH`) objects or more per batch: the records :func:`read` gives. A file
    :func:`read` would refuse is refused by :func:`read` itself, with its messages.
    """
    import ijson

    path, batch = Path(path), batch or STREAM_BATCH
    images: dict[str, ImageRecord] = {}
    labels: dict[str, None] = {}
    workers: dict[str, None] = {}
    skipped: Counter[str] = Counter()
    pr = Problems(path)
    try:
        with path.open("rb") as f:
            if next(ijson.parse(f), ("", ""))[1] != "start_array":
                return read(path)  # one task, or no list of tasks: read says which
        with path.open("rb") as f:
            for t, task in enumerate(ijson.items(f, "item", use_float=True)):
                for o in _task(pr, t, task, data_key, images, skipped):
                    labels.setdefault(o.label)
                    if o.worker is not None:
                        workers.setdefault(o.worker)
    except (ijson.JSONError, UnicodeDecodeError, OSError):
        return read(path)  # raises, saying where the file is broken
    if pr:
        return read(path)
    _warn_skipped(skipped)

    def batches() -> Iterator[list[ObjectRecord]]:
        again = Problems(path)
        out: list[ObjectRecord] = []
        with path.open("rb") as f:
            for t, task in enumerate(ijson.items(f, "item", use_float=True)):
                out += _task(again, t, task, data_key, images, Counter())
                if len(out) >= batch:
                    yield out
                    out = []
        if out:
            yield out
        if again:
            raise FormatError(path, [("", "the file changed while it was being read")] + again.items)

    return Dataset(images=list(images.values()), objects=[], classes=list(labels), batches=batches,
                   workers=list(workers))


def _task(pr: Problems, t: int, task: Any, data_key: str, images: dict[str, ImageRecord],
          skipped: Counter[str]) -> list[ObjectRecord]:
    """The objects of ``tasks[t]``; its image joins ``images`` (problems go to ``pr``)."""
    where = f"tasks[{t}]"
    if not pr.require(task, ("data",), where) or not pr.require(task["data"], (data_key,), f"{where}.data"):
        return []
    src = task["data"][data_key]
    if not isinstance(src, str) or not src:
        pr.add(f"{where}.data", f"{data_key} is {show(src)}; expected an image path or URL")
        return []
    try:
        key = image_key(src)
    except ValueError as exc:  # urlparse: "Invalid IPv6 URL" and the like
        pr.add(f"{where}.data", f"{data_key} {show(src)} is not a path or URL: {exc}")
        return []
    if not key or key in (".", ".."):
        pr.add(f"{where}.data", f"{data_key} {show(src)} names no image file")
        return []
    image = images.setdefault(key, ImageRecord(key=key, where=where))
    base = {"task_id": task.get("id"), "image": src}
    objects: list[ObjectRecord] = []
    for group in ("annotations", "predictions"):
        entries = task.get(group, [])
        if not isinstance(entries, list):
            pr.add(where, f"{group} is {type(entries).__name__}; expected a list")
            continue
        for a, entry in enumerate(entries):
            w = f"{where}.{group}[{a}]"
            if not pr.require(entry, ("result",), w):
                continue
            prov = dict(base, **_entry_provenance(group, entry))
            worker = _worker(entry.get("completed_by")) if group == "annotations" else None
            if worker is not None and pr.name(worker, w, "completed_by") is None:
                continue
            score = None
            if group == "predictions" and "score" in entry:
                score = pr.number(entry["score"], w, "score")
            objects += _read_results(pr, entry["result"], w, image, prov, worker, score, skipped)
    return objects


def _warn_skipped(skipped: Counter[str]) -> None:
    if skipped:
        warnings.warn(f"skipped Label Studio result types with no labkit kind: {dict(skipped)}",
                      stacklevel=3)


def _entry_provenance(group: str, entry: dict[str, Any]) -> dict[str, Any]:
    if group == "annotations":
        out: dict[str, Any] = {"source": "annotation", "annotation_id": entry.get("id")}
        if "completed_by" in entry:
            out["completed_by"] = entry["completed_by"]
        return out
    return {"source": "prediction", "prediction_id": entry.get("id"),
            "model_version": entry.get("model_version")}


def _worker(completed_by: Any) -> Any:
    """The annotator's name: ``completed_by`` (a user id), or its ``email`` or ``id``.

    A string when it is a string or an integer; anything else is returned as it is, for
    the caller to refuse with the name rules (a list, a float, ...).
    """
    v = completed_by
    if isinstance(completed_by, dict):
        v = completed_by.get("email") or completed_by.get("id")
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return v


def _read_results(pr: Problems, results: Any, where: str, image: ImageRecord, prov: dict[str, Any],
                  worker: str | None, score: float | None, skipped: Counter[str]) -> list[ObjectRecord]:
    if not isinstance(results, list):
        pr.add(where, f"result is {type(results).__name__}; expected a list")
        return []
    # Labels may come in a separate "labels" result sharing the region id.
    side_labels = {r.get("id"): r["value"].get("labels") for r in results
                   if isinstance(r, dict) and r.get("type") == "labels" and _id_ok(r.get("id"))
                   and isinstance(r.get("value"), dict) and not _has_geometry(r["value"])}
    out = []
    for i, r in enumerate(results):
        w = f"{where}.result[{i}]"
        if not pr.require(r, ("type", "value"), w):
            continue
        if not isinstance(r["value"], dict):
            pr.add(w, f"value is {type(r['value']).__name__}; expected an object")
            continue
        if not isinstance(r["type"], str):
            pr.add(w, f"type is {show(r['type'])}; expected a result type such as 'rectanglelabels'")
            continue
        if not _id_ok(r.get("id")):
            pr.add(w, f"id is {show(r['id'])}; expected a region id (a string or an integer)")
            continue
        typ, v = r["type"], r["value"]
        if typ == "labels":
            if not _has_geometry(v):
                continue
            typ = _infer_tool(v)
        if typ == "choices":
            kind, geometry, labels = "label", None, v.get("choices")
        elif typ in _TYPES:
            labels = v.get(typ if typ.endswith("labels") else _TYPES[typ] + "labels",
                           v.get("labels", side_labels.get(r.get("id"))))
            kind, geometry = _read_geometry(pr, r, v, _TYPES[typ], w, image)
            geometry = geometry and _shapes.canonical(pr, kind, geometry, w)
            if geometry is None:
                continue
        else:
            skipped[typ] += 1
            continue
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            pr.add(w, f"region has labels {show(labels)}; expected a non-empty list of class names")
            continue
        if any(pr.name(x, w, "label") is None for x in labels):
            continue
        s = pr.number(r["score"], w, "score") if "score" in r else score
        rp = dict(prov, id=r.get("id"), type=r["type"], from_name=r.get("from_name"),
                  to_name=r.get("to_name"))
        if typ.startswith("keypoint") and "width" in v:
            rp["width"] = v["width"]
        if not pr.json(rp, w, "the result's provenance (task, annotation and region fields)"):
            continue
        for label in labels:
            out.append(ObjectRecord(image_key=image.key, kind=kind, label=label, geometry=geometry,
                                    score=s, worker=worker, provenance={"labelstudio": rp}, where=w))
    return out


def _id_ok(v: Any) -> bool:
    """A region id labkit can match results on: absent, a string or an integer."""
    return v is None or isinstance(v, str) or isinstance(v, int) and not isinstance(v, bool)


def _has_geometry(v: dict[str, Any]) -> bool:
    return any(k in v for k in ("x", "points", "rle"))


def _infer_tool(v: dict[str, Any]) -> str:
    if "rle" in v:
        return "brush"
    if "points" in v:
        return "polygon"
    if "radiusX" in v:
        return "ellipse"
    return "rectangle" if "width" in v and "height" in v else "keypoint"


def _read_geometry(pr: Problems, r: dict[str, Any], v: dict[str, Any], tool: str, w: str,
                   image: ImageRecord) -> tuple[str, dict[str, Any] | None]:
    W = pr.size(r.get("original_width"), w, "original_width")
    H = pr.size(r.get("original_height"), w, "original_height")
    if W is None or H is None:
        return _TOOLS[tool], None
    if image.width is None:
        image.width, image.height = W, H
    elif (image.width, image.height) != (W, H):
        pr.add(w, f"original size {W}x{H} differs from {image.width}x{image.height} "
                  f"given earlier for {image.key!r}")
        return _TOOLS[tool], None
    sx, sy = W / 100.0, H / 100.0
    need = {"rectangle": ("x", "y", "width", "height"), "ellipse": ("x", "y", "radiusX", "radiusY"),
            "keypoint": ("x", "y"), "polygon": ("points",), "brush": ("rle",)}[tool]
    if not pr.require(v, need, f"{w}.value"):
        return _TOOLS[tool], None
    if tool == "polygon":
        pts = pr.points(v["points"], w, "points", min_points=3)
        return "polygon", None if pts is None else _shapes.polygon([[[x * sx, y * sy] for x, y in pts]])
    if tool == "brush":
        if not pr.image_size(W, H, w):  # the brush is decoded at the image's size
            return "mask", None
        if v.get("format", "rle") != "rle":
            pr.add(w, f"brush format is {v.get('format')!r}; only 'rle' is supported")
            return "mask", None
        try:
            return "mask", _shapes.mask_geometry(_ls_brush.decode(v["rle"], H, W))
        except ValueError as exc:
            pr.add(w, f"corrupt brush RLE: {exc}")
            return "mask", None
    parsed = {k: pr.number(v[k], w, k) for k in need}
    rot = pr.number(v.get("rotation", 0), w, "rotation")
    nums = {k: x for k, x in parsed.items() if x is not None}
    if len(nums) != len(parsed) or rot is None:
        return _TOOLS[tool], None
    x, y = nums["x"] * sx, nums["y"] * sy
    if tool == "keypoint":
        return "point", _shapes.points([[x, y]])
    if tool == "ellipse":
        rx, ry = nums["radiusX"] * sx, nums["radiusY"] * sy
        if rx < 0 or ry < 0:
            pr.add(w, f"negative ellipse radius ({rx}, {ry})")
            return "ellipse", None
        return "ellipse", _shapes.ellipse(x, y, rx, ry, rot)
    bw, bh = nums["width"] * sx, nums["height"] * sy
    if bw < 0 or bh < 0:
        pr.add(w, f"negative rectangle width or height ({v['width']}, {v['height']})")
        return "box", None
    if rot % 360 == 0:
        return "box", _shapes.box(x, y, x + bw, y + bh)
    return "polygon", {"points": _shapes.rotated_rect(x, y, bw, bh, rot, about="corner")}


# --- writing -----------------------------------------------------------------

@streams
def write(dataset: Dataset, path: str | Path, *, as_predictions: bool | None = None,
          model_version: str | None = None, image_prefix: str | None = None,
          from_names: dict[str, str] | None = None, to_name: str = "image",
          indent: int | None = None) -> None:
    """Write ``dataset`` as a Label Studio task list (importable, with pre-labels).

    Parameters
    ----------
    dataset : Dataset
    path : str or Path
        The ``.json`` file to create.
    as_predictions : bool, optional
        Write every object as a prediction (True) or an annotation (False). By default
        objects read as predictions, and objects with a score but no worker, are
        predictions; the rest are annotations grouped by worker.
    model_version : str, optional
        ``model_version`` of predictions that do not carry one.
    image_prefix : str, optional
        ``data.image`` becomes ``image_prefix + key`` (e.g. ``"/data/local-files/?d=imgs/"``);
        by default the string read from Label Studio, else the key.
    from_names : dict, optional
        Control tag name per result type; defaults ``label`` (rectangles), ``polygon``,
        ``ellipse``, ``keypoint``, ``brush`` and ``choice``. Must match the labeling config.
    to_name : str
        The image tag name.

    Polygons are written one ``polygonlabels`` region per part; holes are dropped (warning).
    A streamed dataset is written a task at a time (``dataset.image_batches``); the file
    appears whole or not at all.
    """
    names = dict(_FROM_NAMES, **(from_names or {}))
    no_size: list[str] = []
    holes = [0]

    def tasks(out: JsonOut) -> Iterator[bytes]:
        for n, (im, objs) in enumerate(image_groups(dataset), 1):
            if (im.width is None or im.height is None) and any(o.kind != "label" for o in objs):
                no_size.append(im.key)
            if not no_size:  # after the first, only counted
                yield out.encode(_task_of(n, im, objs, names, to_name, as_predictions, model_version, image_prefix,
                                       holes), 1, what=f"data[{n - 1}]")
        if no_size:
            raise ValueError(f"{len(no_size)} image(s) with regions have no width/height, e.g. "
                             f"{no_size[:3]}; Label Studio stores percentages of the image size")
    with json_out(path, indent=indent) as out:
        out.array(tasks(out))
    if holes[0]:
        warnings.warn(f"Label Studio polygons have no holes: dropped the holes of {holes[0]} polygon(s)",
                      stacklevel=2)


def _task_of(n: int, im: ImageRecord, objs: list[ObjectRecord], names: dict[str, str], to_name: str,
          as_predictions: bool | None, model_version: str | None, image_prefix: str | None,
          holes: list[int]) -> dict[str, Any]:
    """Image ``im`` (the ``n``-th) and its objects as one task; ``holes[0]`` counts the holes dropped."""
    provs = [o.provenance.get("labelstudio", {}) for o in objs]
    srcs = {p.get("image") for p in provs}
    src = (image_prefix + im.key if image_prefix is not None
           else srcs.pop() if len(srcs) == 1 and None not in srcs else im.key)
    ids = {p.get("task_id") for p in provs}
    task: dict[str, Any] = {"id": ids.pop() if len(ids) == 1 and None not in ids else n, "data": {"image": src},
                            "annotations": [], "predictions": []}
    groups: dict[tuple[str, Any, Any], dict[str, Any]] = {}
    used: set[str] = set()
    for o, p in zip(objs, provs):
        pred = as_predictions if as_predictions is not None else (
            p.get("source") == "prediction" or (not p and o.worker is None and o.score is not None))
        if pred:
            mv = p.get("model_version") or model_version
            gk = ("predictions", p.get("prediction_id"), mv)
            entry = groups.get(gk) or {"model_version": mv, "result": []}
        else:
            gk = ("annotations", p.get("annotation_id"), o.worker)
            entry = groups.get(gk) or _annotation_entry(o, p)
        if gk not in groups:
            groups[gk] = entry
            if gk[1] is not None:
                entry["id"] = gk[1]
            task[gk[0]].append(entry)
        results, dropped = _results(o, p, im, names, to_name, used)
        holes[0] += dropped
        entry["result"] += results
    for entry in task["predictions"]:
        scores = [r["score"] for r in entry["result"] if "score" in r]
        if scores:
            entry["score"] = float(np.mean(scores))
    return task


def _annotation_entry(o: ObjectRecord, p: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"result": []}
    if "completed_by" in p and _worker(p["completed_by"]) == o.worker:
        entry["completed_by"] = p["completed_by"]
    elif o.worker is not None:
        entry["completed_by"] = int(o.worker) if o.worker.isdigit() else {"email": o.worker}
    return entry


def _results(o: ObjectRecord, p: dict[str, Any], im: ImageRecord, names: dict[str, str], to_name: str,
             used: set[str]) -> tuple[list[dict[str, Any]], int]:
    values: list[dict[str, Any]]
    if o.kind == "label":
        typ, values, dropped = "choices", [{"choices": [o.label]}], 0
    else:
        if im.width is None or im.height is None:  # write() rejects these before it gets here
            raise ValueError(f"image {im.key!r} has regions but no width/height; Label Studio stores "
                             "percentages of the image size")
        typ, values, dropped = _region_values(o.kind, geometry_of(o), im.width, im.height, p)
        for v in values:
            v[typ] = [o.label]
    pid = p.get("id")
    base = pid if isinstance(pid, str) else f"r{len(used) + 1}"
    out = []
    for k, v in enumerate(values):
        rid = base if k == 0 else f"{base}_{k}"
        while rid in used:
            rid += "_"
        used.add(rid)
        r: dict[str, Any] = {"id": rid, "type": typ, "from_name": p.get("from_name") if p.get("type") == typ else None,
             "to_name": p.get("to_name") or to_name}
        r["from_name"] = r["from_name"] or names[typ]
        if typ != "choices":
            r.update(original_width=im.width, original_height=im.height, image_rotation=0)
        r["value"] = v
        if o.score is not None:
            r["score"] = o.score
        out.append(r)
    return out, dropped


def _region_values(kind: str, g: dict[str, Any], W: int, H: int,
                   p: dict[str, Any]) -> tuple[str, list[dict[str, Any]], int]:
    sx, sy = 100.0 / W, 100.0 / H
    if kind == "box":
        return "rectanglelabels", [{"x": g["x0"] * sx, "y": g["y0"] * sy, "width": (g["x1"] - g["x0"]) * sx,
                                    "height": (g["y1"] - g["y0"]) * sy, "rotation": 0}], 0
    if kind == "polygon":
        parts = _shapes.parts_of(g)
        values = [{"points": [[x * sx, y * sy] for x, y in part["points"]], "closed": True}
                  for part in parts]
        return "polygonlabels", values, sum(bool(part.get("holes")) for part in parts)
    if kind == "ellipse":
        return "ellipselabels", [{"x": g["cx"] * sx, "y": g["cy"] * sy, "radiusX": g["rx"] * sx,
                                  "radiusY": g["ry"] * sy, "rotation": g["angle"]}], 0
    if kind == "point":
        extra = {"width": p["width"]} if "width" in p else {}
        return "keypointlabels", [{"x": x * sx, "y": y * sy, **extra} for x, y in g["points"]], 0
    if kind == "mask":
        if list(g["size"]) != [H, W]:
            raise ValueError(f"mask size {g['size']} is not the image's [height, width] = {[H, W]}")
        return "brushlabels", [{"format": "rle", "rle": _ls_brush.encode(_shapes.mask_from(g))}], 0
    raise ValueError(f"cannot write an object of kind {kind!r} to Label Studio")
