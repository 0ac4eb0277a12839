"""Salted pseudonyms: the same id and salt give the same pseudonym; without the salt, no way back."""
from __future__ import annotations

import hashlib
import hmac
import secrets


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
