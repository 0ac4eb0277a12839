"""AI-Hub per-image JSON labels (seed 004, the NIA gaze-tracking eye dataset).

One file per image::

    {"Annotations": {"name": "x.png", "inst": "S", "image": "rgb", "condition": "F",
                     "posture": "D", "metaid": "001",
                     "annotations": [{"label": "r_iris", "shape": "Ellipse", "cx": ..., "cy": ...,
                                      "rx": ..., "ry": ..., "rotate": 0, "points": [[x0, y0], [x1, y1]]},
                                     {"label": "r_eyelid", "shape": "Polygon", "points": [...]},
                                     {"label": "r_center", "shape": "Point", "points": [[x, y]]}],
                     "pose": {"head": [...], "cam": [...], "point": [...]},
                     "distance": {"cam": 53, "display": 53}}}

``Ellipse`` becomes kind ``ellipse`` with ``angle = rotate`` (degrees, taken to follow
the canvas convention: +x toward +y), ``Polygon`` ``polygon``, ``Point`` ``point``.
Every key of ``Annotations`` but ``name``, ``metaid`` and ``annotations`` is an image
attribute; ``metaid`` (the person id) is the image's ``subject``.

Export is lossless: each annotation keeps its original JSON in provenance and is written
back verbatim (label updated) while its geometry is unchanged. Changed ellipses get
their two ``points`` derived as the corners ``(cx - rx, cy - ry)`` and
``(cx + rx, cy + ry)`` of the unrotated ellipse's box, as in the dataset's files;
integral values are written as JSON integers.
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

from labkit.formats import _shapes
from labkit.formats._base import (
    Dataset,
    FormatError,
    ImageRecord,
    ObjectRecord,
    Problems,
    classes_in_order,
    geometry_of,
    image_groups,
    inside,
    load_json,
    show,
    streams,
    write_json,
)

_SHAPES = {"Ellipse": "ellipse", "Polygon": "polygon", "Point": "point"}
_FRONT = ("inst", "image", "condition", "posture")  # written before metaid, as in the files


def read(path: str | Path) -> Dataset:
    """Read one AI-Hub JSON file, or every ``*.json`` under a folder (sorted, recursive)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob("*.json"))
        if not files:
            raise FormatError(path, [("", "no .json files in this folder")])
    elif path.is_file():
        files = [path]
    else:
        raise FormatError(path, [("", "no such file or folder")])
    pr = Problems(path)
    if path.is_dir():
        files = inside(path, files, pr)
    images: list[ImageRecord] = []
    objects: list[ObjectRecord] = []
    seen: dict[str, str] = {}  # image name -> the file that named it first
    for f in files:
        loc = f.relative_to(path).as_posix() if path.is_dir() else f.name
        try:
            doc = load_json(f)
        except FormatError as exc:
            pr.add(loc, exc.problems[0][1])
            continue
        if not pr.require(doc, ("Annotations",), loc) or not pr.require(
                doc["Annotations"], ("name", "annotations"), f"{loc}: Annotations"):
            continue
        a = doc["Annotations"]
        if not isinstance(a["name"], str) or not a["name"]:
            pr.add(f"{loc}: Annotations.name", f"is {show(a['name'])}; expected the image file name")
            continue
        if a["name"] in seen:
            pr.add(f"{loc}: Annotations.name", f"{a['name']!r} is also named by {seen[a['name']]}")
        seen[a["name"]] = loc
        attrs = {k: v for k, v in a.items() if k not in ("name", "metaid", "annotations")}
        metaid = a.get("metaid")
        if metaid is not None and not isinstance(metaid, str):
            attrs["metaid"] = metaid  # keep its JSON type for export
        if isinstance(metaid, int) and not isinstance(metaid, bool):
            metaid = str(metaid)
        if metaid is not None and pr.name(metaid, f"{loc}: Annotations.metaid", "metaid (the subject id)") is None:
            continue
        extra = {k: v for k, v in doc.items() if k != "Annotations"}
        if extra:
            attrs["aihub_top_level"] = extra
        if not pr.json(attrs, f"{loc}: Annotations", "image attributes"):
            continue
        images.append(ImageRecord(key=a["name"], attributes=attrs, where=loc, subject=metaid))
        if not isinstance(a["annotations"], list):
            pr.add(f"{loc}: Annotations.annotations", "is not a list")
            continue
        for j, ann in enumerate(a["annotations"]):
            where = f"{loc}: Annotations.annotations[{j}]"
            kind, geometry = _geometry(pr, ann, where)
            if kind is not None and geometry is not None and pr.json(ann, where, "the annotation"):
                objects.append(ObjectRecord(image_key=a["name"], kind=kind, label=ann["label"],
                                            geometry=geometry, where=where,
                                            provenance={"aihub": {"original": copy.deepcopy(ann)}}))
    pr.raise_if_any()
    return Dataset(images=images, objects=objects, classes=classes_in_order(objects))


