"""Integrity checks: files, duplicates, required annotations, taxonomy and geometry.

Every check takes plain tables (the long annotation layout of
``Project.annotations()``, an images table like ``Project.images()``) and returns
**findings**: one row per problem, naming the image (and the annotation, when there
is one) and the rule it breaks. The rules, with the seed 000 quality dimension each
belongs to, are listed in :data:`RULES`. Nothing here opens a file: the store's
:func:`labkit.store.files.inspect_files` reads them, and :func:`file_findings` turns
its table into findings.

=========================== ================== ========================================
rule                        dimension          what
=========================== ================== ========================================
missing_file                completeness       the image file is gone
unreadable_file             completeness       the file cannot be decoded (corrupt)
hash_changed                completeness       the bytes changed since import
missing_annotation          completeness       no annotation of a required kind
missing_attribute           completeness       a required image attribute is absent
duplicate_image             cleanliness        identical or near-identical images
duplicate_label_conflict    cleanliness        duplicates whose labels differ
unknown_class               annotation_quality class not in the taxonomy
box_out_of_bounds, ...      annotation_quality geometry problems (see RULES)
instance_overlap            annotation_quality one annotator's instance masks overlap
=========================== ================== ========================================

Near-duplicates are found with a perceptual hash (:func:`perceptual_hash`, pHash or
dHash implemented here with numpy and ``scipy.fft``, reducing images with Pillow's box
filter re-implemented in :mod:`labkit.quality._resample`) and a Hamming-distance
threshold.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from labkit.geometry import geometry_bounds, mask_iou, rle_area
from labkit.quality._resample import box_resize

__all__ = ["RULES", "FINDING_COLUMNS", "perceptual_hash", "file_findings",
           "find_duplicates", "duplicate_findings", "required_findings", "class_findings",
           "geometry_findings", "overlap_findings", "summarize_findings"]

#: rule -> (quality dimension, severity, description)
RULES: dict[str, tuple[str, str, str]] = {
    "missing_file": ("completeness", "error", "image file is missing"),
    "unreadable_file": ("completeness", "error", "image file cannot be decoded (unreadable or corrupt)"),
    "hash_changed": ("completeness", "error", "image bytes changed since import (sha256 differs)"),
    "missing_annotation": ("completeness", "error", "image has no annotation of a required kind"),
    "missing_attribute": ("completeness", "error", "image lacks a required attribute"),
    "duplicate_image": ("cleanliness", "warning", "identical or near-identical images"),
    "duplicate_label_conflict": ("cleanliness", "error", "duplicate images whose labels conflict"),
    "unknown_class": ("annotation_quality", "error", "annotation class is not in the taxonomy"),
    "box_out_of_bounds": ("annotation_quality", "error", "box extends outside the image"),
    "box_zero_area": ("annotation_quality", "error", "box has zero width or height"),
    "polygon_out_of_bounds": ("annotation_quality", "error", "polygon extends outside the image"),
    "polygon_degenerate": ("annotation_quality", "error", "polygon has fewer than 3 distinct points or zero area"),
    "polygon_self_intersecting": ("annotation_quality", "error", "polygon boundary crosses itself"),
    "polygon_invalid": ("annotation_quality", "error", "polygon is invalid (e.g. a hole outside its shell)"),
    "ellipse_nonpositive_radius": ("annotation_quality", "error", "ellipse has a radius <= 0"),
    "ellipse_out_of_bounds": ("annotation_quality", "error", "ellipse extends outside the image"),
    "point_out_of_bounds": ("annotation_quality", "error", "point lies outside the image"),
    "mask_empty": ("annotation_quality", "error", "mask has no foreground pixel"),
    "mask_size_mismatch": ("annotation_quality", "error", "mask size differs from the image size"),
    "geometry_unreadable": ("annotation_quality", "error", "geometry is not in the canonical form of its kind"),
    "instance_overlap": ("annotation_quality", "error", "instance masks of one annotator overlap"),
}

#: Columns of every findings table, in order.
FINDING_COLUMNS = ("rule", "dimension", "severity", "image", "annotation", "worker", "label",
                   "related", "detail")


# ----------------------------------------------------------------- findings --
def _findings(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The findings table from rows with at least ``rule``, ``image`` and ``detail``."""
    out = []
    for r in rows:
        dim, sev, _ = RULES[r["rule"]]
        out.append({"rule": r["rule"], "dimension": dim, "severity": sev, "image": r.get("image"),
                    "annotation": r.get("annotation"), "worker": r.get("worker"),
                    "label": r.get("label"), "related": r.get("related"), "detail": r.get("detail", "")})
    df = pd.DataFrame(out, columns=list(FINDING_COLUMNS))
    for col in ("image", "annotation"):
        df[col] = df[col].astype("Int64")
    df.index.name = "finding"
    return df


