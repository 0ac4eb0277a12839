"""The layout of a big JSON object file, found with numpy: its top-level members and an array's items.

A streamed COCO import needs the ``images`` and ``categories`` of a file and then its
``annotations`` a batch at a time. ijson parses ~25 MB/s; orjson parses ~10x faster but
only whole documents. :func:`scan` reads the file once in blocks and finds, with numpy,
where each top-level member's value lies and where each object or array item of the
chosen arrays ends: strings are told apart by their unescaped quotes, brackets outside
strings give the depth. Only brackets and quotes are located (commas and colons, most of
the marks of a COCO file, are not): the few bytes around the root's keys are read again
where needed. Then

- :meth:`Layout.skeleton` is the document with those arrays emptied, parsed by orjson
  (so every byte outside the items is checked as JSON);
- :meth:`Layout.items` parses the items ``batch`` at a time. The file is cut after every
  ``batch``-th object or array item, at the comma that follows it, and each piece is one
  orjson call; every byte of the array is in one piece, so orjson checks them all, and
  items that are not containers (numbers, strings) are parsed with their neighbours.

It never decides what the JSON means: a file it cannot map (not an object, a member
repeated, a byte orjson refuses, an integer beyond 64 bits) gives ``None`` or raises
:class:`Unmapped`, and the caller reads the file with ijson as before.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

__all__ = ["BLOCK", "LONG_NUMBER", "Layout", "Unmapped", "scan"]

#: Bytes read and mapped at a time (the numpy arrays of a block take ~15 times this).
BLOCK = 2**18
#: Bytes of an array's items, most of them neither objects nor arrays, that one orjson call
#: parses (:func:`_piece`); more goes to ijson (memory bounded by the batch, not the file).
SCALAR_PIECE = 2**26

_QUOTE, _BACKSLASH = 34, 92
_OPEN = (123, 91)  # { [
_CLOSE = (125, 93)  # } ]
_SPACE = b" \t\r\n"
#: Digits in a row from which a number may not fit in 64 bits: orjson reads such an integer as a
#: float, ijson refuses it. A file with one outside its strings is not mapped.
LONG_NUMBER = 19


class Unmapped(ValueError):
    """The file (or part of it) is not what :func:`scan` maps: read it another way."""


@dataclass
class Layout:
    """Where a JSON object file's top-level members and the chosen arrays' container items are."""

    path: Path
    #: top-level key -> ``(start, end)`` byte offsets of its value (``(-1, -1)``: not an object or array)
    members: dict[str, tuple[int, int]]
    #: key -> int64 byte offsets of the closing bracket of each object or array item of that array
    closes: dict[str, np.ndarray]

    def skeleton(self) -> dict[str, Any]:
        """The document parsed, with the arrays whose items were mapped left empty."""
        cuts = sorted(self.members[k] for k in self.closes)
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
        begin, end = self.members[key]
        pending: list[Any] = []
        skip = start
        with self.path.open("rb") as f:
            for piece in _pieces(f, begin + 1, end - 1, self.closes[key], batch):
                dropped = min(skip, len(piece))
                skip -= dropped
                pending += piece[dropped:]
                while len(pending) >= batch:
                    yield pending[:batch]
                    del pending[:batch]
        if pending:
            yield pending


def _pieces(f: BinaryIO, lo: int, hi: int, closes: np.ndarray, batch: int) -> Iterator[list[Any]]:
    """The items between bytes ``lo`` and ``hi`` (an array's inside, ``closes`` the closing brackets
    of its object and array items), parsed a piece at a time: cut at the comma after every
    ``batch``-th of those items, so each piece holds ``batch`` of them (and any other items
    between), and every byte of the array but those commas is in one piece."""
    done = 0  # containers in the pieces so far
    for close in closes[batch - 1::batch].tolist():
        comma = _after_space(f, close + 1)
        if comma >= hi:  # the array's last item: the last piece runs to its end
            break
        f.seek(comma)
        if f.read(1) != b",":
            raise Unmapped(f"byte {comma}: an item is not followed by a comma")
        yield _piece(f, lo, comma, batch)
        lo, done = comma + 1, done + batch
    last = _piece(f, lo, hi, len(closes) - done)
    if done and not last:
        raise Unmapped(f"byte {lo - 1}: a comma after the last item")
    yield last


def _piece(f: BinaryIO, lo: int, hi: int, containers: int) -> list[Any]:
    """The items in bytes ``lo`` to ``hi``, ``containers`` of them objects or arrays (the others:
    numbers, strings and the like). A long piece of mostly such other items (past
    :data:`SCALAR_PIECE` bytes, more than 4 kB a container) is left to ijson, which holds a
    batch at a time, not a piece."""
    if hi - lo > max(SCALAR_PIECE, containers * 4096):
        raise Unmapped(f"bytes {lo}..{hi}: a piece of {hi - lo} bytes for {containers} objects")
    f.seek(lo)
    out = _parse(b"[" + f.read(hi - lo) + b"]", f"bytes {lo}..{hi}")
    if len(out) < containers:
        raise Unmapped(f"bytes {lo}..{hi}: {len(out)} items where {containers} were mapped")
    return out


def _after_space(f: BinaryIO, at: int) -> int:
    """The position of the first byte at or after ``at`` that is not JSON whitespace (the file's size: none)."""
    f.seek(at)
    while chunk := f.read(256):
        rest = chunk.lstrip(_SPACE)
        if rest:
            return at + len(chunk) - len(rest)
        at += len(chunk)
    return at


def scan(path: str | Path, arrays: Sequence[str], *, block: int = BLOCK) -> Layout | None:
    r"""Map the top-level members of the JSON object in ``path`` and the items of its ``arrays``.

    None when the file is not one JSON object whose members are each written once, when
    one of ``arrays`` is absent or not an array, or when a number outside its strings has
    :data:`LONG_NUMBER` digits in a row or more.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "a.json"
    >>> _ = f.write_text('{"info": {"v": "[1]"}, "annotations": [{"id": 1}, 7, {"id": "x\\\\"}], "n": 2}')
    >>> lay = scan(f, ["annotations"])
    >>> lay.skeleton(), list(lay.items("annotations", 10))
    ({'info': {'v': '[1]'}, 'annotations': [], 'n': 2}, [[{'id': 1}, 7, {'id': 'x\\'}]])
    """
    path = Path(path)
    state = _State()
    with path.open("rb") as f:
        while chunk := f.read(block):
            if not state.feed(chunk):
                return None
    if state.in_string or state.depth != 0:
        return None
    members = _members(path, state.tops, state.keys_at)
    if members is None or any(k not in members for k in arrays):
        return None
    every = np.concatenate(state.item_closes) if state.item_closes else np.zeros(0, np.int64)
    closes = {}
    for key in arrays:
        start, end = members[key]
        with path.open("rb") as f:  # an array: opened and closed by brackets (a mismatch inside is orjson's)
            f.seek(max(start, 0))
            opened = f.read(1)
            f.seek(max(end - 1, 0))
            if start < 0 or (opened, f.read(1)) != (b"[", b"]"):
                return None
        closes[key] = every[(every > start) & (every < end - 1)]
    return Layout(path, members, closes)


def _parse(raw: bytes, what: str) -> Any:
    """``raw`` parsed by orjson; :class:`Unmapped` where it cannot."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Unmapped(f"{what}: {exc}") from None


class _State:
    """What :func:`scan` knows after the blocks it has read."""

    def __init__(self) -> None:
        self.tops: list[tuple[int, int, int]] = []  # (position, byte, depth before) of the root's brackets
        self.keys_at: list[int] = []  # unescaped quotes at depth 1: the root's keys (and string values)
        self.item_closes: list[np.ndarray] = []  # closing brackets of the items of the root's containers
        self.in_string, self.backslashes, self.depth, self.offset = False, 0, 0, 0
        self.digits, self.before_digits = 0, 0  # a run of digits that reached the end of the last block
        self.last = 0  # the last block's last byte

    def feed(self, chunk: bytes) -> bool:
        """Map one block; False if the file has a long integer literal (see :data:`LONG_NUMBER`)."""
        a = np.frombuffer(chunk, np.uint8)
        lower = a | 32  # [ ] -> { }: the brackets are the bytes that become 123 or 125
        found = np.flatnonzero((a == _QUOTE) | (lower == 123) | (lower == 125))  # quotes and brackets
        is_quote = a[found] == _QUOTE
        escaped = self._escaped(a, found[is_quote])
        if len(escaped):
            keep = ~np.isin(found, escaped)
            found, is_quote = found[keep], is_quote[keep]
        quotes = found[is_quote]
        outside = (np.cumsum(is_quote) + self.in_string) % 2 == 0  # an even count of quotes up to it
        marks = found[outside & ~is_quote]  # brackets outside strings
        opening = (a[marks] & 2) != 0  # { [ (not } ]): 0b1111011, 0b1011011 against 0b1111101, 0b1011101
        step = opening.astype(np.int64) * 2 - 1
        before = self.depth + np.cumsum(step) - step
        low = (before <= 1) | ((before == 2) & ~opening)  # the root's members and their ends
        self.tops += zip((marks[low] + self.offset).tolist(), a[marks[low]].tolist(), before[low].tolist())
        self.item_closes.append(marks[(before == 3) & ~opening] + self.offset)
        if len(quotes) and (self.depth == 1 or bool((before + step == 1).any())):  # the root's depth is reached:
            # the depth at each quote, after the brackets before it
            qdepth = self.depth + np.concatenate([[0], np.cumsum(step)])[np.searchsorted(marks, quotes)]
            self.keys_at += (quotes[qdepth == 1] + self.offset).tolist()
        if not self._numbers(a, quotes):
            return False
        self.last = int(a[-1])
        self.depth += int(step.sum())
        self.in_string ^= len(quotes) % 2 == 1
        trailing = _run(a, len(a), _BACKSLASH)  # a string's backslashes at the end of the block, for the next
        self.backslashes = (trailing + (self.backslashes if trailing == len(a) else 0)) if self.in_string else 0
        self.offset += len(a)
        return True

    def _escaped(self, a: np.ndarray, quotes: np.ndarray) -> list[int]:
        """The positions of ``quotes`` (a block's quote bytes) that are escaped: after an odd run of backslashes."""
        if not len(quotes):
            return []
        maybe = quotes[(quotes > 0) & (a[quotes - 1] == _BACKSLASH)].tolist()
        return [q for q in ([0] if quotes[0] == 0 else []) + maybe
                if (_run(a, q, _BACKSLASH) + (self.backslashes if _run(a, q, _BACKSLASH) == q else 0)) % 2]

    def _numbers(self, a: np.ndarray, quotes: np.ndarray) -> bool:
        """False at an integer literal of :data:`LONG_NUMBER` digits or more: a run of digits outside
        strings, no '.' before it, no '.', 'e' or 'E' after it. A run that reaches the end of the
        block is judged in the next, where it ends.

        Whole-block numpy: the starts of runs at least :data:`LONG_NUMBER` long are found by
        doubling (digit pairs, fours, eights, ...), those inside strings dropped by the quotes'
        parity (COCO's RLE strings hold thousands of long runs of digits); only the rest, none
        in a usual file, are judged one by one."""
        n = len(a)
        digit = (a - 48) < 10  # uint8 arithmetic wraps: True at b"0".."9" only
        lead = int(np.argmin(digit)) if not digit.all() else n  # the digits the block starts with
        if self.digits:  # a run carried from the last block goes on with those
            if lead == n:
                self.digits += n
                return True
            if _long_integer(self.digits + lead, self.before_digits, int(a[lead])) and not self.in_string:
                return False
        starts, ends = _long_runs(digit)
        outside = (np.searchsorted(quotes, ends) + self.in_string) % 2 == 0
        for start, end in zip(starts[outside].tolist(), ends[outside].tolist()):
            if start == 0 and self.digits:
                continue  # judged above, with the digits carried
            before = int(a[start - 1]) if start else self.last
            if _long_integer(end - start, before, int(a[end])):
                return False
        if lead == n:  # a block of digits, none carried
            self.digits, self.before_digits = n, self.last
        else:
            tail = int(np.argmin(digit[::-1])) if digit[-1] else 0
            self.digits, self.before_digits = (tail, int(a[n - tail - 1])) if tail else (0, 0)
        return True


def _long_runs(digit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` of the runs of at least :data:`LONG_NUMBER` ``True`` in ``digit`` that end
    before it does (a run reaching its end is the next block's to judge)."""
    if len(digit) <= LONG_NUMBER:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    run, width = digit, 1  # run[i]: digit[i:i + width] all True
    while width < LONG_NUMBER:
        step = min(width, LONG_NUMBER - width)
        run, width = run[:-step] & run[step:], width + step
    at = np.flatnonzero(run)  # where LONG_NUMBER digits in a row start
    starts = at[(at == 0) | ~digit[at - 1]]  # ... a run's first digits
    after = at[at + LONG_NUMBER < len(digit)] + LONG_NUMBER
    ends = after[~digit[after]]  # ... its last: the byte after them is not a digit
    return starts[:len(ends)], ends  # (a run reaching the block's end has no end here)


def _long_integer(length: int, before: int, after: int) -> bool:
    """Whether a run of ``length`` digits between the bytes ``before`` and ``after`` is a long integer literal."""
    return length >= LONG_NUMBER and before != 46 and after not in (46, 69, 101)


def _run(a: np.ndarray, end: int, byte: int) -> int:
    """How many ``byte`` come right before position ``end`` of ``a``."""
    n = 0
    while end - n - 1 >= 0 and a[end - n - 1] == byte:
        n += 1
    return n


def _members(path: Path, tops: list[tuple[int, int, int]], keys_at: list[int]) -> dict[str, tuple[int, int]] | None:
    """``key -> (start, end)`` of the values of the root object's members that are containers
    (others map to ``(-1, -1)``); None if the root is not an object or a key is repeated.

    ``tops`` are the brackets of the root and of its members' values, ``keys_at`` the quotes
    of the strings at the root's depth: keys, and string values. A string followed by a
    colon is a key; the value after the colon is a container if a bracket of ``tops`` opens there.
    """
    if not tops or tops[0][1:] != (123, 0) or tops[-1][1:] != (125, 1) or len(keys_at) % 2:
        return None
    ends: dict[int, int] = {}  # where each member's container value opens -> its end
    opened = -1
    for pos, byte, before in tops[1:-1]:
        if before == 1 and byte in _OPEN:
            opened = pos
        elif before == 2 and byte in _CLOSE:
            ends[opened] = pos + 1
        else:
            return None  # a second root value, or a bracket closing the root early
    members: dict[str, tuple[int, int]] = {}
    with path.open("rb") as f:
        for start, stop in zip(keys_at[::2], keys_at[1::2]):
            colon = _after_space(f, stop + 1)
            f.seek(colon)
            if f.read(1) != b":":
                continue  # a string value
            f.seek(start)
            try:
                key = orjson.loads(f.read(stop - start + 1))
            except orjson.JSONDecodeError:
                return None
            if not isinstance(key, str) or key in members:
                return None
            value = _after_space(f, colon + 1)
            members[key] = (value, ends[value]) if value in ends else (-1, -1)
    return members
