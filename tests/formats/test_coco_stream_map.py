"""A streamed COCO file read through the numpy map and orjson gives what ijson gave, batch for batch.

``coco.stream`` maps the file (``labkit.formats._jsonscan``) and falls back to ijson where
the map gives up, at the start or half-way; every way must yield the same batches or raise
the same error (a bad file may be found bad after more batches one way than the other: the
import rolls them back either way). The files are the streaming import tests' (good and bad ones).
"""
from __future__ import annotations

import copy
import json

import pytest

from labkit.formats import FormatError, coco
from labkit.formats import _jsonscan as js
from tests.store.test_stream_import import CASES, _base

NAMES = [f"img_{i}.png" for i in range(5)]


def _read(path) -> tuple[list, str | None]:
    """The batches a stream yields (batches of 7) and the error it raises, if any."""
    got: list = []
    try:
        ds = coco.stream(path, batch=7)
        got.append(("head", [(im.key, im.width, im.height, im.attributes) for im in ds.images], ds.classes,
                    ds.batches is None))
        if ds.batches is not None:
            for batch in ds.batches():
                got.append(batch)
        else:
            got.append(ds.objects)
    except (FormatError, ValueError) as exc:
        return got, f"{type(exc).__name__}: {exc}"
    return got, None


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_map_reads_what_ijson_reads(case, tmp_path, monkeypatch):
    path = tmp_path / "in.json"
    path.write_text(json.dumps(CASES[case](copy.deepcopy(_base(NAMES)))))
    mapped = _read(path)
    with monkeypatch.context() as m:  # ijson all the way, as before the map
        m.setattr(coco, "scan", lambda *a, **k: None)
        plain = _read(path)
    with monkeypatch.context() as m:  # the map gives up after two batches: ijson goes on from there
        real = js.Layout.items

        def items(self, key, batch, start=0):
            for k, chunk in enumerate(real(self, key, batch, start=start)):
                if k == 2:
                    raise js.Unmapped("given up")
                yield chunk
        m.setattr(js.Layout, "items", items)
        halfway = _read(path)
    for got in (mapped, halfway):  # the same error, or the same batches
        assert got[1] == plain[1]
        if plain[1] is None:
            assert got[0] == plain[0]
    if case == "clean":
        assert mapped[1] is None and sum(len(b) for b in mapped[0][1:]) == 40


def test_the_map_is_the_path_taken_for_a_clean_file(tmp_path, monkeypatch):
    """Not only a fallback that always runs: ijson reads nothing of a clean file."""
    import ijson

    path = tmp_path / "in.json"
    path.write_text(json.dumps(_base(NAMES)))

    def refuse(*a, **k):
        raise AssertionError("ijson was used")
    monkeypatch.setattr(ijson, "items", refuse)
    got, error = _read(path)
    assert error is None and sum(len(b) for b in got[1:]) == 40