def _geometry(pr: Problems, ann: Any, where: str) -> tuple[str | None, dict[str, Any] | None]:
    if not pr.require(ann, ("label", "shape"), where):
        return None, None
    if pr.name(ann["label"], where, "label") is None:
        return None, None
    kind = _SHAPES.get(ann["shape"]) if isinstance(ann["shape"], str) else None
    if kind is None:
        pr.add(where, f"shape is {show(ann['shape'])}; expected one of {list(_SHAPES)}")
        return None, None
    if kind == "ellipse":
        if not pr.require(ann, ("cx", "cy", "rx", "ry"), where):
            return kind, None
        parsed = {k: pr.number(ann.get(k, 0), where, k) for k in ("cx", "cy", "rx", "ry", "rotate")}
        if "points" in ann:
            pr.points(ann["points"], where, "points", min_points=0)
        v = {k: x for k, x in parsed.items() if x is not None}
        if len(v) != len(parsed):
            return kind, None
        if v["rx"] < 0 or v["ry"] < 0:
            pr.add(where, f"negative ellipse radius rx={v['rx']}, ry={v['ry']}")
            return kind, None
        shape = _shapes.ellipse(v["cx"], v["cy"], v["rx"], v["ry"], v["rotate"])
        return kind, _shapes.canonical(pr, kind, shape, where)
    if not pr.require(ann, ("points",), where):
        return kind, None
    pts = pr.points(ann["points"], where, "points", min_points=3 if kind == "polygon" else 1)
    if pts is None:
        return kind, None
    return kind, _shapes.canonical(pr, kind, {"points": pts}, where)


# --- writing -----------------------------------------------------------------

@streams
def write(dataset: Dataset, path: str | Path, *, indent: int | None = None) -> None:
    """Write one ``<image stem>.json`` per image into the folder ``path`` (streamed: an image at a time).

    Boxes are written as 4-corner ``Polygon``, multi-part polygons as one ``Polygon``
    per part, masks as one ``Polygon`` per outer contour (holes are dropped, with a
    warning); image-level labels have no AI-Hub form and are skipped with a warning.
    """
    folder = Path(path)
    names: dict[str, str] = {}
    for im in dataset.images:
        name = Path(im.key).stem + ".json"
        if name in names:
            raise ValueError(f"images {names[name]!r} and {im.key!r} would both be written to {name}")
        names[name] = im.key
    folder.mkdir(parents=True, exist_ok=True)
    lossy: dict[str, int] = {}
    for name, (im, objs) in zip(names, image_groups(dataset)):  # streamed: an image at a time
        attrs = dict(im.attributes)
        top = attrs.pop("aihub_top_level", {})
        a: dict[str, Any] = {"name": im.key}
        a.update({k: attrs.pop(k) for k in _FRONT if k in attrs})
        metaid = attrs.pop("metaid", im.subject)
        if metaid is not None:
            a["metaid"] = metaid
        a["annotations"] = [d for o in objs for d in _annotations(o, lossy)]
        a.update(attrs)
        doc = {"Annotations": a, **top}
        write_json(doc, folder / name, indent=indent)
    if lossy:
        warnings.warn(f"AI-Hub has only Ellipse/Polygon/Point: {lossy}", stacklevel=2)


def _annotations(o: ObjectRecord, lossy: dict[str, int]) -> list[dict[str, Any]]:
    orig = o.provenance.get("aihub", {}).get("original")
    if isinstance(orig, dict):
        kind, parsed = _geometry(Problems("provenance"), orig, "")
        if (kind, parsed) == (o.kind, o.geometry):
            return [dict(copy.deepcopy(orig), label=o.label)]
    orig_shape = orig.get("shape") if isinstance(orig, dict) else None
    same = isinstance(orig_shape, str) and _SHAPES.get(orig_shape) == o.kind
    base = copy.deepcopy(orig) if same else {}
    if o.kind == "label":
        lossy["skipped image-level labels"] = lossy.get("skipped image-level labels", 0) + 1
        return []
    g, P = geometry_of(o), _shapes.plain

    # key order as in the dataset's files
    def entry(shape: str, points: list[list[int | float]], **values: int | float) -> dict[str, Any]:
        return {**base, "label": o.label, "points": points, "shape": shape, **values}

    if o.kind == "ellipse":
        corners = [[P(g["cx"] - g["rx"]), P(g["cy"] - g["ry"])], [P(g["cx"] + g["rx"]), P(g["cy"] + g["ry"])]]
        return [entry("Ellipse", points=corners, rotate=P(g["angle"]), rx=P(g["rx"]), ry=P(g["ry"]),
                      cx=P(g["cx"]), cy=P(g["cy"]))]
    if o.kind == "point":
        return [entry("Point", points=[[P(x), P(y)] for x, y in g["points"]])]
    if o.kind == "box":
        rings = [[[g["x0"], g["y0"]], [g["x1"], g["y0"]], [g["x1"], g["y1"]], [g["x0"], g["y1"]]]]
    elif o.kind == "mask":
        rings = _shapes.outer_rings(g)
        lossy["masks traced to polygons"] = lossy.get("masks traced to polygons", 0) + 1
    else:
        parts = _shapes.parts_of(g)
        if any(p.get("holes") for p in parts):
            lossy["polygon holes dropped"] = lossy.get("polygon holes dropped", 0) + 1
        rings = [p["points"] for p in parts]
    return [entry("Polygon", points=[[P(x), P(y)] for x, y in ring]) for ring in rings]