def _require(df: Any, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; found {list(df.columns)}")
    return df


def summarize_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """Count findings per rule: dimension, severity, description, findings, images.

    Examples
    --------
    >>> f = required_findings(pd.DataFrame({"attributes": [{}, {"view": "top"}]}, index=[1, 2]),
    ...                       pd.DataFrame({"task": [2], "kind": ["box"]}), attributes=["view"])
    >>> summarize_findings(f)[["findings", "images"]]
                        findings  images
    rule
    missing_annotation         1       1
    missing_attribute          1       1
    """
    _require(findings, ("rule", "image"), "findings")
    rows = []
    for rule, g in findings.groupby("rule", sort=False):
        dim, sev, text = RULES[rule]
        rows.append({"rule": rule, "dimension": dim, "severity": sev, "description": text,
                     "findings": len(g), "images": g["image"].nunique()})
    cols = ["rule", "dimension", "severity", "description", "findings", "images"]
    return pd.DataFrame(rows, columns=cols).sort_values(["dimension", "rule"]).set_index("rule")


# ------------------------------------------------------------- perceptual hash --
def _gray(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3:
        a = a[..., :3] @ np.array([0.299, 0.587, 0.114]) if a.shape[2] >= 3 else a[..., 0]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"image has shape {np.shape(image)}; expected (H, W) or (H, W, 3)")
    return a


def _pack(bits: np.ndarray) -> int:
    return int(np.packbits(bits.astype(np.uint8).ravel()).view(">u8")[0])


def perceptual_hash(image: np.ndarray, *, method: str = "phash") -> int:
    """A 64-bit perceptual hash of an image, as a Python int.

    ``"phash"``: the image in grey, reduced to 32x32, its 2-D DCT-II; the 8x8 lowest
    frequencies, each compared with their median (DC term left out of the median).
    ``"dhash"``: reduced to 9x8, each pixel compared with its right neighbour.
    Similar images have hashes a small Hamming distance apart.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3)
    method : {"phash", "dhash"}

    References
    ----------
    Zauner, C. (2010). Implementation and benchmarking of perceptual image hash
    functions. Master's thesis, Upper Austria University of Applied Sciences.
    Krawetz, N. (2011). Looks like it. The Hacker Factor blog (pHash, aHash);
    Kind of like that (2013) (dHash).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    >>> perceptual_hash(img) == perceptual_hash(img.copy())
    True
    >>> bin(perceptual_hash(img) ^ perceptual_hash(255 - img)).count("1") > 32
    True
    """
    gray = _gray(image)
    if method == "phash":
        from scipy.fft import dctn

        low = dctn(box_resize(gray, 32, 32).astype(np.float64), type=2, norm="ortho")[:8, :8]
        return _pack(low > np.median(low.ravel()[1:]))
    if method == "dhash":
        small = box_resize(gray, 8, 9).astype(np.float64)
        return _pack(small[:, 1:] > small[:, :-1])
    raise ValueError(f"method={method!r}; expected 'phash' or 'dhash'")


# ---------------------------------------------------------------------- files --
def file_findings(report: pd.DataFrame) -> pd.DataFrame:
    """Findings for missing, unreadable and changed files.

    Parameters
    ----------
    report : DataFrame indexed by image id
        Columns ``status`` (``ok`` or one of the rules ``missing_file``,
        ``unreadable_file``, ``hash_changed``) and ``detail``: what
        :func:`labkit.store.files.inspect_files` returns after reading the files.

    Examples
    --------
    >>> report = pd.DataFrame({"status": ["ok", "missing_file"], "detail": ["", "/data/b.png does not exist"]},
    ...                       index=[1, 2])
    >>> file_findings(report)[["rule", "image", "detail"]]
                     rule  image                      detail
    finding
    0        missing_file      2  /data/b.png does not exist
    """
    _require(report, ("status", "detail"), "report")
    bad = report[report["status"] != "ok"]
    return _findings([{"rule": s, "image": int(i), "detail": d}
                      for i, s, d in zip(bad.index, bad["status"], bad["detail"])])


# ------------------------------------------------------------------ duplicates --
def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    x = x.astype(np.uint64)  # pragma: no cover - numpy < 2
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)


