"""The layout of a big JSON object file, found with numpy: its top-level members and an array's items.

A streamed COCO import needs the ``images`` and ``categories`` of a file and then its
``annotations`` a batch at a time. ijson parses ~25 MB/s; orjson parses ~10x faster but
only whole documents. :func:`scan` reads the file once in blocks and finds, with numpy,
where each top-level member's value lies and where every item of the chosen arrays
starts and ends: strings are told apart by their unescaped quotes, brackets outside
strings give the depth. Then

- :meth:`Layout.skeleton` is the document with those arrays emptied, parsed by orjson
  (so every byte outside the items is checked as JSON);
- :meth:`Layout.items` parses the items ``batch`` at a time, each batch one orjson call.

It never decides what the JSON means: a file it cannot map (not an object, a member
repeated, a byte orjson refuses, an integer beyond 64 bits) gives ``None`` or raises
:class:`Unmapped`, and the caller reads the file with ijson as before.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

__all__ = ["BLOCK", "LONG_NUMBER", "Layout", "Unmapped", "scan"]

#: Bytes read and mapped at a time (the numpy arrays of a block take ~15 times this).
BLOCK = 2**18

_QUOTE, _BACKSLASH = 34, 92
_OPEN = (123, 91)  # { [
_CLOSE = (125, 93)  # } ]
_COMMA, _COLON = 44, 58
_SPACE = b" \t\r\n"
#: Digits in a row from which a number may not fit in 64 bits: orjson reads such an integer as a
#: float, ijson refuses it. A file with one outside its strings is not mapped.
LONG_NUMBER = 19


class Unmapped(ValueError):
    """The file (or part of it) is not what :func:`scan` maps: read it another way."""


@dataclass
class Layout:
    """Where a JSON object file's top-level members and the chosen arrays' items are."""

    path: Path
    #: top-level key -> ``(start, end)`` byte offsets of its value
    members: dict[str, tuple[int, int]]
    #: key -> ``(n, 2)`` int64 ``[start, end)`` byte offsets of each item of that array
    spans: dict[str, np.ndarray]

    def skeleton(self) -> dict[str, Any]:
        """The document parsed, with the arrays whose items were mapped left empty."""
        cuts = sorted(self.members[k] for k in self.spans)
        pieces, at = [], 0
        with self.path.open("rb") as f:
            for start, end in cuts:
                f.seek(at)
                pieces.append(f.read(start - at) + b"[]")
                at = end
            f.seek(at)
            pieces.append(f.read())
        doc = _parse(b"".join(pieces), "the document")
        if not isinstance(doc, dict):
            raise Unmapped("not a JSON object")
        return doc

    def items(self, key: str, batch: int, *, start: int = 0) -> Iterator[list[Any]]:
        """The items of the array ``key``, ``batch`` at a time, from item ``start`` on."""
        spans = self.spans[key]
        with self.path.open("rb") as f:
            for i in range(start, len(spans), batch):
                lo, hi = int(spans[i, 0]), int(spans[min(i + batch, len(spans)) - 1, 1])
                f.seek(lo)
                out = _parse(b"[" + f.read(hi - lo) + b"]", f"items {i}..")
                if len(out) != min(batch, len(spans) - i):
                    raise Unmapped(f"items {i}..: {len(out)} values where {min(batch, len(spans) - i)} were mapped")
                yield out


def scan(path: str | Path, arrays: Sequence[str], *, block: int = BLOCK) -> Layout | None:
    r"""Map the top-level members of the JSON object in ``path`` and the items of its ``arrays``.

    None when the file is not one JSON object whose members are each written once, when
    one of ``arrays`` is absent or not an array, or when a number outside its strings has
    :data:`LONG_NUMBER` digits in a row or more.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "a.json"
    >>> _ = f.write_text('{"info": {"v": "[1]"}, "annotations": [{"id": 1}, {"id": "x\\\\"}], "n": 2}')
    >>> lay = scan(f, ["annotations"])
    >>> lay.skeleton(), list(lay.items("annotations", 10))
    ({'info': {'v': '[1]'}, 'annotations': [], 'n': 2}, [[{'id': 1}, {'id': 'x\\'}]])
    """
    path = Path(path)
    state = _State()
    with path.open("rb") as f:
        while chunk := f.read(block):
            if not state.feed(chunk):
                return None
    if state.in_string or state.depth != 0:
        return None
    tops, keys_at, commas = state.tops, state.keys_at, state.commas
    members = _members(path, tops, keys_at)
    if members is None or any(k not in members for k in arrays):
        return None
    spans = {}
    every = np.concatenate(commas) if commas else np.zeros(0, np.int64)
    for key in arrays:
        start, end = members[key]
        with path.open("rb") as f:  # an array: opened and closed by brackets (a mismatch inside is orjson's)
            f.seek(start)
            opened = f.read(1)
            f.seek(end - 1)
            if (opened, f.read(1)) != (b"[", b"]"):
                return None
        inner = every[(every > start) & (every < end - 1)]
        bounds = np.concatenate([[start + 1], inner + 1])
        stops = np.concatenate([inner, [end - 1]])
        spans[key] = np.stack([bounds, stops], axis=1).astype(np.int64)
        if len(inner) == 0 and _blank(path, start + 1, end - 1):
            spans[key] = spans[key][:0]  # []
    return Layout(path, members, spans)


def _parse(raw: bytes, what: str) -> Any:
    """``raw`` parsed by orjson; :class:`Unmapped` where it cannot."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Unmapped(f"{what}: {exc}") from None


