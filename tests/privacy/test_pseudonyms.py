"""Finding known ids inside free text (IdMatcher): whole tokens for short ids, anywhere for long ones."""
from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.privacy.pseudonyms import MIN_INFIX, IdMatcher, pseudonym

SALT = "a-salt-of-16-chars-or-more"


@pytest.mark.parametrize("text, expected", [
    ("subject 017 left eye", "subject <e> left eye"),
    ("/data/017/instances_017.json", "/data/<e>/instances_<e>.json"),  # path segments and _-parts
    ("017", "<e>"),
    ("ids: 017,017;(017)", "ids: <e>,<e>;(<e>)"),
    ("2017 0170 017b a017 x_2017_y", "2017 0170 017b a017 x_2017_y"),  # never inside a word or number
    ("피험자 017번, 피험자017", "피험자 <e>번, 피험자<e>"),  # other scripts end a token (Korean particles)
    ("017é", "<e>é"),
])
def test_short_ids_are_whole_tokens(text, expected):
    assert IdMatcher(["017"]).replace(text, "<e>") == expected


def test_long_ids_anywhere_ignoring_case_and_longest_first():
    m = IdMatcher(["SUBJ-7781", "SUBJ-77", "p1"])
    assert len("SUBJ-7781") >= MIN_INFIX
    assert m.replace("subject SUBJ-7781 left eye", "<e>") == "subject <e> left eye"
    assert m.replace("subj-7781b and xSUBJ-7781", "<e>") == "<e>b and x<e>"
    assert m.replace("SUBJ-77 and SUBJ-7781", lambda i: f"[{i}]") == "[SUBJ-77] and [SUBJ-7781]"
    assert m.replace("P1 p1 p10 ap1", lambda i: f"[{i}]") == "[p1] [p1] p10 ap1"  # the id as given


def test_nested_values_keys_and_other_types():
    m = IdMatcher(["017", "SUBJ-7781"])
    value = {"017": {"notes": ["subject subj-7781", ("017", 17)], "n": 17, "none": None, "ok": True}}
    assert m.replace(value, lambda i: pseudonym(i, SALT)) == {
        pseudonym("017", SALT): {"notes": [f"subject {pseudonym('SUBJ-7781', SALT)}",
                                           (pseudonym("017", SALT), 17)], "n": 17, "none": None, "ok": True}}
    assert m.found(value) and not m.found({"n": 17, "text": "2017"})
    assert not IdMatcher([]) and IdMatcher(["", None, "x"])  # type: ignore[list-item]
    assert IdMatcher([]).replace("anything 017", "<e>") == "anything 017"


_DELIMS = st.sampled_from([" ", "/", "_", ".", "-", ",", ":", "\n"])
_WORDS = st.text(alphabet="0123456789abcXYZ", min_size=1, max_size=8)


@given(ident=st.text(alphabet="0123456789", min_size=1, max_size=MIN_INFIX - 1),
       words=st.lists(_WORDS, max_size=8), delims=st.lists(_DELIMS, min_size=9, max_size=9))
def test_short_id_changes_exactly_its_tokens(ident, words, delims):
    text = "".join(w + d for w, d in zip(words, delims))
    out = IdMatcher([ident]).replace(text, "<e>")
    assert out == "".join(("<e>" if w == ident else w) + d for w, d in zip(words, delims))
    assert not IdMatcher([ident]).found(out)


@given(ident=st.text(alphabet="0123456789-", min_size=MIN_INFIX, max_size=12).filter(lambda s: s.strip("-")),
       text=st.text(alphabet="0123456789-ab _/", max_size=60))
def test_long_id_gone_after_replace(ident, text):
    m = IdMatcher([ident])
    out = m.replace(text + ident + text, "<e>")
    assert not m.found(out) and ident not in out
    assert out.count("<e>") >= 1 and re.sub("<e>", "", out).count(ident) == 0
