"""Progress bars that suit where they are seen: live on a terminal or in a notebook, a few lines in a log.

tqdm redraws its bar many times a second; written to a file or a CI log (not a terminal),
every redraw is a line. :func:`progress_bar` is ``tqdm.auto.tqdm`` that, when standard error
is neither a terminal nor a notebook's, updates at most every 30 s, so a long job leaves a
few lines in a log rather than thousands.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["LOG_INTERVAL_S", "interactive", "progress_bar"]

#: Seconds between updates of a bar written to a log instead of a terminal.
LOG_INTERVAL_S = 30.0


def interactive() -> bool:
    """Whether progress is seen live: standard error is a terminal, or this is a Jupyter kernel."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress_bar(iterable: Iterable | None = None, **kwargs: Any) -> Any:
    """A ``tqdm.auto.tqdm`` bar over ``iterable`` (same arguments), quiet in logs.

    Examples
    --------
    >>> sum(progress_bar(range(3), desc="counting", disable=True))
    3
    """
    from tqdm.auto import tqdm

    if not interactive():
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("maxinterval", max(LOG_INTERVAL_S, kwargs["mininterval"]))
    return tqdm(iterable, **kwargs)
