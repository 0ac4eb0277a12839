"""CVAT for images 1.1 XML.

``<image id name width height>`` children map to kinds:

==============================================  =========================================
``<box xtl ytl xbr ybr [rotation]>``            ``box``; a non-zero ``rotation`` (degrees,
                                                about the centre) gives a ``polygon``
``<polygon points="x,y;x,y;...">``              ``polygon``; polygons sharing a non-zero
                                                ``group_id`` and label are one multi-part polygon
``<points points="...">``                       ``point``
``<ellipse cx cy rx ry [rotation]>``            ``ellipse``
``<mask rle left top width height>``            ``mask`` (CVAT's RLE: run lengths over the
                                                crop, row-major, starting with background)
``<tag>``                                       ``label``
==============================================  =========================================

Other shapes (polylines, cuboids, skeletons) are skipped with a warning. The element's
other XML attributes (``occluded``, ``z_order``, ``source``, ``group_id``, ...) and its
``<attribute name>`` children go to ``provenance["cvat"]``; extra ``<image>`` attributes
become image attributes. Labels declared in ``<meta>`` give the class order, and a shape
whose label is not declared there is an error.
"""
from __future__ import annotations

import re
import tempfile
import uuid
import warnings
from collections import Counter
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np

from labkit._util.atomic import atomic_path
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
    show,
    streams,
)

_GEOMETRY = {"box": ("xtl", "ytl", "xbr", "ybr", "rotation"), "polygon": ("points",),
             "points": ("points",), "ellipse": ("cx", "cy", "rx", "ry", "rotation"),
             "mask": ("rle", "left", "top", "width", "height"), "tag": ()}
_KINDS = {"box": "box", "polygon": "polygon", "points": "point", "ellipse": "ellipse",
          "mask": "mask", "tag": "label"}


def _parse(path: Path) -> ET.Element:
    try:  # defusedxml refuses entity expansion bombs and external entities
        from defusedxml.ElementTree import parse
    except ImportError:  # pragma: no cover
        parse = ET.parse
    return parse(path).getroot()


