"""The numpy map of a JSON file's members and items (``labkit.formats._jsonscan``) against ``json``."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.formats._jsonscan import Unmapped, scan

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
#: strings full of what a map could mistake for structure
TEXT = st.lists(st.sampled_from(list('"\\[]{},: ab\n\té€😀') + ["\\\\", '\\"']), max_size=8).map("".join)
LEAF = st.none() | st.booleans() | st.integers(-10**18 + 1, 10**18 - 1) | st.floats(allow_nan=False,
                                                                              allow_infinity=False) | TEXT
VALUE = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                     max_leaves=10)
STYLES = [{}, {"indent": 2}, {"separators": (",", ":")}, {"indent": "\t", "separators": (" ,", " :  ")},
          {"ensure_ascii": False}]


@st.composite
def documents(draw):
    doc = draw(st.dictionaries(TEXT.filter(lambda k: k not in ("images", "annotations")), VALUE, max_size=3))
    doc["annotations"] = draw(st.lists(VALUE, max_size=8))
    doc["images"] = draw(st.lists(VALUE, max_size=3))
    order = draw(st.permutations(list(doc)))
    return {k: doc[k] for k in order}


def mapped(text: str, block: int, batch: int):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.json"
        path.write_text(text, encoding="utf-8")
        layout = scan(path, ["annotations", "images"], block=block)
        if layout is None:
            return None
        skeleton = layout.skeleton()
        items = [v for b in layout.items("annotations", batch) for v in b]
        images = [v for b in layout.items("images", batch) for v in b]
        return {**skeleton, "annotations": items, "images": images}


@SETTINGS
@given(documents(), st.sampled_from(STYLES), st.integers(1, 40), st.integers(1, 5))
def test_the_map_reads_what_json_reads(doc, style, block, batch):
    text = json.dumps(doc, **style)
    got = mapped(text, block, batch)
    assert got == json.loads(text)
    assert list(got) == list(json.loads(text))


@SETTINGS
@given(documents(), st.integers(0, 10**6), st.sampled_from(list(b'"\\[]{},:x 1')), st.integers(1, 40))
def test_a_broken_file_is_never_mapped_to_something_json_would_not_read(doc, where, byte, block):
    """One byte changed anywhere: the map gives up (None or Unmapped), or json reads the same."""
    raw = bytearray(json.dumps(doc).encode())
    raw[where % len(raw)] = byte
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    try:
        got = mapped(text, block, 3)
    except Unmapped:
        return
    if got is None:
        return
    expected = json.loads(text)
    for key in ("annotations", "images"):  # a repeated key: the map gives up (checked below), json keeps the last
        assert key in expected
    assert got == expected


def test_what_it_does_not_map(tmp_path):
    path = tmp_path / "f.json"
    for text in ['[1, 2]', '{"annotations": [1], "annotations": [2]}', '{"annotations": {"a": 1}}',
                 '{"images": []}', '{"annotations": [1]} {"x": 1}', '{"annotations": [1, 2]']:
        path.write_text(text)
        layout = scan(path, ["annotations"])
        if layout is not None:  # what is mapped still has to parse
            with pytest.raises(Unmapped):
                layout.skeleton()
                list(layout.items("annotations", 10))
    for big in ["99999999999999999999999", "-9223372036854775809"]:  # orjson reads these as floats
        for block in (4, 1 << 18):  # in one block, or across blocks
            path.write_text(json.dumps({"annotations": [1, big]})[:-2] + ", " + big + "]}")
            assert scan(path, ["annotations"], block=block) is None
            path.write_text(json.dumps({"annotations": [1, big]}))  # in a string it is text: mapped
            assert list(scan(path, ["annotations"], block=block).items("annotations", 10)) == [[1, big]]
    long_fraction = "0." + "1234567890" * 4  # 40 digits after a point: a float, not a long integer
    text = '{"annotations": [' + long_fraction + ', 2]}'
    path.write_text(text)
    for block in (4, 20, 25, 40, 1 << 18):  # the digits within a block, or across two or three
        assert list(scan(path, ["annotations"], block=block).items("annotations", 10)) == [json.loads(text)[
            "annotations"]]


NUMBERS = st.integers(-10**25, 10**25) | st.floats(allow_nan=False, allow_infinity=False) | st.integers().map(str)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(NUMBERS, max_size=6), st.integers(1, 30))
def test_long_integers_are_left_to_ijson_and_only_they(values, block):
    """orjson reads an integer beyond 64 bits as a float: a file with one (as a number, not inside a
    string) is not mapped, whatever blocks it straddles; long fractions and digits in strings are."""
    text = json.dumps({"annotations": values, "images": []})
    got = mapped(text, block, 2)
    longest = [len(str(abs(v))) for v in values if type(v) is int]
    if max(longest, default=0) >= 19:
        assert got is None
    else:
        assert got == json.loads(text)