def find_duplicates(hashes: pd.Series, *, max_distance: int = 4, sha256: pd.Series | None = None,
                    chunk: int = 2048, exhaustive_limit: int = 50_000) -> pd.DataFrame:
    """Pairs of images whose perceptual hashes differ in at most ``max_distance`` bits.

    Parameters
    ----------
    hashes : Series of int indexed by image id
        64-bit hashes from :func:`perceptual_hash` (missing values are skipped).
    max_distance : int, default 4
        Hamming distance (of 64 bits) up to which two images count as near-duplicates.
    sha256 : Series of str, optional
        File hashes; identical bytes are reported as ``exact`` whatever the distance.
    chunk : int
        Rows compared at once (memory ``chunk * N`` uint64).
    exhaustive_limit : int
        The near-duplicate search compares all pairs, O(N^2); above this many images
        only equal hashes (distance 0) and identical bytes are reported.

    Returns
    -------
    DataFrame
        Columns ``image_a < image_b``, ``distance``, ``exact``; sorted.

    Examples
    --------
    >>> find_duplicates(pd.Series([0b1011, 0b1010, 0xFFFF], index=[7, 8, 9]), max_distance=1)
       image_a  image_b  distance  exact
    0        7        8         1  False
    """
    if not isinstance(hashes, pd.Series):
        raise ValueError(f"hashes must be a Series of ints indexed by image id, got {type(hashes).__name__}")
    if isinstance(max_distance, bool) or not isinstance(max_distance, (int, np.integer)) \
            or not 0 <= max_distance <= 64:
        raise ValueError(f"max_distance={max_distance!r}; expected an integer in [0, 64]")
    h = hashes.dropna()
    ids = h.index.to_numpy()
    vals = np.array([int(v) & 0xFFFFFFFFFFFFFFFF for v in h], dtype=np.uint64)
    rows: list[tuple] = []
    if len(vals) > exhaustive_limit:
        max_distance, groups = 0, pd.Series(np.arange(len(vals))).groupby(vals)
        for _, pos in groups:
            p = pos.to_numpy()
            rows += [(a, b, 0) for i, a in enumerate(p) for b in p[i + 1:]]
    for s in range(0, len(vals) if len(vals) <= exhaustive_limit else 0, chunk):
        d = _popcount(vals[s:s + chunk, None] ^ vals[None, :])
        ia, ib = np.nonzero(d <= max_distance)
        keep = ia + s < ib
        rows += zip(ia[keep] + s, ib[keep], d[ia[keep], ib[keep]])
    pairs = {(ids[a], ids[b]): int(dist) for a, b, dist in rows}
    if sha256 is not None:
        s = sha256.dropna()
        for _, group in s.groupby(s):
            g = sorted(group.index)
            for i, a in enumerate(g):
                for b in g[i + 1:]:
                    pairs.setdefault((a, b), 0)
        exact = {(a, b) for (a, b) in pairs if a in s.index and b in s.index and s[a] == s[b]}
    else:
        exact = set()
    out = pd.DataFrame([(min(a, b), max(a, b), d, (a, b) in exact) for (a, b), d in pairs.items()],
                       columns=["image_a", "image_b", "distance", "exact"])
    return out.sort_values(["image_a", "image_b"]).reset_index(drop=True)


