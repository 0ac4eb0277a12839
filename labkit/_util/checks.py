"""Input checks shared by every layer; each error says what was given and what is expected.

Also the one home of the rules every entry point applies to what it stores (the API, the
importers and the command line call the same functions): :func:`check_json` for free-form
JSON (attributes, provenance), :func:`name_problem` for class, annotator and subject names,
and :data:`limits`, the resource limits on what labkit reads from files.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import unicodedata
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from typing import Any

import orjson

__all__ = ["MAX_NAME_LENGTH", "Limits", "check_choice", "check_json", "close_matches", "did_you_mean",
           "json_depth", "json_problem", "limit_message", "limits", "name_problem", "over_limit",
           "unknown_names"]


def close_matches(value: Any, valid: Sequence[str], *, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The names in ``valid`` that ``value`` was probably meant to be, best first.

    Names equal to ``value`` but for case win outright; otherwise the close matches
    :func:`difflib.get_close_matches` finds, ignoring case (at its default ``cutoff``: lower
    lets short names match almost anything, e.g. ``'owner'`` for ``'bne'``).

    Examples
    --------
    >>> close_matches("Cat", ["cat", "car", "dog"])
    ['cat']
    >>> close_matches("dgo", ["cat", "dog", "bird"])
    ['dog']
    >>> close_matches("cow", ["cat", "dog", "bird"])
    []
    """
    text = str(value)
    same = [v for v in valid if str(v).lower() == text.lower()]
    if same:
        return same[:n]
    by_lower: dict[str, list[str]] = {}
    for v in valid:
        by_lower.setdefault(str(v).lower(), []).append(v)
    found = difflib.get_close_matches(text.lower(), list(by_lower), n=n, cutoff=cutoff)
    return [v for m in found for v in by_lower[m]][:n]


def did_you_mean(names: Sequence[Any], valid: Sequence[str]) -> str:
    """``"did you mean ...?"`` for those of ``names`` that have :func:`close_matches`, else ``""``.

    Examples
    --------
    >>> did_you_mean(["medain"], ["mean", "median"])
    "did you mean 'median' or 'mean'?"
    >>> did_you_mean(["Cat", "cow", "dgo"], ["cat", "dog", "bird"])
    "did you mean 'cat' for 'Cat', 'dog' for 'dgo'?"
    """
    found = {name: close for name in names if (close := close_matches(name, valid))}
    if not found:
        return ""
    if len(names) == 1:
        return f"did you mean {' or '.join(repr(c) for c in found[names[0]])}?"
    return "did you mean " + ", ".join(f"{' or '.join(repr(c) for c in close)} for {name!r}"
                                       for name, close in found.items()) + "?"


def unknown_names(names: Sequence[Any], valid: Sequence[str], what: str, *, plural: str | None = None,
                  valid_as: str = "expected one of", limit: int = 30) -> str:
    """The problem "these names are not among ``valid``", with every name and the close matches.

    Parameters
    ----------
    names : sequence
        The unknown names, all of them (one message for all, not one per name).
    valid : sequence of str
        The names that would have been accepted (the first ``limit`` are shown).
    what, plural : str
        What a name is (``"class"``) and its plural (default ``what + "s"``).
    valid_as : str
        How the valid names are introduced.

    Examples
    --------
    >>> unknown_names(["Cat"], ["cat", "dog"], "class", plural="classes", valid_as="the project has")
    "unknown class 'Cat'; the project has ['cat', 'dog']; did you mean 'cat'?"
    >>> unknown_names(["Cat", "cow"], ["cat", "dog"], "class", plural="classes", valid_as="the project has")
    "unknown classes ['Cat', 'cow']; the project has ['cat', 'dog']; did you mean 'cat' for 'Cat'?"
    """
    names = list(names)
    shown = repr(names[0]) if len(names) == 1 else repr(names)
    more = f" and {len(valid) - limit} more" if len(valid) > limit else ""
    hint = did_you_mean(names, valid)
    return (f"unknown {what if len(names) == 1 else plural or what + 's'} {shown}; "
            f"{valid_as} {list(valid)[:limit]}{more}" + (f"; {hint}" if hint else ""))


def check_choice(value: Any, valid: Sequence[str], what: str) -> str:
    """Return ``value`` if it is one of ``valid``, else raise naming the valid choices.

    Examples
    --------
    >>> check_choice("mean", ["mean", "median"], "statistic")
    'mean'
    >>> check_choice("medain", ["mean", "median"], "statistic")
    Traceback (most recent call last):
    ...
    ValueError: unknown statistic 'medain'; expected one of ['mean', 'median']; did you mean 'median' or 'mean'?
    """
    if isinstance(value, str) and value in valid:
        return value
    raise ValueError(unknown_names([value], valid, what, limit=len(valid)))


