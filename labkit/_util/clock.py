"""The current time, always UTC: what labkit stores, records and puts in file names."""
from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["utc_iso", "utc_now", "utc_stamp"]


def utc_now() -> datetime:
    """The current time as an aware UTC datetime (what the store writes)."""
    return datetime.now(timezone.utc)


def utc_iso() -> str:
    """The current UTC time as ISO 8601 to the second, e.g. ``2026-12-05T01:02:03+00:00``."""
    return utc_now().isoformat(timespec="seconds")


def utc_stamp(*, micro: bool = False) -> str:
    """The current UTC time for file names, e.g. ``20261205T010203`` (``micro``: + microseconds)."""
    return utc_now().strftime("%Y%m%dT%H%M%S%f" if micro else "%Y%m%dT%H%M%S")
