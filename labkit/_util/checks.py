"""Input checks shared by every layer; each error says what was given and what is expected."""
from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["check_choice", "check_json"]


def check_choice(value: Any, valid: Sequence[str], what: str) -> str:
    """Return ``value`` if it is one of ``valid``, else raise naming the valid choices.

    Examples
    --------
    >>> check_choice("mean", ["mean", "median"], "statistic")
    'mean'
    >>> check_choice("medain", ["mean", "median"], "statistic")
    Traceback (most recent call last):
    ...
    ValueError: unknown statistic 'medain'; expected one of ['mean', 'median']; did you mean 'median' or 'mean'?
    """
    if isinstance(value, str) and value in valid:
        return value
    close = difflib.get_close_matches(str(value), list(valid), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown {what} {value!r}; expected one of {list(valid)}{hint}")


def check_json(value: Any, what: str) -> Any:
    """Return ``value`` if it is JSON-serialisable (finite numbers only), else raise naming ``what``.

    Examples
    --------
    >>> check_json({"a": [1, 2.5]}, "provenance")
    {'a': [1, 2.5]}
    >>> check_json({"a": float("nan")}, "provenance")
    Traceback (most recent call last):
    ...
    ValueError: provenance must be JSON-serialisable (plain dicts, lists, str, finite numbers): ...
    """
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serialisable (plain dicts, lists, str, finite numbers): {exc}") from None
    return value
