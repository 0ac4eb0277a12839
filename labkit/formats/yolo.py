"""YOLO (Ultralytics) detection and segmentation labels.

Layout written and read::

    data.yaml                 names: {0: cat, 1: dog}, nc: 2
    labels/<image stem>.txt   one object per line, coordinates normalised to [0, 1]

``task="detect"`` lines are ``class cx cy w h`` (the axis-aligned box of any region);
``task="segment"`` lines are ``class x1 y1 x2 y2 ...``: boxes as their 4 corners,
ellipses as 64-vertex polygons, and for a multi-part polygon or a mask only the largest
part by area (masks are traced along pixel edges by ``labkit.geometry.mask_to_polygon``;
holes are dropped). Coordinates are clipped
to the image. Points and image-level labels have no YOLO form and are skipped with a
warning, and so are empty masks. Images without objects get an empty label file (YOLO's background images).

Reading needs each image's size to undo the normalisation: from ``image_sizes`` or from
the images in an ``images/`` folder next to ``labels/``, matched by file stem. A line of
5 numbers is a box, 6 a box with a confidence (``save_conf``), 7 or more (odd) a polygon.
"""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np

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
    read_text,
    show,
    streams,
)

_IMAGE_SUFFIXES = {".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"}


@streams
def write(dataset: Dataset, path: str | Path, *, task: str = "detect", scores: bool = False) -> None:
    """Write ``data.yaml`` and ``labels/*.txt`` into the folder ``path``.

    Parameters
    ----------
    dataset : Dataset
        Every image needs its width and height.
    path : str or Path
        Output folder.
    task : {"detect", "segment"}
    scores : bool
        Append each box's score as a sixth column (detection results, ``save_conf``);
        training loaders reject such files.

    A streamed dataset (``dataset.image_batches``) is written an image at a time.
    """
    if task not in ("detect", "segment"):
        raise ValueError(f"task is {task!r}; expected 'detect' or 'segment'")
    no_size = [im.key for im in dataset.images if im.width is None or im.height is None]
    if no_size:
        raise ValueError(f"{len(no_size)} image(s) have no width/height, e.g. {no_size[:3]}; "
                         "YOLO coordinates are normalised by the image size")
    stems: dict[str, str] = {}
    for im in dataset.images:
        stem = Path(im.key).stem
        if stem in stems:
            raise ValueError(f"images {stems[stem]!r} and {im.key!r} would share labels/{stem}.txt")
        stems[stem] = im.key
    classes = classes_in_order(dataset.objects, dataset.classes)  # streamed: labels not declared added as met
    index = {c: i for i, c in enumerate(classes)}
    lossy: Counter[str] = Counter()
    root = Path(path)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for im, objs in image_groups(dataset):  # a streamed dataset an image at a time
        lines = []
        for o in objs:
            if o.label not in index:
                index[o.label] = len(classes)
                classes.append(o.label)
            line = _line(o, im.width, im.height, task, scores, lossy)  # type: ignore[arg-type]
            if line is not None:
                lines.append(f"{index[o.label]} {line}\n")
        (root / "labels" / f"{Path(im.key).stem}.txt").write_text("".join(lines), encoding="utf-8")
    (root / "data.yaml").write_text(_yaml_names(classes), encoding="utf-8")
    if lossy:
        warnings.warn(f"YOLO {task}: {dict(sorted(lossy.items()))}", stacklevel=2)


def _line(o: ObjectRecord, W: int, H: int, task: str, scores: bool, lossy: Counter[str]) -> str | None:
    """An object's label line without its class index; None (and counted in ``lossy``) if YOLO cannot hold it."""
    if o.kind in ("label", "point"):
        lossy[f"skipped {o.kind} objects"] += 1
        return None
    if o.kind == "mask" and not _shapes.mask_from(geometry_of(o)).any():
        lossy["skipped empty masks"] += 1
        return None
    if task == "detect":
        x0, y0, x1, y1 = _shapes.bounds(o.kind, geometry_of(o))
        x0, x1 = np.clip([x0, x1], 0, W) / W
        y0, y1 = np.clip([y0, y1], 0, H) / H
        nums = [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]
        if scores and o.score is not None:
            nums.append(o.score)
    else:
        ring = _largest_ring(o, lossy)
        nums = (np.clip(ring, 0, [W, H]) / [W, H]).ravel().tolist()
    return " ".join(f"{v:.6f}" for v in nums)


