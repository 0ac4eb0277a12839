"""The interchange records every format reads into and writes from.

See ``docs/data-model.md``: readers return a :class:`Dataset` whose geometry is in
the canonical form of its kind; they validate the whole file and raise one
:class:`FormatError` that lists every problem found (up to a limit).
"""
from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit._util.checks import json_problem, name_problem, over_limit
from labkit.formats._jsonout import encode

#: How many problems a reader collects before it stops looking.
MAX_PROBLEMS = 20


@dataclass
class ImageRecord:
    """One image named in a source file."""

    key: str
    width: int | None = None
    height: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None
    where: str = ""


@dataclass
class ObjectRecord:
    """One annotation: an image-level label or a region with canonical geometry."""

    image_key: str
    kind: str
    label: str
    geometry: dict[str, Any] | None
    score: float | None = None
    worker: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    where: str = ""


@dataclass
class Dataset:
    """Images, their objects, and the class names in file order.

    A streamed dataset has no ``objects``: ``batches()`` yields them a batch at a time,
    in order. A streamed file (``coco.stream``, ``labelstudio.stream``) reads them from
    the file, and raises the reader's :class:`FormatError` after the last; a streamed
    export (``project.export``) reads them from the store, and also gives
    ``image_batches()``, whose every batch holds all the objects of a run of consecutive
    ``images``, for the writers that nest objects under their image. Writers read either
    kind through :func:`object_batches` and :func:`image_groups`.
    """

    images: list[ImageRecord]
    objects: Sequence[ObjectRecord]
    classes: list[str]
    batches: Callable[[], Iterator[Sequence[ObjectRecord]]] | None = None
    #: A streamed dataset's annotators (``ObjectRecord.worker``), in order of first appearance.
    workers: list[str] | None = None
    #: A streamed export's objects, image by image (see above).
    image_batches: Callable[[], Iterator[list[ObjectRecord]]] | None = None


class FormatError(ValueError):
    """A file that cannot be read as the format it claims to be.

    ``source`` is the file or folder, ``problems`` a list of ``(where, message)``.
    """

    def __init__(self, source: str | Path, problems: list[tuple[str, str]], more: int = 0):
        self.source = str(source)
        self.problems = list(problems)
        lines = [f"  {where}: {msg}" if where else f"  {msg}" for where, msg in self.problems]
        if more:
            lines.append(f"  ... and {more} more problem(s) not listed")
        n = len(self.problems) + more
        super().__init__(f"{self.source}: {n} problem(s):\n" + "\n".join(lines))


