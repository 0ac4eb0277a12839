"""Privacy checks on a project's registers (pure pandas): retention, consent, access.

Inputs are the frames :class:`labkit.Project` returns (``subjects()``, ``audit_log()``);
:meth:`labkit.Project.privacy_report` puts them together.

References
----------
Seed 003 (a face-recognition data agreement): purpose limitation, consent that can be
withdrawn, deletion when the purpose is met or on demand, access control and records.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from labkit._util.clock import utc_now

#: Audit actions that read personal data (images) or hand it out (exports). ``read_image``
#: is one image read by a person's session; ``read_images`` one bulk read by a program
#: (pool training and scoring, the audit), its images listed as id ranges in ``details``.
ACCESS_ACTIONS = ("read_image", "read_images", "export")


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
    >>> past_retention(s, 30, now=pd.Timestamp("2026-02-15", tz="UTC"))[["images", "days_over"]]
         images  days_over
    p1        3         15
    """
    cols = ["images", "consent", "collected", "expired_on", "days_over"]
    if days is None or subjects.empty:
        return pd.DataFrame(columns=cols)
    now = pd.Timestamp(now or utc_now())
    collected = _utc(subjects["first_added"]).fillna(_utc(subjects["created_at"]))
    expired = collected + timedelta(days=int(days))
    out = pd.DataFrame({"images": subjects["images"], "consent": subjects["consent"], "collected": collected,
                        "expired_on": expired, "days_over": (now - expired).dt.days}, index=subjects.index)
    return out[expired < now].sort_values("days_over", ascending=False)[cols]


def access_summary(audit: pd.DataFrame, roles: pd.Series | None = None) -> pd.DataFrame:
    """Who accessed what: per person and action, how many times, how many images, when, why.

    Parameters
    ----------
    audit : DataFrame
        The audit log (``actor``, ``action``, ``target_id``, ``at``, ``details``). A bulk
        read (``read_images``) names its images in ``details["images"]`` as inclusive
        ``[first, last]`` id ranges and its reason in ``details["purpose"]``.
    roles : Series, optional
        Role per actor name, added as a column.

    Returns
    -------
    DataFrame
        Indexed by (``actor``, ``action``): ``times``, ``images`` (distinct images),
        ``first``, ``last``, ``purposes`` (the distinct purposes of bulk reads, ``"; "``
        joined; empty for others) (and ``role``).

    Examples
    --------
    >>> log = pd.DataFrame({"actor": ["ana", "ana", "bot"], "action": ["read_image", "read_image", "read_images"],
    ...                     "target_id": [3, 3, None], "at": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]),
    ...                     "details": [{}, {}, {"images": [[1, 4], [9, 9]], "purpose": "pool training"}]})
    >>> access_summary(log)[["times", "images", "purposes"]]
                     times  images       purposes
    actor action
    ana   read_image      2       1
    bot   read_images     1       5  pool training
    """
    cols = ["times", "images", "first", "last", "purposes"]
    log = audit[audit["action"].isin(ACCESS_ACTIONS)]
    if log.empty:
        return pd.DataFrame(columns=cols)
    details = log["details"] if "details" in log.columns else pd.Series([None] * len(log), index=log.index)
    rows = []
    for (actor, action), group in log.groupby(["actor", "action"], sort=True):
        ids = _image_ids(group["target_id"], details.loc[group.index])
        purposes = sorted({d["purpose"] for d in details.loc[group.index]
                           if isinstance(d, dict) and isinstance(d.get("purpose"), str)})
        rows.append({"actor": actor, "action": action, "times": len(group), "images": len(ids),
                     "first": group["at"].min(), "last": group["at"].max(), "purposes": "; ".join(purposes)})
    out = pd.DataFrame(rows).set_index(["actor", "action"])[cols]
    if roles is not None:
        out.insert(0, "role", [roles.get(a, "(not a member)") for a in out.index.get_level_values(0)])
    return out


def _image_ids(target_ids: pd.Series, details: pd.Series) -> np.ndarray:
    """Distinct image ids of a group of access entries: single targets plus bulk reads' id ranges."""
    parts = [pd.to_numeric(target_ids, errors="coerce").dropna().to_numpy(np.int64)]
    for d in details:
        ranges = d.get("images") if isinstance(d, dict) else None
        if isinstance(ranges, list) and ranges:
            r = np.asarray(ranges, np.int64).reshape(-1, 2)
            lengths = r[:, 1] - r[:, 0] + 1
            starts = np.repeat(r[:, 0] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
            parts.append(starts + np.arange(lengths.sum()))
    return np.unique(np.concatenate(parts))


def _utc(values: pd.Series) -> pd.Series:
    s = pd.to_datetime(values)
    return s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
