"""Batches held column by column: what a reader's fast path hands the import instead of records.

:class:`ObjectColumns` is a batch of objects as columns (a :class:`~labkit.formats._base.ObjectRecord`
built only when asked for), :class:`IntFields` provenance as integer columns, and
:class:`JsonTexts` geometry as the JSON text the store keeps. Each is a ``Sequence`` of the
values it stands for, so code written for records reads them unchanged.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import orjson

from labkit.formats._base import ImageRecord, ObjectRecord


class IntFields(Sequence[dict[str, Any]]):
    """Provenance held as integer columns: item ``i`` is ``{group: {field: column[i], ...}}``.

    A reader's column path keeps COCO's ids and ``iscrowd`` this way (a nested dict per
    object costs ~1 us to build, and as much again to merge and encode); :meth:`json_with`
    writes each object's JSON text, with one more key, from a ``%`` template.

    Examples
    --------
    >>> f = IntFields("coco", {"id": [7, 8], "iscrowd": [0, 1]})
    >>> f[1]
    {'coco': {'id': 8, 'iscrowd': 1}}
    >>> f.json_with("import", {"format": "coco"})[0]
    '{"coco":{"id":7,"iscrowd":0},"import":{"format":"coco"}}'
    """

    def __init__(self, group: str, columns: dict[str, list[int]]):
        self.group, self.columns = group, columns
        lengths = {len(c) for c in columns.values()}
        if len(lengths) != 1 or set(map(type, itertools.chain.from_iterable(columns.values()))) - {int}:
            raise ValueError("IntFields takes columns of integers (not bools), all of one length")
        self._n = lengths.pop()

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(self._n)[i]
        return {self.group: {k: c[i] for k, c in self.columns.items()}}

    def take(self, rows: list[int]) -> IntFields:
        """The items at ``rows``, still as columns."""
        return IntFields(self.group, {k: [c[i] for i in rows] for k, c in self.columns.items()})

    def json_with(self, key: str, value: Any) -> list[str] | None:
        """The compact JSON text of each item with ``key: value`` added after its group, as
        :func:`labkit.store.bulk.encode_json` writes it (orjson); None where that would take
        its fallback (an integer beyond 64 bits) or a key needs escaping: the caller then
        encodes the items as dicts.
        """
        if key == self.group or not all(_PLAIN_KEY.fullmatch(k) for k in (self.group, key, *self.columns)):
            return None
        values = list(itertools.chain.from_iterable(self.columns.values()))
        if values and not (-(2**63) <= min(values) and max(values) < 2**64):  # beyond what orjson writes
            return None
        try:
            value_json = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):
            return None
        fields = ",".join(f'"{k}":%d' for k in self.columns)
        template = f'{{"{self.group}":{{{fields}}},"{key}":{value_json.replace("%", "%%")}}}'
        return [template % row for row in zip(*self.columns.values())]


#: Keys :meth:`IntFields.json_with` writes as they are (no escaping needed in JSON).
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class JsonTexts(Sequence[Any]):
    """Values held as the compact JSON text orjson writes for them, decoded on demand.

    A reader's column path writes each object's geometry text straight from its arrays
    (one orjson call over a batch's numbers, then slices of its output): a nested dict
    and list per object cost more to build than the text, and as much again to encode.
    ``texts[i]`` is byte for byte what :func:`labkit.store.bulk.encode_json` writes for
    item ``i`` (``tests/store/test_bulk.py`` holds them to it), so the import stores it
    as it is.

    Examples
    --------
    >>> g = JsonTexts(['{"x0":1.0,"y0":2.0,"x1":3.0,"y1":4.5}'])
    >>> g[0]
    {'x0': 1.0, 'y0': 2.0, 'x1': 3.0, 'y1': 4.5}
    >>> g.replaced({0: {"points": [[1.0, 2.0]]}}).texts
    ['{"points":[[1.0,2.0]]}']
    """

    def __init__(self, texts: list[str]):
        self.texts = texts

    def __len__(self) -> int:
        return len(self.texts)

    @overload
    def __getitem__(self, i: int) -> Any: ...

    @overload
    def __getitem__(self, i: slice) -> list[Any]: ...

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [orjson.loads(t) for t in self.texts[i]]
        return orjson.loads(self.texts[i])

    def __eq__(self, other: object) -> bool:  # as the list of values it stands for
        if isinstance(other, (list, JsonTexts)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def take(self, rows: list[int]) -> JsonTexts:
        """The items at ``rows``, still as text."""
        return JsonTexts([self.texts[i] for i in rows])

    def replaced(self, values: dict[int, Any]) -> JsonTexts:
        """A copy with the items at ``values``' keys replaced by its values (plain JSON: str keys,
        finite numbers), written as orjson writes them."""
        texts = list(self.texts)
        for i, v in values.items():
            texts[i] = orjson.dumps(v).decode()
        return JsonTexts(texts)


@dataclass(eq=False)
class ObjectColumns(Sequence[ObjectRecord]):
    """A batch of objects held column by column: a reader's fast path for well-formed files.

    It reads as a sequence of :class:`ObjectRecord` (built on demand), so any consumer of a
    batch works with it; the import reads its columns instead (one check over arrays,
    no record per object). A reader returns one only where it checked, value by value:

    * ``geometry`` is canonical (as :func:`~labkit.geometry.bulk.normalize_many` returns it)
      and ``extent`` is its bounding box, so that checking it against an image's size is
      a comparison of arrays; a mask's extent is NaN (its ``size`` is checked instead);
    * ``scores`` are finite floats or None;
    * ``provenance`` is storable JSON made of integers (COCO's ids, ``iscrowd``), so the
      import does not check it again (:func:`labkit._util.checks.json_problems` costs
      ~3 us an object);
    * no object names a worker.
    """

    images: list[ImageRecord]  # the dataset's images (shared, not copied)
    at: Any  # int array (N,): the position of each object's image in ``images``
    kinds: list[str]
    labels: list[str]
    geometry: Sequence[Any]  # a list, or JsonTexts
    extent: Any  # float array (N, 4): x0, y0, x1, y1 of each box, polygon or point list; NaN for masks
    scores: list[float | None] | None  # None: no object has a score
    provenance: Sequence[dict[str, Any]]  # a list, or IntFields
    start: int = 0  # objects are annotations[start], annotations[start + 1], ... of the file

    def __len__(self) -> int:
        return len(self.kinds)

    @overload
    def __getitem__(self, i: int) -> ObjectRecord: ...

    @overload
    def __getitem__(self, i: slice) -> list[ObjectRecord]: ...

    def __getitem__(self, i: int | slice) -> ObjectRecord | list[ObjectRecord]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # negative indexes; IndexError past the end
        return ObjectRecord(image_key=self.images[int(self.at[i])].key, kind=self.kinds[i], label=self.labels[i],
                            geometry=self.geometry[i], score=None if self.scores is None else self.scores[i],
                            provenance=self.provenance[i], where=f"annotations[{self.start + i}]")

    def __iter__(self) -> Iterator[ObjectRecord]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:  # as the list of records it stands for
        if isinstance(other, (list, ObjectColumns)):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return repr(list(self))

    __hash__ = None  # type: ignore[assignment]
