"""Shared test helpers for the store."""
from __future__ import annotations

import sqlalchemy as sa

from labkit.store import schema as S


def snapshot(project) -> dict[str, list]:
    """Every row of every table, to check that a failed call changed nothing."""
    with project.store.ctx.engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
                for t in S.metadata.sorted_tables}