def duplicate_findings(pairs: pd.DataFrame, labels: Mapping[Any, Any] | pd.Series | None = None
                       ) -> pd.DataFrame:
    """One finding per duplicate pair; ``duplicate_label_conflict`` when their labels differ.

    Parameters
    ----------
    pairs : DataFrame from :func:`find_duplicates`
    labels : mapping image id -> label (a class name or a set of class names), optional
        The images' labels; a pair conflicts when both are labeled and the labels differ.
    """
    _require(pairs, ("image_a", "image_b", "distance"), "pairs")
    labels = {} if labels is None else dict(labels)
    rows = []
    for a, b, d, exact in zip(pairs["image_a"], pairs["image_b"], pairs["distance"],
                              pairs.get("exact", [False] * len(pairs))):
        la, lb = labels.get(a), labels.get(b)
        how = "identical bytes" if exact else f"perceptual hash distance {d}/64"
        conflict = la is not None and lb is not None and _norm_label(la) != _norm_label(lb)
        if conflict:
            rows.append({"rule": "duplicate_label_conflict", "image": int(a), "related": int(b),
                         "label": _show_label(la),
                         "detail": f"images {a} and {b} are duplicates ({how}) but labeled "
                                   f"{_show_label(la)!r} and {_show_label(lb)!r}"})
        else:
            rows.append({"rule": "duplicate_image", "image": int(a), "related": int(b),
                         "label": None if la is None else _show_label(la),
                         "detail": f"images {a} and {b} are duplicates ({how})"})
    return _findings(rows)


def _norm_label(v: Any) -> frozenset:
    if isinstance(v, (set, frozenset, list, tuple)):
        return frozenset(map(str, v))
    return frozenset([str(v)])


def _show_label(v: Any) -> str:
    return ", ".join(sorted(_norm_label(v)))


# ------------------------------------------------------------ required content --
def required_findings(images: pd.DataFrame, annotations: pd.DataFrame, *,
                      kinds: Iterable[str] | None = None, attributes: Iterable[str] = ()) -> pd.DataFrame:
    """Images without a required annotation or attribute.

    Parameters
    ----------
    images : DataFrame indexed by image id; an ``attributes`` column of dicts when
        ``attributes`` are required.
    annotations : DataFrame with columns ``task`` (image id) and ``kind``
    kinds : iterable of str, optional
        Every image needs at least one annotation of one of these kinds (default: of
        any kind).
    attributes : iterable of str
        Image attributes every image must have (a missing key, None or "" is missing).

    Examples
    --------
    >>> imgs = pd.DataFrame({"attributes": [{"view": "top"}, {}]}, index=[1, 2])
    >>> ann = pd.DataFrame({"task": [1], "kind": ["box"]})
    >>> required_findings(imgs, ann, kinds=["box"], attributes=["view"])[["rule", "image", "detail"]]
                          rule  image                                  detail
    finding
    0       missing_annotation      2     no annotation of kind 'box'
    1        missing_attribute      2  attribute 'view' is missing
    """
    _require(annotations, ("task", "kind"), "annotations")
    kinds = None if kinds is None else list(kinds)
    attributes = list(attributes)
    if attributes:
        _require(images, ("attributes",), "images")
    ann = annotations if kinds is None else annotations[annotations["kind"].isin(kinds)]
    have = set(ann["task"].tolist())
    what = "no annotation" if kinds is None else \
        f"no annotation of kind {' or '.join(repr(k) for k in kinds)}"
    rows = []
    for img in images.index:
        if img not in have:
            rows.append({"rule": "missing_annotation", "image": int(img), "detail": what})
        if attributes:
            attrs = images.at[img, "attributes"] or {}
            for key in attributes:
                if attrs.get(key) in (None, ""):
                    rows.append({"rule": "missing_attribute", "image": int(img),
                                 "detail": f"attribute {key!r} is missing"})
    return _findings(rows)