#: byte -> 1 opening bracket, 2 closing bracket, 3 comma, 4 colon, 0 anything else
_MARKS = np.zeros(256, np.int8)
_MARKS[list(_OPEN)], _MARKS[list(_CLOSE)], _MARKS[_COMMA], _MARKS[_COLON] = 1, 2, 3, 4
_LONG_RUN = re.compile(rb"[0-9]{%d}" % LONG_NUMBER)


class _State:
    """What :func:`scan` knows after the blocks it has read."""

    def __init__(self) -> None:
        self.tops: list[tuple[int, int, int]] = []  # (position, byte, depth before) of the root's members' marks
        self.keys_at: list[int] = []  # unescaped quotes at depth 1: the root's keys (and string values)
        self.commas: list[np.ndarray] = []  # commas between the items of the root's containers
        self.in_string, self.backslashes, self.depth, self.offset = False, 0, 0, 0
        self.digits, self.before_digits = 0, 0  # a run of digits that reached the end of the last block
        self.last = 0  # the last block's last byte

    def feed(self, chunk: bytes) -> bool:
        """Map one block; False if the file has a long integer literal (see :data:`LONG_NUMBER`)."""
        a = np.frombuffer(chunk, np.uint8)
        quotes = self._quotes(a)
        marks = np.flatnonzero(_MARKS[a])
        marks = marks[(np.searchsorted(quotes, marks) + self.in_string) % 2 == 0]  # outside strings
        code = _MARKS[a[marks]]
        step = (code == 1).astype(np.int64) - (code == 2)
        before = self.depth + np.cumsum(step) - step
        low = (before <= 1) | ((before == 2) & (code == 2))  # the root's members and their ends
        self.tops += zip((marks[low] + self.offset).tolist(), a[marks[low]].tolist(), before[low].tolist())
        self.commas.append(marks[(before == 2) & (code == 3)] + self.offset)
        if len(quotes):  # the depth at each quote: after the marks before it
            qdepth = self.depth + np.concatenate([[0], np.cumsum(step)])[np.searchsorted(marks, quotes)]
            self.keys_at += (quotes[qdepth == 1] + self.offset).tolist()
        if not self._numbers(chunk, a, quotes):
            return False
        self.last = int(a[-1])
        self.depth += int(step.sum())
        self.in_string ^= len(quotes) % 2 == 1
        trailing = _run(a, len(a), _BACKSLASH)  # a string's backslashes at the end of the block, for the next
        self.backslashes = (trailing + (self.backslashes if trailing == len(a) else 0)) if self.in_string else 0
        self.offset += len(a)
        return True

    def _quotes(self, a: np.ndarray) -> np.ndarray:
        """Positions of the unescaped quotes of a block: not after an odd run of backslashes."""
        quotes = np.flatnonzero(a == _QUOTE)
        if len(quotes):
            maybe = quotes[(quotes > 0) & (a[quotes - 1] == _BACKSLASH)].tolist()
            escaped = [q for q in ([0] if quotes[0] == 0 else []) + maybe
                       if (_run(a, q, _BACKSLASH) + (self.backslashes if _run(a, q, _BACKSLASH) == q else 0)) % 2]
            if escaped:
                quotes = np.setdiff1d(quotes, escaped, assume_unique=True)
        return quotes

    def _numbers(self, chunk: bytes, a: np.ndarray, quotes: np.ndarray) -> bool:
        """False at an integer literal of :data:`LONG_NUMBER` digits or more: a run of digits outside
        strings, no '.' before it, no '.', 'e' or 'E' after it. A run that reaches the end of the
        block is judged in the next, where it ends."""
        if self.digits and not 48 <= a[0] <= 57:  # the carried run ended with the last block
            if _long_integer(self.digits, self.before_digits, int(a[0])) and not self.in_string:
                return False
            self.digits = 0
        tail = _run(a, len(a), None)
        if self.digits == 0 and tail == 0 and not _LONG_RUN.search(chunk):
            return True  # no run long enough here, none carried or to carry: nothing to judge
        edges = np.flatnonzero(np.diff(np.concatenate([[0], (a >= 48) & (a <= 57), [0]]).astype(np.int8)))
        starts, ends = edges[::2], edges[1::2]  # [start, end) of each run of digits in the block
        lengths = ends - starts
        before_run = np.where(starts > 0, a[np.maximum(starts - 1, 0)], self.last)
        if len(starts) and starts[0] == 0 and self.digits:
            lengths[0] += self.digits
            before_run[0] = self.before_digits
        after = a[np.minimum(ends, len(a) - 1)]
        integer = (lengths >= LONG_NUMBER) & (ends < len(a)) & (before_run != 46) \
            & (after != 46) & (after != 69) & (after != 101)
        if integer.any() and ((np.searchsorted(quotes, ends[integer]) + self.in_string) % 2 == 0).any():
            return False
        self.digits, self.before_digits = (int(lengths[-1]), int(before_run[-1])) if tail else (0, 0)
        return True


