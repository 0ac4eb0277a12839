"""Salted pseudonyms, and finding known ids inside free text.

:func:`pseudonym`: the same id and salt give the same pseudonym; without the salt, no way
back. :class:`IdMatcher` finds every occurrence of a set of ids (subject ids, image
hashes, paths) in strings and nested JSON-like values, so that anonymised exports can
pseudonymise them and erasure can scrub them, without corrupting unrelated words.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["MIN_INFIX", "IdMatcher", "new_salt", "pseudonym"]

#: Ids at least this long are found anywhere in a text, also inside longer words;
#: shorter ones only as a whole token (see :class:`IdMatcher`).
MIN_INFIX = 6
_GLUE = r"[A-Za-z0-9]"  # what continues a token; "_", punctuation, spaces and other scripts end it


def new_salt() -> str:
    """A fresh random salt (256 bits, hex)."""
    return secrets.token_hex(32)


def pseudonym(value: str, salt: str | bytes, *, prefix: str = "s_", digits: int = 16) -> str:
    """HMAC-SHA256 of ``value`` keyed by ``salt``, as ``prefix`` + ``digits`` hex characters.

    A keyed hash, not a plain one: subject ids are short and guessable (``"000"`` to
    ``"999"`` in AI-Hub's ``metaid``), so an unsalted hash would be reversed by trying
    them all. 16 hex digits (64 bits) keep collisions improbable for any dataset size
    (about 1 in 10^7 for a million ids).

    Examples
    --------
    >>> salt = "a-salt-of-16-chars-or-more"
    >>> pseudonym("017", salt) == pseudonym("017", salt)
    True
    >>> pseudonym("017", salt) == pseudonym("017", salt + "!")
    False
    >>> pseudonym("017", salt)
    's_efadf85f4db91047'
    """
    if not isinstance(value, str):
        raise TypeError(f"pseudonym() takes a str id, got {type(value).__name__}")
    key = salt.encode() if isinstance(salt, str) else bytes(salt)
    if len(key) < 16:  # a short salt can be guessed along with the ids
        raise ValueError(f"the salt has {len(key)} bytes; use at least 16 (labkit.privacy.new_salt() gives 64)")
    return prefix + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:digits]


class IdMatcher:
    """Find known ids inside text, ignoring case, and replace them.

    An id of :data:`MIN_INFIX` (6) characters or more is found anywhere, also inside a
    longer word (``SUBJ-7781`` in ``SUBJ-7781b``). A shorter id is found only as a whole
    *token*: not preceded or followed by an ASCII letter or digit. Everything else ends
    a token: ``_``, ``/``, ``.``, punctuation, spaces, and letters of other scripts (a
    Korean particle: ``017번``). So ``017`` is found in ``.../017/instances_017.json`` and
    in ``subject 017``, but not in ``2017``, ``0170`` or ``017b``. The price: a short id
    also matches the same token used for something else (``017`` in ``frame 017``),
    which is replaced too (privacy is favoured over the text).

    Parameters
    ----------
    ids : iterable of str
        The ids; empty strings and non-strings are ignored.

    Examples
    --------
    >>> m = IdMatcher(["017", "SUBJ-7781"])
    >>> m.replace("data/017/instances_017.json, 2017, 0170, 017b", "<erased>")
    'data/<erased>/instances_<erased>.json, 2017, 0170, 017b'
    >>> m.replace({"note": ["subject subj-7781 left eye"]}, lambda i: f"[{i}]")
    {'note': ['subject [SUBJ-7781] left eye']}
    >>> m.found("in 2017"), m.found("id 017.")
    (False, True)
    """

    def __init__(self, ids: Iterable[str]):
        uniq = sorted({i for i in ids if isinstance(i, str) and i}, key=lambda s: (-len(s), s))
        self._canonical = {i.casefold(): i for i in reversed(uniq)}
        self._exact = set(uniq)
        alts = [re.escape(i) if len(i) >= MIN_INFIX else rf"(?<!{_GLUE}){re.escape(i)}(?!{_GLUE})"
                for i in uniq]
        self._pattern = re.compile("|".join(alts), re.IGNORECASE) if alts else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def found(self, value: Any) -> bool:
        """Whether any id occurs in ``value`` (a string, or nested dicts/lists of them)."""
        if self._pattern is None:
            return False
        if isinstance(value, str):
            return self._pattern.search(value) is not None
        if isinstance(value, dict):
            return any(self.found(k) or self.found(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return any(self.found(v) for v in value)
        return False

    def replace(self, value: Any, replacement: str | Callable[[str], str]) -> Any:
        """``value`` with every occurrence of an id replaced, in strings and nested dict keys and values.

        ``replacement`` is a string, or a function of the id as given (not as it was
        written: ``subj-7781`` in a text gives ``"SUBJ-7781"``). Other values (numbers,
        ``None``) are returned as they are.
        """
        if self._pattern is None:
            return value
        repl = replacement if callable(replacement) else (lambda _id: replacement)

        def sub(m: re.Match[str]) -> str:
            text = m.group(0)
            return repl(text if text in self._exact else self._canonical.get(text.casefold(), text))

        def walk(v: Any) -> Any:
            if isinstance(v, str):
                return self._pattern.sub(sub, v)  # type: ignore[union-attr]
            if isinstance(v, dict):
                return {walk(k): walk(x) for k, x in v.items()}
            if isinstance(v, list):
                return [walk(x) for x in v]
            if isinstance(v, tuple):
                return tuple(walk(x) for x in v)
            return v
        return walk(value)