def class_findings(annotations: pd.DataFrame, classes: Iterable[str]) -> pd.DataFrame:
    """Annotations whose class is not in ``classes`` (the contract's taxonomy)."""
    _require(annotations, ("task", "label"), "annotations")
    known = set(classes)
    bad = annotations[~annotations["label"].isin(known)]
    workers = bad["worker"] if "worker" in bad else [None] * len(bad)
    return _findings([{"rule": "unknown_class", "image": int(task), "annotation": int(i), "worker": worker,
                       "label": label, "detail": f"class {label!r} is not in the taxonomy"}
                      for i, task, worker, label in zip(bad.index, bad["task"], workers, bad["label"])])


# -------------------------------------------------------------------- geometry --
def _outside(bounds: tuple[float, float, float, float], w: float, h: float, tol: float) -> bool:
    x0, y0, x1, y1 = bounds
    return x0 < -tol or y0 < -tol or x1 > w + tol or y1 > h + tol


def _fmt(b: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in b) + ")"


def _polygon_problems(geom: Mapping[str, Any]) -> list[tuple[str, str]]:
    import shapely
    from shapely.geometry import Polygon

    out = []
    parts = geom["parts"] if "parts" in geom else [geom]
    for k, part in enumerate(parts):
        where = f"part {k}: " if len(parts) > 1 else ""
        ring = np.asarray(part["points"], dtype=float).reshape(-1, 2)
        distinct = len({(float(x), float(y)) for x, y in ring})
        centred = ring - ring.mean(0) if len(ring) else ring
        if distinct < 3 or np.linalg.matrix_rank(centred, tol=1e-9) < 2:  # a point or a line: no area
            out.append(("polygon_degenerate", f"{where}{distinct} distinct point(s), all on one line: area 0"))
            continue
        poly = Polygon(ring, [np.asarray(h, float) for h in part.get("holes", [])])
        if not poly.is_valid:
            reason = shapely.is_valid_reason(poly)
            rule = "polygon_self_intersecting" if "Self-intersection" in reason else "polygon_invalid"
            out.append((rule, f"{where}{reason}"))
    return out


def _one_geometry(kind: str, g: Any, w: float, h: float, tol: float) -> list[tuple[str, str]]:
    if kind == "box":
        x0, y0, x1, y1 = geometry_bounds("box", g, validate=False)
        out = []
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            out.append(("box_zero_area", f"box {_fmt((x0, y0, x1, y1))} is {x1 - x0:g} x {y1 - y0:g} px"))
        if _outside((x0, y0, x1, y1), w, h, tol):
            out.append(("box_out_of_bounds", f"box {_fmt((x0, y0, x1, y1))} outside the {w:g}x{h:g} image"))
        return out
    if kind == "polygon":
        out = _polygon_problems(g)
        b = geometry_bounds("polygon", g, validate=False)
        if _outside(b, w, h, tol):
            out.append(("polygon_out_of_bounds", f"bounds {_fmt(b)} outside the {w:g}x{h:g} image"))
        return out
    if kind == "ellipse":
        rx, ry = float(g["rx"]), float(g["ry"])
        if rx <= 0 or ry <= 0:
            return [("ellipse_nonpositive_radius", f"radii rx={rx:g}, ry={ry:g}")]
        b = geometry_bounds("ellipse", g, validate=False)
        return [("ellipse_out_of_bounds", f"bounds {_fmt(b)} outside the {w:g}x{h:g} image")] \
            if _outside(b, w, h, tol) else []
    if kind == "point":
        pts = np.asarray(g["points"], float).reshape(-1, 2)
        bad = pts[(pts[:, 0] < -tol) | (pts[:, 1] < -tol) | (pts[:, 0] > w + tol) | (pts[:, 1] > h + tol)]
        return [("point_out_of_bounds", f"point(s) {bad.tolist()} outside the {w:g}x{h:g} image")] \
            if len(bad) else []
    if kind == "mask":
        size = [int(v) for v in g["size"]]
        out = []
        if size != [int(h), int(w)]:
            out.append(("mask_size_mismatch", f"mask is {size[1]}x{size[0]}, image is {w:g}x{h:g}"))
        if rle_area(g) == 0:
            out.append(("mask_empty", "mask has 0 foreground pixels"))
        return out
    return []