def _largest_ring(o: ObjectRecord, lossy: Counter[str]) -> np.ndarray:
    g = geometry_of(o)
    if o.kind == "box":
        return np.array([[g["x0"], g["y0"]], [g["x1"], g["y0"]], [g["x1"], g["y1"]], [g["x0"], g["y1"]]])
    if o.kind == "ellipse":
        return np.array(_shapes.ellipse_polygon(g))
    if o.kind == "mask":
        rings = _shapes.outer_rings(g)
    else:
        parts = _shapes.parts_of(g)
        if any(p.get("holes") for p in parts):
            lossy["polygon holes dropped"] += 1
        rings = sorted((p["points"] for p in parts), key=lambda r: -_shapes.shoelace(r))
    if len(rings) > 1:
        lossy["kept the largest part of multi-part objects"] += 1
    return np.asarray(rings[0], float)


def _yaml_names(classes: list[str]) -> str:
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with jupyter
        import json  # JSON strings are valid YAML scalars
        body = "".join(f"  {i}: {json.dumps(c, ensure_ascii=False)}\n" for i, c in enumerate(classes))
        return f"nc: {len(classes)}\nnames:\n{body}" if classes else "nc: 0\nnames: {}\n"
    return yaml.safe_dump({"nc": len(classes), "names": dict(enumerate(classes))},
                          sort_keys=False, allow_unicode=True)


def read(path: str | Path, *, image_sizes: dict[str, tuple[int, int]] | None = None) -> Dataset:
    """Read a YOLO folder (``data.yaml`` + ``labels/**/*.txt``).

    Parameters
    ----------
    path : str or Path
        The folder holding ``data.yaml``.
    image_sizes : dict, optional
        ``{image key: (width, height)}``; keys are matched to label files by stem and
        become the ImageRecord keys. Without it, sizes come from ``images/``.
    """
    import yaml

    root = Path(path)
    pr = Problems(root)
    if not (root / "data.yaml").is_file():
        raise FormatError(root, [("", "no data.yaml in this folder")])
    if not inside(root, [root / "data.yaml"], pr):
        pr.raise_if_any()
    try:
        meta = yaml.safe_load(read_text(root / "data.yaml", "data.yaml"))
    except yaml.YAMLError as exc:
        raise FormatError(root, [("data.yaml", f"invalid YAML: {exc}")]) from None
    except (RecursionError, ValueError) as exc:  # nested too deeply; a number YAML cannot convert
        raise FormatError(root, [("data.yaml", f"invalid YAML: {type(exc).__name__}: {show(str(exc))}")]) from None
    classes = _names(pr, root, meta.get("names") if isinstance(meta, dict) else None)
    if not (root / "labels").is_dir():
        raise FormatError(root, [("", "no labels/ folder next to data.yaml")])
    sizes = _sizes(pr, root, image_sizes)
    images: list[ImageRecord] = []
    objects: list[ObjectRecord] = []
    files: dict[str, str] = {}  # image key -> its label file
    for f in inside(root, sorted((root / "labels").rglob("*.txt")), pr):
        loc = f.relative_to(root).as_posix()
        if f.stem not in sizes:
            pr.add(loc, f"no size for image {f.stem!r}: pass image_sizes={{key: (width, height)}} "
                        "or put the image in images/")
            continue
        key, (W, H) = sizes[f.stem]
        if key in files:
            pr.add(loc, f"is a second label file for image {key!r} (the first is {files[key]}); "
                        "YOLO matches labels to images by file stem")
            continue
        files[key] = loc
        images.append(ImageRecord(key=key, width=W, height=H, where=loc))
        try:
            text = read_text(f, loc)
        except FormatError as exc:
            pr.add(*exc.problems[0])
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                obj = _read_line(pr, line.split(), f"{loc}:{n}", key, W, H, classes)
                if obj is not None:
                    objects.append(obj)
    pr.raise_if_any()
    return Dataset(images=images, objects=objects, classes=classes)