def read(path: str | Path) -> Dataset:
    """Read a CVAT for images 1.1 ``annotations.xml``."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, [("", "no such file" if not path.exists() else "not a file")])
    try:
        root = _parse(path)
    except ET.ParseError as exc:
        line, col = exc.position
        raise FormatError(path, [("", f"invalid XML (truncated?) at line {line} column {col}: "
                                      f"{exc}")]) from None
    except Exception as exc:  # defusedxml's refusals
        raise FormatError(path, [("", f"unsafe or invalid XML: {exc}")]) from None
    pr = Problems(path)
    if root.tag != "annotations":
        raise FormatError(path, [("", f"root element is <{root.tag}>; expected <annotations>")])
    declared: list[str] = []  # a project's dump may declare its labels in more than one place
    for j, el in enumerate(root.iterfind("meta//labels/label")):
        name = pr.name(el.findtext("name", ""), f"meta labels/label[{j}]", "name")
        if name is not None and name not in declared:
            declared.append(name)
    images: list[ImageRecord] = []
    objects: list[ObjectRecord] = []
    skipped: Counter[str] = Counter()
    names: dict[str, int] = {}
    for i, el in enumerate(root.iterfind("image")):
        where = f"image[{i}]"
        if not pr.require(el.attrib, ("name", "width", "height"), where):
            continue
        if not el.attrib["name"]:
            pr.add(where, "name is empty; expected the image's file name")
            continue
        if el.attrib["name"] in names:
            pr.add(where, f"duplicate image name {show(el.attrib['name'])} (also image[{names[el.attrib['name']]}])")
            continue
        names[el.attrib["name"]] = i
        name = el.attrib["name"]
        where = f"image[{i}] ({name if len(name) <= 60 else name[:57] + '...'})"
        w = pr.size(el.get("width"), where, "width", text=True)
        h = pr.size(el.get("height"), where, "height", text=True)
        im = ImageRecord(key=el.attrib["name"], width=w, height=h, where=where,
                         attributes={k: v for k, v in el.attrib.items()
                                     if k not in ("id", "name", "width", "height")})
        images.append(im)
        counts: Counter[str] = Counter()
        groups: dict[tuple[str, str], ObjectRecord] = {}
        for child in el:
            tag = child.tag
            loc = f"{where}/{tag}[{counts[tag]}]"
            counts[tag] += 1
            if tag not in _KINDS:
                skipped[str(tag)] += 1
                continue
            label = child.get("label")
            if label is None:
                pr.add(loc, "missing required attribute 'label'")
                continue
            if declared and label not in declared:
                pr.add(loc, f"label {show(label)} is not declared in <meta> labels {show(declared)}")
                continue
            if pr.name(label, loc, "label") is None:
                continue
            kind = _KINDS[tag]
            geometry = None
            if tag != "tag":
                raw = _geometry(pr, child, loc, w, h)
                if raw is None:
                    continue
                if tag == "box" and "points" in raw:
                    kind = "polygon"
                geometry = _shapes.canonical(pr, kind, raw, loc)
                if geometry is None:
                    continue
            attrs = {k: v for k, v in child.attrib.items() if k != "label" and k not in _GEOMETRY[tag]}
            attributes = _attributes(pr, child, loc)
            if attributes is None:
                continue
            prov = {"tag": tag, "attrs": attrs, "attributes": attributes}
            group = attrs.get("group_id", "0")
            if tag == "polygon" and geometry is not None and group not in ("", "0") and (label, group) in groups:
                first = groups[(label, group)]
                merged = {"parts": _shapes.parts_of(geometry_of(first)) + [geometry]}
                if pr.count(sum(len(p["points"]) + sum(map(len, p.get("holes", []))) for p in merged["parts"]),
                            loc, f"the polygons of group_id {group}"):
                    first.geometry = merged
                continue
            obj = ObjectRecord(image_key=im.key, kind=kind, label=label, geometry=geometry,
                               provenance={"cvat": prov}, where=loc)
            if tag == "polygon" and group not in ("", "0"):
                groups[(label, group)] = obj
            objects.append(obj)
    pr.raise_if_any()
    if skipped:
        warnings.warn(f"skipped CVAT elements with no labkit kind: {dict(skipped)}", stacklevel=2)
    return Dataset(images=images, objects=objects, classes=classes_in_order(objects, declared))


def _attributes(pr: Problems, el: ET.Element, loc: str) -> dict[str, str] | None:
    """The ``<attribute name="...">value</attribute>`` children of a shape, or None after a problem."""
    out: dict[str, str] = {}
    for j, a in enumerate(el.iterfind("attribute")):
        name = a.get("name")
        if not name:
            pr.add(loc, f"attribute[{j}] has no name; expected <attribute name=\"...\">value</attribute>")
            return None
        if name in out:
            pr.add(loc, f"attribute {show(name)} is given twice")
            return None
        out[name] = a.text or ""
    return out


def _geometry(pr: Problems, el: ET.Element, loc: str, width: int | None,
              height: int | None) -> dict[str, Any] | None:
    tag = el.tag
    if tag == "tag":
        return None
    need = [k for k in _GEOMETRY[tag] if k != "rotation"]
    if not pr.require(el.attrib, tuple(need), loc):
        return None
    if tag in ("polygon", "points"):
        if not pr.count(el.attrib["points"].count(";") + 1, loc, "points"):
            return None
        pts: list[list[float]] = []
        for j, pair in enumerate(el.attrib["points"].split(";")):
            xy = pair.split(",")
            if len(xy) != 2:
                pr.add(loc, f"points[{j}] is {show(pair)}; expected 'x,y'")
                return None
            x, y = (pr.number(v.strip(), loc, f"points[{j}]", text=True) for v in xy)
            if x is None or y is None:
                return None
            pts.append([x, y])
        if tag == "polygon" and len(pts) < 3:
            pr.add(loc, f"polygon has {len(pts)} point(s); expected at least 3")
            return None
        return {"points": pts}
    if tag == "mask":
        return _mask(pr, el, loc, width, height)
    parsed = {k: pr.number(el.get(k, "0"), loc, k, text=True) for k in _GEOMETRY[tag]}
    v = {k: x for k, x in parsed.items() if x is not None}
    if len(v) != len(parsed):
        return None
    if tag == "ellipse":
        if v["rx"] < 0 or v["ry"] < 0:
            pr.add(loc, f"negative ellipse radius rx={v['rx']}, ry={v['ry']}")
            return None
        return _shapes.ellipse(v["cx"], v["cy"], v["rx"], v["ry"], v["rotation"])
    if v["xbr"] < v["xtl"] or v["ybr"] < v["ytl"]:
        pr.add(loc, f"inverted box: xbr < xtl or ybr < ytl ({v['xtl']:g}, {v['ytl']:g}, {v['xbr']:g}, "
                    f"{v['ybr']:g})")
        return None
    if v["rotation"] % 360 == 0:
        return _shapes.box(v["xtl"], v["ytl"], v["xbr"], v["ybr"])
    return {"points": _shapes.rotated_rect(v["xtl"], v["ytl"], v["xbr"] - v["xtl"],
                                           v["ybr"] - v["ytl"], v["rotation"], about="center")}


def _mask(pr: Problems, el: ET.Element, loc: str, width: int | None, height: int | None) -> dict[str, Any] | None:
    x0 = pr.number(el.get("left"), loc, "left", text=True)
    y0 = pr.number(el.get("top"), loc, "top", text=True)
    cw = pr.size(el.get("width"), loc, "width", text=True)
    ch = pr.size(el.get("height"), loc, "height", text=True)
    if x0 is None or y0 is None or cw is None or ch is None or width is None or height is None:
        return None
    if not pr.image_size(width, height, loc):  # the mask is decoded at the image's size
        return None
    left, top = int(x0), int(y0)
    if left < 0 or top < 0 or left + cw > width or top + ch > height:
        pr.add(loc, f"mask crop left={left} top={top} width={cw} height={ch} is outside "
                    f"the {width}x{height} image")
        return None
    try:
        runs = np.array([int(s) for s in el.attrib["rle"].split(",") if s.strip()], np.int64)
    except (ValueError, OverflowError):
        pr.add(loc, "mask rle is not a comma-separated list of integers")
        return None
    if (runs < 0).any() or (runs > cw * ch).any() or runs.sum() != cw * ch:
        pr.add(loc, f"mask rle runs add up to {int(runs.sum())}; expected width*height = {cw * ch}")
        return None
    values = np.arange(runs.size) % 2 == 1  # runs alternate, background first
    mask = np.zeros((height, width), bool)
    mask[top:top + ch, left:left + cw] = np.repeat(values, runs).reshape(ch, cw)
    return _shapes.mask_geometry(mask)


# --- writing -----------------------------------------------------------------

@streams
def write(dataset: Dataset, path: str | Path) -> None:
    """Write ``dataset`` as a CVAT for images 1.1 ``annotations.xml``.

    Every image needs its width and height. Polygon parts become ``<polygon>`` elements
    sharing a ``group_id``; holes are dropped with a warning. Scores have no CVAT field.

    A streamed dataset (``dataset.image_batches``) is written an image at a time: each
    ``<image>`` goes to a spool file as it comes, the header (whose labels and fresh group
    ids depend on every object) in front of them at the end; the file appears whole
    or not at all, and equals the one ``ElementTree`` writes for the whole tree.
    """
    no_size = [im.key for im in dataset.images if im.width is None or im.height is None]
    if no_size:
        raise ValueError(f"{len(no_size)} image(s) have no width/height, e.g. {no_size[:3]}; "
                         "CVAT needs them")
    classes = classes_in_order(dataset.objects, dataset.classes)  # streamed: labels not declared added as met
    known = set(classes)
    token = f"labkit-new-group-{uuid.uuid4().hex}-"  # a fresh group's id until the first free number is known
    largest, fresh, holes = 0, 0, 0
    problem: str | None = None
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        for i, (im, objs) in enumerate(image_groups(dataset)):
            el = ET.Element("image", id=str(i), name=im.key, width=str(im.width), height=str(im.height))
            el.attrib.update({k: str(v) for k, v in im.attributes.items() if isinstance(v, (str, int, float))})
            for o in objs:
                if o.label not in known:
                    known.add(o.label)
                    classes.append(o.label)
                prov = o.provenance.get("cvat", {})
                if (g := prov.get("attrs", {}).get("group_id", "0")).isdigit():
                    largest = max(largest, int(g))
                elements = _elements(o, im)
                if len(elements) > 1:  # the parts of one polygon share a group
                    group = g
                    if group in ("", "0"):
                        group, fresh = f"{token}{fresh}", fresh + 1
                    for _, geo in elements:
                        geo["group_id"] = group
                if o.kind == "polygon":
                    holes += any(p.get("holes") for p in _shapes.parts_of(geometry_of(o)))
                for tag, geo in elements:
                    attrs = {"label": o.label, "source": "manual", "occluded": "0", "z_order": "0",
                             **prov.get("attrs", {}), **geo}
                    if tag == "tag":
                        attrs = {k: v for k, v in attrs.items() if k in ("label", "source")}
                    child = ET.SubElement(el, tag, attrs)
                    for name, value in prov.get("attributes", {}).items():
                        ET.SubElement(child, "attribute", name=name).text = value
            problem = problem or _xml_problem(el, path)
            ET.indent(el, level=1)
            spool.write("\n  " + ET.tostring(el, encoding="unicode"))
        root = ET.Element("annotations")
        ET.SubElement(root, "version").text = "1.1"
        labels = ET.SubElement(ET.SubElement(ET.SubElement(root, "meta"), "task"), "labels")
        for c in classes:
            label = ET.SubElement(labels, "label")
            ET.SubElement(label, "name").text = c
            ET.SubElement(label, "attributes")
        if (problem := _xml_problem(root, path) or problem) is not None:  # the first in the file's order
            raise ValueError(problem)
        if holes:
            warnings.warn(f"CVAT polygons have no holes: dropped the holes of {holes} polygon(s)", stacklevel=2)
        ET.indent(root)
        head = ET.tostring(root, encoding="unicode").removesuffix("\n</annotations>")
        spool.seek(0)
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
            out.write("<?xml version='1.0' encoding='utf-8'?>\n" + head)
            fresh_id = re.compile(re.escape(token) + r"(\d+)")
            for line in spool:
                out.write(fresh_id.sub(lambda m: str(largest + 1 + int(m[1])), line) if fresh else line)
            out.write("\n</annotations>")


#: Characters XML 1.0 cannot hold, even escaped: a file with one is not XML (no reader opens it).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_problem(root: ET.Element, path: str | Path) -> str | None:
    """Why ``root`` cannot be written as XML (the first character XML cannot hold, and where), or None."""
    for el in root.iter():
        for what, text in [("text", el.text or "")] + [(f"attribute {k}", f"{k}{v}") for k, v in el.attrib.items()]:
            if (m := _NOT_XML.search(text)) is not None:
                where = "<" + " ".join([str(el.tag)] + [f"{k}={show(v)}" for k, v in list(el.attrib.items())[:3]]) + ">"
                return (f"cannot write {path}: {where} {what} holds U+{ord(m.group()):04X}, a character XML cannot "
                        "hold; rename the class, image or attribute that has it")
    return None


def _f(v: float) -> str:
    return repr(float(v))


def _elements(o: ObjectRecord, im: ImageRecord) -> list[tuple[str, dict[str, str]]]:
    if o.kind == "label":
        return [("tag", {})]
    g = geometry_of(o)
    if o.kind == "box":
        return [("box", {"xtl": _f(g["x0"]), "ytl": _f(g["y0"]), "xbr": _f(g["x1"]), "ybr": _f(g["y1"])})]
    if o.kind in ("polygon", "point"):
        rings = [p["points"] for p in _shapes.parts_of(g)] if o.kind == "polygon" else [g["points"]]
        tag = "polygon" if o.kind == "polygon" else "points"
        return [(tag, {"points": ";".join(f"{_f(x)},{_f(y)}" for x, y in r)}) for r in rings]
    if o.kind == "ellipse":
        return [("ellipse", {"cx": _f(g["cx"]), "cy": _f(g["cy"]), "rx": _f(g["rx"]), "ry": _f(g["ry"]),
                             "rotation": _f(g["angle"])})]
    if o.kind == "mask":
        m = _shapes.mask_from(g)
        if m.shape != (im.height, im.width):
            raise ValueError(f"mask size {list(m.shape)} of an object on {im.key!r} is not the "
                             f"image's {[im.height, im.width]}")
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if rows.size == 0:
            crop, left, top = np.zeros((1, 1), bool), 0, 0
        else:
            top, left = rows[0], cols[0]
            crop = m[top:rows[-1] + 1, left:cols[-1] + 1]
        flat = crop.ravel().astype(np.int8)
        change = np.flatnonzero(np.diff(flat)) + 1
        runs = np.diff(np.concatenate([[0], change, [flat.size]]))
        if flat[0]:
            runs = np.concatenate([[0], runs])
        return [("mask", {"rle": ", ".join(map(str, runs.tolist())), "left": str(left), "top": str(top),
                          "width": str(crop.shape[1]), "height": str(crop.shape[0])})]
    raise ValueError(f"cannot write an object of kind {o.kind!r} to CVAT")