def check_json(value: Any, what: str) -> Any:
    """Return ``value`` if it is JSON that every project can store, else raise naming ``what``.

    That is plain dicts, lists, strings and finite numbers (no NaN or infinity, which JSON
    cannot hold), strings that are valid Unicode (no lone surrogates, which UTF-8 and so
    PostgreSQL cannot hold), nested at most :attr:`Limits.max_json_depth` levels. The
    message names the first offending item.

    Examples
    --------
    >>> check_json({"a": [1, 2.5]}, "provenance")
    {'a': [1, 2.5]}
    >>> check_json({"a": float("nan")}, "provenance")
    Traceback (most recent call last):
    ...
    ValueError: provenance must be JSON-serialisable (plain dicts, lists, str, finite numbers): provenance['a'] is nan
    """
    problem = json_problem(value, what)
    if problem is not None:
        raise ValueError(json_message(what, problem))
    return value


def json_problem(value: Any, what: str) -> str | None:
    """The first item of ``value`` that :func:`check_json` refuses, said with its place; ``None`` if none.

    Examples
    --------
    >>> json_problem({"a": [1, float("inf")]}, "attributes")
    "attributes['a'][1] is inf"
    """
    depth = limits.max_json_depth
    if _plainly_storable(value, depth):
        return None
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
        if depth is None or json_depth(value, depth) <= depth:
            return None
    except (TypeError, ValueError, RecursionError):
        pass
    return _json_problem(value, what, depth)


def json_problems(values: Sequence[Any], what: str) -> dict[int, str]:
    """:func:`json_problem` of many values: position to problem, for the values that have one.

    All values are checked together first (one ``json.dumps``, one depth walk), so a
    column of a million valid values costs one pass; only when that finds something are
    they checked one by one, for the messages.

    Examples
    --------
    >>> json_problems([{"a": 1}, {"b": float("nan")}], "provenance")
    {1: "provenance['b'] is nan"}
    """
    values = list(values)
    depth = limits.max_json_depth
    if _plainly_storable(values, None if depth is None else depth + 1):
        return {}
    try:
        json.dumps(values, allow_nan=False, ensure_ascii=False).encode("utf-8")
        if depth is None or json_depth(values, depth + 1) <= depth + 1:
            return {}
    except (TypeError, ValueError, RecursionError):
        pass
    return {i: p for i, v in enumerate(values) if (p := json_problem(v, what)) is not None}


def json_message(what: str, problem: str) -> str:
    """:func:`check_json`'s message for ``problem``."""
    return f"{what} must be JSON-serialisable (plain dicts, lists, str, finite numbers): {problem}"


def json_depth(value: Any, stop: int | None = None) -> int:
    """How deeply ``value`` nests lists and dicts (a scalar is 0, ``[1]`` is 1), without recursion.

    Stops counting once it passes ``stop``, so a hostile document costs no more than that.

    Examples
    --------
    >>> json_depth({"a": [1, {"b": []}]})
    4
    """
    level: list[Any] = [value] if isinstance(value, (dict, list, tuple)) else []
    depth = 0
    while level:
        depth += 1
        if stop is not None and depth > stop:
            break
        kinds = set(map(type, level))
        if kinds <= _PLAIN:  # a level of plain dicts and lists (a column of records): its items in one pass
            items = list(chain.from_iterable(
                map(dict.values, level) if kinds == {dict} else
                level if dict not in kinds else (v.values() if type(v) is dict else v for v in level)))
            found = set(map(type, items))
            if found <= _PLAIN:
                level = items
                continue
            if not any(issubclass(t, (dict, list, tuple)) for t in found):
                break
        deeper: list[Any] = []
        for v in level:
            deeper += [x for x in (v.values() if isinstance(v, dict) else v) if isinstance(x, (dict, list, tuple))]
        level = deeper
    return depth


_PLAIN = {dict, list, tuple}
_LEAVES = {str, int, float, bool, type(None)}