def geometry_findings(annotations: pd.DataFrame, sizes: pd.DataFrame, *,
                      tolerance: float = 0.5) -> pd.DataFrame:
    """Geometry problems: out of bounds, zero area, degenerate or self-intersecting
    polygons, empty masks, non-positive radii.

    Parameters
    ----------
    annotations : DataFrame with ``task``, ``kind``, ``geometry`` (canonical form), and
        optionally ``worker``, ``label``; indexed by annotation id.
    sizes : DataFrame indexed by image id with ``width`` and ``height``.
    tolerance : float, default 0.5
        Pixels a shape may stick out of the image before it is out of bounds.

    Examples
    --------
    >>> ann = pd.DataFrame({"task": [1, 1], "kind": ["box", "ellipse"], "label": ["cat", "eye"],
    ...                     "geometry": [{"x0": 5, "y0": 5, "x1": 5, "y1": 9},
    ...                                  {"cx": 4, "cy": 4, "rx": 0, "ry": 2, "angle": 0}]}, index=[10, 11])
    >>> geometry_findings(ann, pd.DataFrame({"width": [20], "height": [20]}, index=[1]))[["rule", "annotation"]]
                                   rule  annotation
    finding
    0                     box_zero_area          10
    1        ellipse_nonpositive_radius          11
    """
    _require(annotations, ("task", "kind", "geometry"), "annotations")
    _require(sizes, ("width", "height"), "sizes")
    ann = annotations[annotations["kind"] != "label"]
    tasks = ann["task"].to_numpy()
    where = sizes.index.get_indexer(tasks)
    if (where < 0).any():
        i = int(np.flatnonzero(where < 0)[0])
        raise ValueError(f"annotation {ann.index[i]} is on image {tasks[i]}, which sizes does not list")
    widths = sizes["width"].to_numpy(float)[where]
    heights = sizes["height"].to_numpy(float)[where]
    n = len(ann)
    workers = ann["worker"].tolist() if "worker" in ann else [None] * n
    labels = ann["label"].tolist() if "label" in ann else [None] * n
    kinds, geometries = ann["kind"].tolist(), ann["geometry"].tolist()
    problems: dict[int, list[tuple[str, str]]] = {}
    boxes = _box_rows(kinds, geometries, widths, heights, float(tolerance))  # the common case, in bulk
    for i, (kind, g) in enumerate(zip(kinds, geometries)):
        if i in boxes:
            found = boxes[i]
        else:
            try:
                found = _one_geometry(kind, g, float(widths[i]), float(heights[i]), float(tolerance))
            except (KeyError, TypeError, ValueError) as exc:
                found = [("geometry_unreadable", f"{kind} geometry cannot be read: {exc}")]
        if found:
            problems[i] = found
    ids = ann.index.tolist()
    rows = [{"image": int(tasks[i]), "annotation": int(ids[i]), "worker": workers[i], "label": labels[i],
             "rule": rule, "detail": detail} for i, found in problems.items() for rule, detail in found]
    return _findings(rows)