class Problems:
    """Collects ``(where, message)`` pairs while a reader walks a whole file."""

    def __init__(self, source: str | Path, limit: int = MAX_PROBLEMS):
        self.source = source
        self.limit = limit
        self.items: list[tuple[str, str]] = []
        self.more = 0

    def add(self, where: str, message: str) -> None:
        if len(self.items) < self.limit:
            self.items.append((where, message))
        else:
            self.more += 1

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise FormatError(self.source, self.items, self.more)

    # Typed accessors: return the converted value, or None after recording a problem.
    def number(self, value: Any, where: str, what: str, *, text: bool = False) -> float | None:
        """A finite number; ``text=True`` also parses strings (XML attributes)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if text and isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    self.add(where, f"{what} is {show(value)}; expected a number")
                    return None
            else:
                self.add(where, f"{what} is {_show(value)}; expected a number")
                return None
        try:
            f = float(value)
        except OverflowError:  # a Python int with hundreds of digits
            self.add(where, f"{what} is an integer of {len(str(abs(value)))} digits; expected a finite number")
            return None
        if not math.isfinite(f):
            self.add(where, f"{what} is {f!r}; expected a finite number")
            return None
        return f

    def size(self, value: Any, where: str, what: str, *, text: bool = False) -> int | None:
        """A positive integer image dimension (``10.0`` is accepted, ``10.5`` is not)."""
        v = self.number(value, where, what, text=text)
        if v is None:
            return None
        if v <= 0 or v != int(v):
            self.add(where, f"{what} is {show(value)}; expected a positive integer")
            return None
        return int(v)

    def image_size(self, width: int | None, height: int | None, where: str) -> bool:
        """False (and a problem) when an image declared ``width x height`` exceeds ``limits.max_image_pixels``.

        Readers check it before they decode a mask at the image's size: a size in a file
        costs nothing to write and 10^10 pixels to allocate.
        """
        if width is None or height is None:
            return True
        problem = over_limit(width * height, "max_image_pixels", f"the image size {width}x{height}", "pixels")
        if problem:
            self.add(where, problem)
            return False
        return True

    def count(self, n: int, where: str, what: str) -> bool:
        """False (and a problem) when a polygon or point list of ``n`` points exceeds ``limits.max_polygon_points``.

        Readers check the length before they convert a single number, so a hostile file
        with millions of points costs nothing.
        """
        problem = over_limit(n, "max_polygon_points", what, "points")
        if problem:
            self.add(where, problem)
            return False
        return True

    def name(self, value: Any, where: str, what: str = "class name") -> str | None:
        """``value`` if it can be a class (or annotator) name, else None after recording why.

        The same rules as ``Project.add_classes`` (:func:`labkit._util.checks.name_problem`).
        """
        problem = name_problem(value, what)
        if problem:
            self.add(where, problem)
            return None
        return value

    def json(self, value: Any, where: str, what: str) -> bool:
        """False (and a problem) when ``value`` (attributes, provenance) is not storable JSON.

        The same rule as the API (:func:`labkit._util.checks.check_json`): finite numbers,
        valid Unicode, bounded nesting. ``what`` names ``value`` in the message.
        """
        problem = json_problem(value, what)
        if problem is not None:
            self.add(where, f"{problem}; expected plain JSON (finite numbers, valid Unicode text)")
            return False
        return True

    def points(self, value: Any, where: str, what: str, *, min_points: int) -> list[list[float]] | None:
        """A list of ``[x, y]`` pairs with at least ``min_points`` entries."""
        if not isinstance(value, (list, tuple)):
            self.add(where, f"{what} is {_show(value)}; expected a list of [x, y] pairs")
            return None
        if not self.count(len(value), where, what):
            return None
        out: list[list[float]] = []
        for i, p in enumerate(value):
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                self.add(where, f"{what}[{i}] is {_show(p)}; expected an [x, y] pair")
                return None
            x = self.number(p[0], where, f"{what}[{i}][0]")
            y = self.number(p[1], where, f"{what}[{i}][1]")
            if x is None or y is None:
                return None
            out.append([x, y])
        return self._enough(out, where, what, min_points)

    def flat_points(self, value: Any, where: str, what: str, *, min_points: int) -> list[list[float]] | None:
        """A flat ``[x0, y0, x1, y1, ...]`` list, returned as pairs."""
        if not isinstance(value, (list, tuple)):
            self.add(where, f"{what} is {_show(value)}; expected a flat list [x0, y0, x1, y1, ...]")
            return None
        if len(value) % 2:
            self.add(where, f"{what} has {len(value)} numbers; expected an even count (x, y pairs)")
            return None
        if not self.count(len(value) // 2, where, what):
            return None
        checked = [self.number(v, where, f"{what}[{i}]") for i, v in enumerate(value)]
        nums = [v for v in checked if v is not None]
        if len(nums) != len(checked):
            return None
        pts = [[nums[i], nums[i + 1]] for i in range(0, len(nums), 2)]
        return self._enough(pts, where, what, min_points)

    def _enough(self, pts: list[list[float]], where: str, what: str,
                min_points: int) -> list[list[float]] | None:
        if len(pts) < min_points:
            noun = "polygon" if min_points >= 3 else what
            self.add(where, f"{noun} has {len(pts)} point(s); expected at least {min_points}")
            return None
        return pts

    def require(self, record: Any, keys: tuple[str, ...], where: str) -> bool:
        """True when ``record`` is a dict holding every key; else record what is missing."""
        if not isinstance(record, dict):
            self.add(where, f"is {_show(record)}; expected an object with keys {list(keys)}")
            return False
        missing = [k for k in keys if k not in record]
        if missing:
            self.add(where, f"missing required key(s) {missing}; found {list(record)}")
            return False
        return True


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel = 3


def _show(value: Any) -> str:
    """A received value for a message: its type and a short repr, whatever its size or depth."""
    try:
        text = _REPR.repr(value)
    except (ValueError, RecursionError):  # an int too long for str(), a structure too deep
        text = "..."
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def show(value: Any) -> str:
    """A short repr of a value read from a file, for messages (never the whole of a huge value)."""
    try:
        text = _REPR.repr(value)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text[:60] + "..." if len(text) > 60 else text


def read_text(path: Path, where: str = "") -> str:
    """The text of a UTF-8 file (a BOM is dropped); bad bytes are a :class:`FormatError` saying where."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise FormatError(path, [(where, f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                                         f"(line {line}) is {exc.reason}; save the file as UTF-8")]) from None


