"""Privacy checks on a project's registers (pure pandas): retention, consent, access.

Inputs are the frames :class:`labkit.Project` returns (``subjects()``, ``audit_log()``);
:meth:`labkit.Project.privacy_report` puts them together.

References
----------
Seed 003 (a face-recognition data agreement): purpose limitation, consent that can be
withdrawn, deletion when the purpose is met or on demand, access control and records.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

#: Audit actions that read personal data (images) or hand it out (exports).
ACCESS_ACTIONS = ("read_image", "export")


def past_retention(subjects: pd.DataFrame, days: int | None, *, now: datetime | None = None) -> pd.DataFrame:
    """Subjects whose data has been kept longer than the retention period.

    The period runs from collection: the earliest ``first_added`` of the subject's
    images (or the subject record's ``created_at`` when it has none).

    Parameters
    ----------
    subjects : DataFrame
        Indexed by subject id, with ``first_added``, ``created_at``, ``images``, ``consent``.
    days : int or None
        The retention period; ``None`` means none is set and nothing is past it.
    now : datetime, optional
        UTC time to compare against (default: now).

    Returns
    -------
    DataFrame
        ``images``, ``consent``, ``collected``, ``expired_on``, ``days_over``, most overdue first.

    Examples
    --------
    >>> t0 = pd.Timestamp("2026-01-01", tz="UTC")
    >>> s = pd.DataFrame({"first_added": [t0, t0 + pd.Timedelta(days=40)], "created_at": [t0, t0],
    ...                   "images": [3, 1], "consent": ["given", "given"]}, index=["p1", "p2"])
    >>> past_retention(s, 30, now=datetime(2026, 2, 15, tzinfo=timezone.utc))[["images", "days_over"]]
         images  days_over
    p1        3         15
    """
    cols = ["images", "consent", "collected", "expired_on", "days_over"]
    if days is None or subjects.empty:
        return pd.DataFrame(columns=cols)
    now = pd.Timestamp(now or datetime.now(timezone.utc))
    collected = _utc(subjects["first_added"]).fillna(_utc(subjects["created_at"]))
    expired = collected + timedelta(days=int(days))
    out = pd.DataFrame({"images": subjects["images"], "consent": subjects["consent"], "collected": collected,
                        "expired_on": expired, "days_over": (now - expired).dt.days}, index=subjects.index)
    return out[expired < now].sort_values("days_over", ascending=False)[cols]


def access_summary(audit: pd.DataFrame, roles: pd.Series | None = None) -> pd.DataFrame:
    """Who accessed what: per person and action, how many times, how many images, when.

    Parameters
    ----------
    audit : DataFrame
        The audit log (``actor``, ``action``, ``target_id``, ``at``).
    roles : Series, optional
        Role per actor name, added as a column.

    Returns
    -------
    DataFrame
        Indexed by (``actor``, ``action``): ``times``, ``images``, ``first``, ``last``
        (and ``role``).
    """
    log = audit[audit["action"].isin(ACCESS_ACTIONS)]
    if log.empty:
        return pd.DataFrame(columns=["times", "images", "first", "last"])
    out = log.groupby(["actor", "action"]).agg(
        times=("action", "size"), images=("target_id", "nunique"), first=("at", "min"), last=("at", "max"))
    if roles is not None:
        out.insert(0, "role", [roles.get(a, "(not a member)") for a in out.index.get_level_values(0)])
    return out


def _utc(values: pd.Series) -> pd.Series:
    s = pd.to_datetime(values)
    return s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
