"""Shared test helpers for the store."""
from __future__ import annotations

import sqlalchemy as sa

from labkit.store import schema as S


def snapshot(project) -> dict[str, list]:
    """Every row of every table, to check that a failed call changed nothing."""
    with project._engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
                for t in S.metadata.sorted_tables}


def write_image(path, width: int = 40, height: int = 30, seed: int = 0):
    """A small random PNG (the same as the root conftest's)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path