def _plainly_storable(value: Any, depth: int | None) -> bool:
    """True when ``value`` is certainly JSON that :func:`check_json` accepts, found without
    ``json.dumps`` (~3x faster on a column of records): containers and leaves of exactly
    the plain types, finite floats, at most ``depth`` levels, and what orjson writes (string
    keys, no lone surrogates, integers of 64 bits). False means not certain: the caller
    checks the slow way, which says what is wrong."""
    level = [value]
    levels, floats = 0, []
    while level:
        kinds = set(map(type, level))
        if not kinds <= _PLAIN:
            return False
        levels += 1
        if depth is not None and levels > depth:
            return False
        items = list(chain.from_iterable(map(dict.values, level) if kinds == {dict} else
                                         (v.values() if type(v) is dict else v for v in level)))
        found = set(map(type, items))
        if not found <= _PLAIN | _LEAVES:
            return False
        if float in found:
            floats += [x for x in items if type(x) is float]
        level = [x for x in items if type(x) in _PLAIN] if found & _PLAIN else []
    if not all(map(math.isfinite, floats)):
        return False
    try:
        orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: a key not a string, a lone surrogate, an integer past 64 bits
        return False
    return True


def _json_problem(value: Any, what: str, depth: int | None) -> str:
    """The first item of ``value`` that :func:`check_json` refuses, said with its place."""
    todo: deque[tuple[Any, str, int]] = deque([(value, what, 0)])  # breadth first: the shallowest problem
    while todo:
        v, at, d = todo.popleft()
        if depth is not None and d >= depth and isinstance(v, (dict, list, tuple)):
            at = at if len(at) <= 80 else f"{at[:50]}...{at[-20:]}"
            return f"{at} is nested more than {depth} levels deep (labkit's limits.max_json_depth)"
        if isinstance(v, str):
            if any(0xD800 <= ord(c) <= 0xDFFF for c in v):
                return f"{at} holds a lone surrogate (not valid Unicode): {_short(v)}"
        elif isinstance(v, float):
            if not math.isfinite(v):
                return f"{at} is {v!r}"
        elif isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    return f"{at} has a key of type {type(k).__name__}: {_short(k)}"
                if isinstance(k, float) and not math.isfinite(k):
                    return f"{at} has the key {k!r}"
                if isinstance(k, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in k):
                    return f"{at} has a key holding a lone surrogate: {_short(k)}"
                todo.append((x, f"{at}[{k!r}]", d + 1))
        elif isinstance(v, (list, tuple)):
            todo.extend((x, f"{at}[{i}]", d + 1) for i, x in enumerate(v))
        elif v is not None and not isinstance(v, (int, bool)):
            return f"{at} is of type {type(v).__name__}: {_short(v)}"
    return f"{what} cannot be written as JSON"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --- names --------------------------------------------------------------------

#: The longest class, annotator or subject name: the project's name columns hold 256 characters.
MAX_NAME_LENGTH = 256


def name_problem(value: Any, what: str = "class name") -> str | None:
    """Why ``value`` cannot be stored as a name (class, annotator, subject), or ``None`` if it can.

    A name is a string that is not blank, has at most :data:`MAX_NAME_LENGTH` characters and
    holds no control characters (NUL, tab, newline, ...) or lone surrogates: they break
    the formats labkit writes (XML cannot hold them) and PostgreSQL refuses NUL.

    Examples
    --------
    >>> name_problem("cat") is None
    True
    >>> name_problem("  ")
    "class name '  ' is blank; expected a non-empty name"
    >>> name_problem(5)
    'class name 5 is int; expected a string'
    >>> name_problem("a" + chr(0) + "b")
    "class name 'a\\\\x00b' holds control character U+0000; remove it"
    """
    if not isinstance(value, str):
        return f"{what} {_short(value)} is {type(value).__name__}; expected a string"
    if not value.strip():
        return f"{what} {value!r} is blank; expected a non-empty name"
    if len(value) > MAX_NAME_LENGTH:
        return (f"{what} {_short(value, 40)} has {len(value)} characters; the limit is {MAX_NAME_LENGTH} "
                "(shorten it)")
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        kind = "a lone surrogate" if unicodedata.category(bad) == "Cs" else "control character"
        return f"{what} {_short(value)} holds {kind} U+{ord(bad):04X}; remove it"
    return None


# --- resource limits ------------------------------------------------------------------

_LIMITS: dict[str, tuple[int | None, str]] = {
    "max_polygon_points": (100_000, "vertices of one polygon annotation (all parts and holes) or "
                                    "points of one point annotation"),
    "max_image_pixels": (89_478_485, "width x height of one image: added with add_images or an import's "
                                     "images_dir, or declared by an annotation file (PIL's own "
                                     "Image.MAX_IMAGE_PIXELS default)"),
    "max_json_depth": (100, "nesting of lists and objects in stored attributes and provenance"),
}