def _names(pr: Problems, root: Path, names: object) -> list[str]:
    """The class names of ``data.yaml``: a list, or ``{index: name}`` with indices 0..n-1.

    A name is a string; an integer is taken as its decimal string, as Ultralytics does.
    Anything else (``null``, a float, a list) and names given twice are problems.
    """
    if isinstance(names, dict) and all(isinstance(k, int) and not isinstance(k, bool) for k in names):
        keys = sorted(names)
        if keys != list(range(len(keys))):
            pr.add("data.yaml", f"names keys are {show(keys)}; expected 0..{len(keys) - 1}")
        values = [(f"names[{k}]", names[k]) for k in keys]
    elif isinstance(names, list):
        values = [(f"names[{i}]", n) for i, n in enumerate(names)]
    else:
        raise FormatError(root, [("data.yaml", f"names is {show(names)}; expected a list or {{index: name}}")])
    classes: list[str] = []
    for where, n in values:
        if isinstance(n, int) and not isinstance(n, bool):
            n = str(n)
        name = pr.name(n, f"data.yaml {where}")
        if name is not None and name in classes:
            pr.add(f"data.yaml {where}", f"class name {name!r} is also names[{classes.index(name)}]; each index "
                                         "needs its own name")
        classes.append(name if name is not None else "")
    return classes


def _sizes(pr: Problems, root: Path,
           image_sizes: dict[str, tuple[int, int]] | None) -> dict[str, tuple[str, tuple[int, int]]]:
    if image_sizes is not None:
        return {Path(k).stem: (k, (int(w), int(h))) for k, (w, h) in image_sizes.items()}
    out: dict[str, tuple[str, tuple[int, int]]] = {}
    if (root / "images").is_dir():
        from PIL import Image

        found = [f for f in sorted((root / "images").rglob("*")) if f.suffix.lower() in _IMAGE_SUFFIXES]
        for f in inside(root, found, pr):
            loc = f.relative_to(root).as_posix()
            try:
                with warnings.catch_warnings():  # PIL warns of large images; the limit below decides
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    with Image.open(f) as img:  # reads the header only
                        size = img.size
            except Image.DecompressionBombError as exc:
                pr.add(loc, f"refused by PIL: {exc}")
                continue
            except Exception as exc:  # PIL raises many types for files it cannot identify
                pr.add(loc, f"cannot read the image's size: {type(exc).__name__}: {show(str(exc))}")
                continue
            if f.stem in out:
                pr.add(loc, f"has the file stem of images/{out[f.stem][0]}; YOLO matches labels by stem")
                continue
            out[f.stem] = (f.name, size)
    return out


def _read_line(pr: Problems, tokens: list[str], where: str, key: str, W: int, H: int,
               classes: list[str]) -> ObjectRecord | None:
    c = tokens[0]
    if not (c.isascii() and c.isdigit() and len(c) < 10) or int(c) >= len(classes):
        pr.add(where, f"class {show(c)} is not an index into the {len(classes)} names of data.yaml")
        return None
    if len(tokens) > 6 and not pr.count((len(tokens) - 1) // 2, where, "polygon"):
        return None
    parsed = [pr.number(t, where, f"value {j + 1}", text=True) for j, t in enumerate(tokens[1:])]
    nums = [v for v in parsed if v is not None]
    if len(nums) != len(parsed):
        return None
    label, n = classes[int(tokens[0])], len(nums)
    if n in (4, 5):
        cx, cy, w, h = nums[0] * W, nums[1] * H, nums[2] * W, nums[3] * H
        if w < 0 or h < 0:
            pr.add(where, "negative box width or height")
            return None
        g = _shapes.canonical(pr, "box", [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], where)
        if g is None:
            return None
        return ObjectRecord(image_key=key, kind="box", label=label, where=where, geometry=g,
                            score=nums[4] if n == 5 else None)
    if n % 2 or n < 6:
        pr.add(where, f"{n} numbers after the class; expected 4 (box), 5 (box and confidence) or "
                      "an even count of at least 6 (polygon)")
        return None
    g = _shapes.canonical(pr, "polygon", [[nums[j] * W, nums[j + 1] * H] for j in range(0, n, 2)], where)
    if g is None:
        return None
    return ObjectRecord(image_key=key, kind="polygon", label=label, geometry=g, where=where)
