"""Write one JSON document a piece at a time: what a streamed export writes its files with.

:func:`json_out` gives the bytes ``json.dumps(doc, indent=indent, ensure_ascii=False,
allow_nan=False)`` would give for the whole document (:func:`encode` is also what
:func:`labkit.formats._base.write_json` writes a whole document with), but holds only the piece being written;
the arrays of a document (a COCO file's annotations, a Label Studio task list) are
written item by item as an iterator yields them. The file appears atomically when the
block ends without an error: never half written.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from labkit._util.atomic import atomic_path
from labkit._util.checks import check_json

__all__ = ["Items", "JsonOut", "encode", "json_out"]


_COMPACT = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode  # json.dumps builds one a call


class JsonOut:
    """The writer :func:`json_out` yields."""

    def __init__(self, file: IO[bytes], path: Path, indent: int | None):
        self.file = file
        self.path = path
        self.indent = indent

    def encode(self, value: Any, level: int = 0, what: str = "data") -> bytes:
        """``value`` as it reads nested ``level`` deep in the document (see :func:`encode`)."""
        return encode(value, self.path, indent=self.indent, level=level, what=what)

    def _break(self, level: int) -> bytes:
        return b"" if self.indent is None else b"\n" + b" " * (self.indent * level)

    def array(self, items: Iterable[bytes], level: int = 0) -> int:
        """Write a JSON array of the encoded ``items`` (each :meth:`encode`-d at ``level + 1``); their number."""
        sep = b", " if self.indent is None else b","
        n = 0
        self.file.write(b"[")
        for item in items:
            self.file.write((sep if n else b"") + self._break(level + 1) + item)
            n += 1
        self.file.write((self._break(level) if n else b"") + b"]")
        return n

    def object(self, fields: Iterable[tuple[str, Any]], level: int = 0) -> None:
        """Write a JSON object; a value that is an :class:`Items` is written as a streamed array."""
        sep = b", " if self.indent is None else b","
        n = 0
        self.file.write(b"{")
        for key, value in fields:
            self.file.write((sep if n else b"") + self._break(level + 1) + self.encode(key) + b": ")
            if isinstance(value, Items):
                self.array(value, level + 1)
            else:
                self.file.write(self.encode(value, level + 1, what=f"data[{key!r}]"))
            n += 1
        self.file.write((self._break(level) if n else b"") + b"}")


def encode(value: Any, path: str | Path, *, indent: int | None = None, level: int = 0,
           what: str = "data") -> bytes:
    """``value`` as strict JSON bytes, nested ``level`` deep in a document written with ``indent``.

    A ``ValueError`` naming the value JSON cannot hold (NaN, infinity, a lone surrogate),
    ``what`` being its place, and the file (``path``) it was for.
    """
    try:
        text = (_COMPACT(value) if indent is None
                else json.dumps(value, indent=indent, ensure_ascii=False, allow_nan=False))
        if indent is not None and level:
            text = text.replace("\n", "\n" + " " * (indent * level))
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as error:
        try:
            check_json(value, what)
        except ValueError as exc:
            raise ValueError(f"cannot write {path}: {exc}; repair or drop that value in the project") from None
        raise ValueError(f"cannot write {path}: {error}") from None


class Items:
    """Encoded array items for :meth:`JsonOut.object`, consumed as it writes them."""

    def __init__(self, items: Iterable[bytes]):
        self._items = iter(items)

    def __iter__(self) -> Iterator[bytes]:
        return self._items


@contextlib.contextmanager
def json_out(path: str | Path, *, indent: int | None = None) -> Iterator[JsonOut]:
    """A :class:`JsonOut` writing ``path`` (atomically: the file appears when the block ends).

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "doc.json"
    >>> with json_out(target) as out:
    ...     out.object([("name", "a"), ("items", Items(out.encode(i, 2) for i in range(3)))])
    >>> target.read_text() == json.dumps({"name": "a", "items": [0, 1, 2]})
    True
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb", buffering=1 << 20) as f:
        yield JsonOut(f, path, indent)