def _box_rows(kinds: list[str], geometries: list[Any], widths: np.ndarray, heights: np.ndarray,
              tol: float) -> dict[int, list[tuple[str, str]]]:
    """:func:`_one_geometry` of every well-formed box at once: row position -> its problems (often none).

    Boxes that are not a dict of four numbers are left out (the row check words them).
    """
    at, values = [], []
    for i, (kind, g) in enumerate(zip(kinds, geometries)):
        if kind == "box" and type(g) is dict:
            try:
                v = (float(g["x0"]), float(g["y0"]), float(g["x1"]), float(g["y1"]))
            except (KeyError, TypeError, ValueError):
                continue
            at.append(i)
            values.append(v)
    if not at:
        return {}
    b = np.array(values, float)
    w, h = widths[at], heights[at]
    zero = (b[:, 2] - b[:, 0] <= 0) | (b[:, 3] - b[:, 1] <= 0)
    outside = (b[:, 0] < -tol) | (b[:, 1] < -tol) | (b[:, 2] > w + tol) | (b[:, 3] > h + tol)
    out: dict[int, list[tuple[str, str]]] = dict.fromkeys(at, [])
    for j in np.flatnonzero(zero | outside).tolist():
        x0, y0, x1, y1 = values[j]
        found = []
        if zero[j]:
            found.append(("box_zero_area", f"box {_fmt(values[j])} is {x1 - x0:g} x {y1 - y0:g} px"))
        if outside[j]:
            found.append(("box_out_of_bounds", f"box {_fmt(values[j])} outside the {w[j]:g}x{h[j]:g} image"))
        out[at[j]] = found
    return out


def overlap_findings(annotations: pd.DataFrame, *, max_overlap: float = 0.0,
                     by: Sequence[str] = ("task", "worker")) -> pd.DataFrame:
    """Instance masks that overlap where they must not: within one annotator's masks on an image.

    Parameters
    ----------
    annotations : DataFrame with ``task``, ``worker``, ``kind``, ``geometry``; only
        ``kind == "mask"`` rows are used.
    max_overlap : float, default 0.0
        Largest allowed shared area as a fraction of the smaller mask (0: no shared pixel).
    by : columns
        Masks in the same group must be disjoint (default: per image and annotator).

    Examples
    --------
    >>> from labkit.geometry import encode_rle
    >>> a = np.zeros((6, 6), bool); a[:3] = True
    >>> b = np.zeros((6, 6), bool); b[2:] = True
    >>> ann = pd.DataFrame({"task": [1, 1], "worker": ["ana", "ana"], "kind": ["mask", "mask"],
    ...                     "label": ["x", "y"], "geometry": [encode_rle(a), encode_rle(b)]}, index=[3, 4])
    >>> overlap_findings(ann)[["rule", "annotation", "related"]]
                        rule  annotation  related
    finding
    0       instance_overlap           3        4
    """
    _require(annotations, (*by, "kind", "geometry"), "annotations")
    if not 0 <= float(max_overlap) < 1:
        raise ValueError(f"max_overlap={max_overlap!r}; expected a fraction in [0, 1)")
    masks = annotations[annotations["kind"] == "mask"]
    rows = []
    for _, g in masks.groupby(list(by), sort=True):
        if len(g) < 2:
            continue
        rles = list(g["geometry"])
        areas = np.array([rle_area(r) for r in rles], float)
        iou = mask_iou(rles, rles)
        inter = iou / (1 + iou) * (areas[:, None] + areas[None, :])
        ids = g.index.to_numpy()
        for i, j in zip(*np.nonzero(np.triu(np.ones_like(iou, bool), 1))):
            smaller = min(areas[i], areas[j])
            if inter[i, j] > 0.5 and smaller > 0 and inter[i, j] / smaller > max_overlap:
                r = g.iloc[i]
                rows.append({"rule": "instance_overlap", "image": int(r["task"]), "annotation": int(ids[i]),
                             "related": int(ids[j]), "worker": r.get("worker"), "label": r.get("label"),
                             "detail": f"masks {ids[i]} and {ids[j]} share {inter[i, j]:.0f} px "
                                       f"({inter[i, j] / smaller:.0%} of the smaller)"})
    return _findings(rows)
