"""Memory-related helpers for bulk work."""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["no_gc"]


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a bulk job builds millions of small objects.

    Each generation-0 collection walks every container allocated since the last, so
    reading a million records triggers thousands of collections that find nothing (no
    cycles are made): 20-40 % of an import's time. Reference counting still frees memory.

    On the way out the objects still alive (a read's millions of geometry lists and dicts)
    are moved to the oldest generation as they are (``gc.freeze`` then ``gc.unfreeze``)
    rather than walked by the first young collection after it: a second per 5 million
    objects, spent to find nothing. They are walked at the next full collection, as any
    long-lived object is. Skipped when the program has frozen objects of its own (the
permanent generation is process-wide: if another thread freezes objects in the instant
between this check and the unfreeze, they are unfrozen too; slower full collections then,
nothing lost).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
