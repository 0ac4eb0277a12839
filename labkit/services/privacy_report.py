"""The privacy report: retention, consent, access, denials, erasures and exports of one project."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from labkit._util.clock import utc_iso
from labkit.models.pool.forget import pools_trained_on_forgotten
from labkit.quality.privacy import access_summary, past_retention
from labkit.store.protocol import StoredProject

__all__ = ["PrivacyReport", "build"]


@dataclass
class PrivacyReport:
    """What a data-protection officer asks of a project, as tables.

    Attributes
    ----------
    past_retention : DataFrame
        Subjects kept longer than the retention period (erase or anonymise them).
    withdrawn : DataFrame
        Subjects who withdrew consent (kept, not processed): when, how many images.
    unknown_consent : DataFrame
        Subjects with no recorded consent.
    access : DataFrame
        Who read images or exported data: per person and action, times, images, first, last.
    denied : DataFrame
        Attempts the roles refused.
    erasures : DataFrame
        Tombstones of erased subjects (who, when, how many records; never whom).
    exports : DataFrame
        Every export: who, when, format, anonymisation, recipient.
    stale_pools : list of dict
        Trained model pools whose weights saw images that were since erased.
    """
    generated_at: str
    retention_days: int | None
    subjects: int
    past_retention: pd.DataFrame
    withdrawn: pd.DataFrame
    unknown_consent: pd.DataFrame
    access: pd.DataFrame
    denied: pd.DataFrame
    erasures: pd.DataFrame
    exports: pd.DataFrame
    stale_pools: list[dict[str, Any]] = field(default_factory=list)

    SECTIONS = (("past_retention", "Subjects past the retention period"),
                ("withdrawn", "Withdrawn consents"),
                ("unknown_consent", "Subjects without recorded consent"),
                ("access", "Who accessed what"),
                ("exports", "Exports"),
                ("denied", "Denied attempts"),
                ("erasures", "Erasures (tombstones)"))

    def to_text(self) -> str:
        period = f"{self.retention_days} days" if self.retention_days else "not set"
        lines = [f"privacy report, {self.generated_at}", f"subjects: {self.subjects}; retention period: {period}"]
        for attr, title in self.SECTIONS:
            df = getattr(self, attr)
            lines += ["", f"## {title}: {len(df)}"]
            if len(df):
                lines.append(df.to_string())
        lines += ["", f"## Model pools trained on since-erased images: {len(self.stale_pools)}"]
        lines += [f"  {p}" for p in self.stale_pools]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"generated_at": self.generated_at, "retention_days": self.retention_days,
                               "subjects": self.subjects, "stale_pools": self.stale_pools}
        for attr, _ in self.SECTIONS:
            df = getattr(self, attr)
            named = df.index.name is not None or df.index.nlevels > 1
            out[attr] = (df.reset_index() if named else df).astype(str).to_dict(orient="records") if len(df) else []
        return out

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        import html

        period = f"{self.retention_days} days" if self.retention_days else "not set"
        parts = [f"<h3>Privacy report</h3><p>{html.escape(self.generated_at)}; {self.subjects} subjects; "
                 f"retention period: {period}</p>"]
        for attr, title in self.SECTIONS:
            df = getattr(self, attr)
            parts.append(f"<h4>{title}: {len(df)}</h4>" + (df.to_html() if len(df) else ""))
        return "".join(parts)


def build(project: StoredProject) -> PrivacyReport:
    """Subjects past retention, withdrawn consents, who accessed what, denials, erasures,
    exports; a :class:`PrivacyReport`. Admins only.

    ``labkit privacy report --project P`` prints it.
    """
    store = project.store
    subjects = store.subjects.table()
    log = store.ctx.audit_log()
    roles = store.members.table()["role"]
    days = store.subjects.retention()

    def entries(action: str, cols: list[str]) -> pd.DataFrame:
        sel = log[log["action"] == action]
        rows = [{"at": at, "actor": actor, **{c: d.get(c) for c in cols}}
                for at, actor, d in zip(sel["at"], sel["actor"], sel["details"])]
        return pd.DataFrame(rows, columns=["at", "actor", *cols])

    denied = log[log["action"] == "denied"]
    denied = pd.DataFrame({"at": denied["at"], "actor": denied["actor"], "action": denied["target"],
                           "reason": [d.get("reason") for d in denied["details"]]})
    stale = pools_trained_on_forgotten(project.root)
    return PrivacyReport(
        generated_at=utc_iso(), retention_days=days,
        subjects=len(subjects),
        past_retention=past_retention(subjects, days),
        withdrawn=subjects.loc[subjects["consent"] == "withdrawn", ["withdrawn_at", "images", "purpose"]],
        unknown_consent=subjects.loc[subjects["consent"] == "unknown", ["images", "first_added"]],
        access=access_summary(log, roles),
        denied=denied.reset_index(drop=True),
        erasures=entries("forget_subject", ["tombstone", "images", "annotations", "audit_entries_scrubbed"]),
        exports=entries("export", ["format", "path", "images", "annotations", "anonymize", "recipient"]),
        stale_pools=stale)