class Limits:
    """Resource limits on what labkit accepts from files and callers; ``None`` means no limit.

    One object, :data:`limits`, holds them for the whole process. Each limit is read, in
    order, from a value set on it, the environment variable ``LABKIT_<NAME>`` (for the
    command line, e.g. ``LABKIT_MAX_IMAGE_PIXELS=200000000``; ``none`` lifts it), or its default:

    ========================  ===========  ==============================================
    ``max_polygon_points``    100,000      vertices of one polygon annotation (all parts
                                           and holes) or points of one point annotation
    ``max_image_pixels``      89,478,485   width x height of an image added (PIL's own
                                           ``Image.MAX_IMAGE_PIXELS`` default), or declared
                                           by an annotation file
    ``max_json_depth``        100          nesting of stored attributes and provenance
                                           (what a file's records carry into a project)
    ========================  ===========  ==============================================

    Examples
    --------
    >>> from labkit._util.checks import limits
    >>> limits.max_polygon_points
    100000
    >>> with limits.override(max_polygon_points=10):
    ...     limits.max_polygon_points
    10
    """

    def __init__(self) -> None:
        self._values: dict[str, int | None] = {}

    def _get(self, name: str) -> int | None:
        if name in self._values:
            return self._values[name]
        env = "LABKIT_" + name.upper()
        raw = os.environ.get(env)
        if raw is None or not raw.strip():
            return _LIMITS[name][0]
        return _parse_limit(raw, env)

    def _set(self, name: str, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ValueError(f"limits.{name} is {value!r}; expected a positive integer or None (no limit)")
        self._values[name] = value

    @property
    def max_polygon_points(self) -> int | None:
        """Most vertices in one polygon annotation (all parts and holes), or points in one point annotation."""
        return self._get("max_polygon_points")

    @max_polygon_points.setter
    def max_polygon_points(self, value: int | None) -> None:
        self._set("max_polygon_points", value)

    @property
    def max_image_pixels(self) -> int | None:
        """Most pixels (width x height) in one image added to a project or declared by an annotation file."""
        return self._get("max_image_pixels")

    @max_image_pixels.setter
    def max_image_pixels(self, value: int | None) -> None:
        self._set("max_image_pixels", value)

    @property
    def max_json_depth(self) -> int | None:
        """Deepest nesting of lists and objects in stored attributes and provenance."""
        return self._get("max_json_depth")

    @max_json_depth.setter
    def max_json_depth(self, value: int | None) -> None:
        self._set("max_json_depth", value)

    @contextmanager
    def override(self, **values: int | None) -> Iterator[Limits]:
        """Set some limits for the duration of a ``with`` block (then restore them)."""
        unknown = [k for k in values if k not in _LIMITS]
        if unknown:
            raise ValueError(unknown_names(unknown, list(_LIMITS), "limit"))
        before = dict(self._values)
        try:
            for k, v in values.items():
                self._set(k, v)
            yield self
        finally:
            self._values = before

    def reset(self) -> None:
        """Forget the values set here: back to the environment or the defaults."""
        self._values = {}

    def as_dict(self) -> dict[str, int | None]:
        """Every limit in force, by name."""
        return {k: self._get(k) for k in _LIMITS}

    def __repr__(self) -> str:
        return "Limits(" + ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items()) + ")"


def _parse_limit(raw: str, env: str) -> int | None:
    text = raw.strip().replace("_", "")
    if text.lower() == "none":
        return None
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"environment variable {env}={raw!r}; expected a positive integer or 'none'")
    return int(text)


#: The limits in force for this process (see :class:`Limits`).
limits = Limits()


def over_limit(count: int, name: str, what: str, unit: str) -> str | None:
    """The problem "``what`` has ``count`` ``unit``, more than ``limits.<name>``", or ``None`` within it.

    Examples
    --------
    >>> with limits.override(max_polygon_points=10):
    ...     print(over_limit(12, "max_polygon_points", "polygon", "points"))
    polygon has 12 points, more than labkit's limit of 10 (limits.max_polygon_points); if the data is \
genuine, raise the limit: labkit.formats.limits.max_polygon_points = N in Python, LABKIT_MAX_POLYGON_POINTS=N \
in the environment of a labkit command
    """
    limit = limits._get(name)
    if limit is None or count <= limit:
        return None
    return limit_message(f"{what} has {count:,} {unit}", limit, name)


def limit_message(what: str, limit: int, name: str) -> str:
    """"``what``, more than labkit's limit of ``limit``", and how to raise ``limits.<name>``."""
    return (f"{what}, more than labkit's limit of {limit:,} (limits.{name}); if the data is genuine, raise the "
            f"limit: labkit.formats.limits.{name} = N in Python, LABKIT_{name.upper()}=N in the environment of a "
            "labkit command")
