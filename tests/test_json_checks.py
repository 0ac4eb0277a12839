"""The fast path of the JSON rule (``checks._plainly_storable``) against the rule it shortcuts."""
from __future__ import annotations

import enum
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit._util import checks
from labkit._util.checks import json_problem, json_problems, limits


class Colour(enum.Enum):
    RED = 1


class Text(str):
    pass


#: leaves json.dumps writes, refuses, or that must be refused (NaN, lone surrogates)
LEAF = (st.none() | st.booleans() | st.integers() | st.floats() | st.text()
        | st.sampled_from(["\ud800", "a\udfffb", float("nan"), float("inf"), 10**30, -2**63, 2**64,
                           Colour.RED, uuid.UUID(int=5), Text("t"), b"bytes", {1, 2}]))
KEY = st.text() | st.sampled_from(["\ud800", 1, 2.5, float("nan"), None, True, Text("k")])
VALUE = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                     | st.dictionaries(KEY, inner, max_size=4), max_leaves=12)


def slow(value, depth):
    """The rule as written before the fast path: json.dumps, UTF-8, depth."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        return False
    return depth is None or checks.json_depth(value, depth) <= depth


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(VALUE, st.sampled_from([None, 1, 2, 3, 100]))
def test_the_fast_path_accepts_only_what_the_rule_accepts(value, depth):
    if checks._plainly_storable(value, depth):
        assert slow(value, depth), value


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False,
                                                                                            allow_infinity=False)
                    | st.text(alphabet=st.characters(blacklist_categories=["Cs"])),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                    max_leaves=12))
def test_json_as_read_from_a_file_takes_the_fast_path(value):
    value = json.loads(json.dumps(value))  # what a reader returns
    assert checks._plainly_storable([value, value], None)
    assert json_problems([value], "attributes") == {}


@pytest.mark.parametrize("value, problem", [
    ({"a": [1, float("nan")]}, "attributes['a'][1] is nan"),
    ({"a": "x\ud800"}, "attributes['a'] holds a lone surrogate"),
    ({"a": Colour.RED}, "attributes['a'] is of type Colour"),
    ({"a": [1, 2**64]}, None),  # past orjson's 64 bits: the slow path says it is fine
])
def test_the_slow_path_still_names_the_problem(value, problem):
    assert checks._plainly_storable(value, 100) is False
    got = json_problem(value, "attributes")
    assert (got is None) if problem is None else got.startswith(problem)
    assert json_problems([{"ok": 1}, value], "attributes") == ({} if problem is None else {1: got})


def test_the_depth_limit_holds_on_the_fast_path():
    deep: object = 1
    for _ in range(5):
        deep = [deep]
    with limits.override(max_json_depth=5):
        assert checks._plainly_storable(deep, 5) and json_problem(deep, "a") is None
        assert json_problem([deep], "a").startswith("a[0]") and json_problems([deep], "a") == {}
        assert json_problems([[deep]], "a") != {}