def load_json(path: str | Path) -> Any:
    """Parse a JSON file, turning parser errors into a :class:`FormatError` with the position.

    Bytes that are not UTF-8, numbers too long to convert and nesting too deep for the
    parser are refused the same way. (What a reader keeps of the document, attributes and
    provenance, is checked against ``limits.max_json_depth`` by :meth:`Problems.json`.)
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, [("", "no such file" if not path.exists() else "not a file")])
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # the parser ran out of text: at the end, or inside a string left open
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        hint = " (the file looks truncated)" if cut else ""
        raise FormatError(path, [("", f"invalid JSON{hint}: {exc.msg} (line {exc.lineno}, "
                                      f"column {exc.colno}, char {exc.pos})")]) from None
    except RecursionError:
        raise FormatError(path, [("", "invalid JSON: lists or objects nested too deeply to read")]) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise FormatError(path, [("", f"invalid JSON: {exc}")]) from None


def inside(root: Path, files: list[Path], pr: Problems) -> list[Path]:
    """The ``files`` (found under ``root``) whose real path is inside ``root``; the others are problems.

    A symbolic link under a folder that points elsewhere would make a reader read a file
    outside the folder it was given.
    """
    base = root.resolve()
    out = []
    for f in files:
        real = f.resolve()
        if real == base or base in real.parents:
            out.append(f)
        else:
            pr.add(f.relative_to(root).as_posix(), f"is a link to {real}, outside {root}; labkit reads only "
                                                    "files inside the folder it is given")
    return out


def write_json(data: Any, path: str | Path, *, indent: int | None = None) -> None:
    """Write ``data`` as strict JSON to ``path``: a ValueError naming the value JSON cannot hold.

    No NaN or Infinity (JSON has neither; ``json.dump`` would write them anyway) and no
    lone surrogates (not UTF-8).
    """
    path = Path(path)
    text = encode(data, path, indent=indent)  # the streamed writers' encoder, so both say the same
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)


def classes_in_order(objects: Sequence[ObjectRecord], declared: list[str] | None = None) -> list[str]:
    """Declared class names first, then any other label in order of first use."""
    out = list(dict.fromkeys(declared or []))
    seen = set(out)
    for o in objects:
        if o.label not in seen:
            seen.add(o.label)
            out.append(o.label)
    return out


def geometry_of(obj: ObjectRecord) -> dict[str, Any]:
    """The geometry of a localised object; a ``ValueError`` if it has none.

    Only ``kind="label"`` objects have ``geometry=None``; writers call this for the others.
    """
    if obj.geometry is None:
        raise ValueError(f"{obj.kind} object on image {obj.image_key!r} has geometry=None; only "
                         "kind 'label' may have no geometry")
    return obj.geometry


def streams(write: Callable[..., None]) -> Callable[..., None]:
    """Mark a writer that takes streamed datasets (:func:`object_batches`, :func:`image_groups`).

    ``project.export`` hands such a writer the project's objects a batch at a time; any
    other writer gets them whole.
    """
    write.streams = True  # type: ignore[attr-defined]
    return write


def writer_streams(write: Callable[..., None]) -> bool:
    """Whether ``write`` was marked with :func:`streams`."""
    return bool(getattr(write, "streams", False))


def object_batches(dataset: Dataset) -> Iterator[Sequence[ObjectRecord]]:
    """``dataset``'s objects in order, a batch at a time: the whole list at once unless it is streamed."""
    if dataset.batches is None:
        yield dataset.objects
    else:
        yield from dataset.batches()


def image_groups(dataset: Dataset) -> Iterator[tuple[ImageRecord, list[ObjectRecord]]]:
    """Each image of ``dataset.images`` in order, with its objects in dataset order.

    A streamed dataset is read through ``image_batches`` (else ``batches``, whose objects
    must then come image by image). An object whose image is not in ``dataset.images``
    (or, streamed, comes after its image's turn) is a ``ValueError``.
    """
    batches = dataset.image_batches or dataset.batches
    if batches is None:  # a whole dataset
        by_image = objects_by_image(dataset)
        for im in dataset.images:
            yield im, by_image[im.key]
        return
    images = iter(dataset.images)
    for batch in batches():
        groups: dict[str, list[ObjectRecord]] = {}
        for o in batch:
            groups.setdefault(o.image_key, []).append(o)
        while groups:
            image = next(images, None)
            if image is None:
                raise ValueError(f"object for image {next(iter(groups))!r} which is not in dataset.images "
                                 "(or not in their order)")
            yield image, groups.pop(image.key, [])
    for im in images:
        yield im, []


def objects_by_image(dataset: Dataset) -> dict[str, list[ObjectRecord]]:
    """Each image's objects, in file order, keyed by image key in the order of ``dataset.images``.

    Writers that nest objects under their image use this; an object whose image is not
    in ``dataset.images`` is a ``ValueError``.
    """
    by_image: dict[str, list[ObjectRecord]] = {im.key: [] for im in dataset.images}
    for o in dataset.objects:
        if o.image_key not in by_image:
            raise ValueError(f"object for image {o.image_key!r} which is not in dataset.images")
        by_image[o.image_key].append(o)
    return by_image
