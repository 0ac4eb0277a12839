"""What every labkit widget shares: UI actions whose errors reach the person, not the void."""
from __future__ import annotations

import functools
import html
import logging
from contextlib import AbstractContextManager, nullcontext


def safe_action(status, log: logging.Logger, *, lock: AbstractContextManager | None = None):
    """Decorator factory: run a UI callback; on error, log it and show it in ``status`` (an HTML widget).

    ``lock`` (a ``threading.RLock``) runs the callbacks one at a time: JupyterLab may send
    widget messages over kernel subshells (``commsOverSubshells``, ipykernel >= 7), so
    callbacks of one widget can otherwise run at once on different threads.
    """
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                with lock or nullcontext():
                    return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every failure must reach the person
                log.exception("widget action failed")
                status.value = (f"<span style='color:#b00020'>⚠ {type(exc).__name__}: "
                                f"{html.escape(str(exc))}</span>")
                return None
        return run
    return wrap
