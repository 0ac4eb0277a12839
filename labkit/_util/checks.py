"""Input checks shared by every layer; each error says what was given and what is expected."""
from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["check_choice", "check_json", "close_matches", "did_you_mean", "unknown_names"]


def close_matches(value: Any, valid: Sequence[str], *, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The names in ``valid`` that ``value`` was probably meant to be, best first.

    Names equal to ``value`` but for case win outright; otherwise the close matches
    :func:`difflib.get_close_matches` finds, ignoring case (at its default ``cutoff``: lower
    lets short names match almost anything, e.g. ``'owner'`` for ``'bne'``).

    Examples
    --------
    >>> close_matches("Cat", ["cat", "car", "dog"])
    ['cat']
    >>> close_matches("dgo", ["cat", "dog", "bird"])
    ['dog']
    >>> close_matches("cow", ["cat", "dog", "bird"])
    []
    """
    text = str(value)
    same = [v for v in valid if str(v).lower() == text.lower()]
    if same:
        return same[:n]
    by_lower: dict[str, list[str]] = {}
    for v in valid:
        by_lower.setdefault(str(v).lower(), []).append(v)
    found = difflib.get_close_matches(text.lower(), list(by_lower), n=n, cutoff=cutoff)
    return [v for m in found for v in by_lower[m]][:n]


def did_you_mean(names: Sequence[Any], valid: Sequence[str]) -> str:
    """``"did you mean ...?"`` for those of ``names`` that have :func:`close_matches`, else ``""``.

    Examples
    --------
    >>> did_you_mean(["medain"], ["mean", "median"])
    "did you mean 'median' or 'mean'?"
    >>> did_you_mean(["Cat", "cow", "dgo"], ["cat", "dog", "bird"])
    "did you mean 'cat' for 'Cat', 'dog' for 'dgo'?"
    """
    found = {name: close for name in names if (close := close_matches(name, valid))}
    if not found:
        return ""
    if len(names) == 1:
        return f"did you mean {' or '.join(repr(c) for c in found[names[0]])}?"
    return "did you mean " + ", ".join(f"{' or '.join(repr(c) for c in close)} for {name!r}"
                                       for name, close in found.items()) + "?"


def unknown_names(names: Sequence[Any], valid: Sequence[str], what: str, *, plural: str | None = None,
                  valid_as: str = "expected one of", limit: int = 30) -> str:
    """The problem "these names are not among ``valid``", with every name and the close matches.

    Parameters
    ----------
    names : sequence
        The unknown names, all of them (one message for all, not one per name).
    valid : sequence of str
        The names that would have been accepted (the first ``limit`` are shown).
    what, plural : str
        What a name is (``"class"``) and its plural (default ``what + "s"``).
    valid_as : str
        How the valid names are introduced.

    Examples
    --------
    >>> unknown_names(["Cat"], ["cat", "dog"], "class", plural="classes", valid_as="the project has")
    "unknown class 'Cat'; the project has ['cat', 'dog']; did you mean 'cat'?"
    >>> unknown_names(["Cat", "cow"], ["cat", "dog"], "class", plural="classes", valid_as="the project has")
    "unknown classes ['Cat', 'cow']; the project has ['cat', 'dog']; did you mean 'cat' for 'Cat'?"
    """
    names = list(names)
    shown = repr(names[0]) if len(names) == 1 else repr(names)
    more = f" and {len(valid) - limit} more" if len(valid) > limit else ""
    hint = did_you_mean(names, valid)
    return (f"unknown {what if len(names) == 1 else plural or what + 's'} {shown}; "
            f"{valid_as} {list(valid)[:limit]}{more}" + (f"; {hint}" if hint else ""))


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
    raise ValueError(unknown_names([value], valid, what, limit=len(valid)))


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