def _long_integer(length: int, before: int, after: int) -> bool:
    """Whether a run of ``length`` digits between the bytes ``before`` and ``after`` is a long integer literal."""
    return length >= LONG_NUMBER and before != 46 and after not in (46, 69, 101)


def _run(a: np.ndarray, end: int, byte: int | None) -> int:
    """How many ``byte`` (None: digits) come right before position ``end`` of ``a``."""
    n = 0
    while end - n - 1 >= 0 and (a[end - n - 1] == byte if byte is not None else 48 <= a[end - n - 1] <= 57):
        n += 1
    return n


def _blank(path: Path, start: int, end: int) -> bool:
    with path.open("rb") as f:
        f.seek(start)
        return not f.read(max(end - start, 0)).strip(_SPACE)


def _members(path: Path, tops: list[tuple[int, int, int]], keys_at: list[int]) -> dict[str, tuple[int, int]] | None:
    """``key -> (start, end)`` of the values of the root object's members that are containers
    (others map to ``(-1, -1)``); None if the root is not an object or a key is repeated."""
    if not tops or tops[0][1:] != (123, 0) or tops[-1][1:] != (125, 1):
        return None
    members: dict[str, tuple[int, int]] = {}
    quotes = np.array(keys_at, dtype=np.int64)
    key, value_at = None, -1
    with path.open("rb") as f:
        for pos, byte, before in tops[1:-1]:
            if byte == _COLON and before == 1:
                k = np.searchsorted(quotes, pos)  # the key: the last string before the colon
                if k < 2:
                    return None
                f.seek(int(quotes[k - 2]))
                try:
                    key = orjson.loads(f.read(int(quotes[k - 1]) - int(quotes[k - 2]) + 1))
                except orjson.JSONDecodeError:
                    return None
                if not isinstance(key, str) or key in members:
                    return None
                members[key] = (-1, -1)
            elif byte in _OPEN and before == 1:
                value_at = pos
            elif byte in _CLOSE and before == 2 and key is not None:
                members[key] = (value_at, pos + 1)
            elif before == 0:
                return None  # a second root value
    return members
