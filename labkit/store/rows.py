"""What a stored annotation row must be, and how a read delivers rows.

:func:`valid_rows` screens a read's rows (kind, source, provenance, geometry: rows stored
before the database checked them must not stop a read), :func:`warn_invalid` names the
ones it left out, :func:`shaped` gives the frame ``annotations()`` returns, and
:func:`image_runs` cuts a batched read at image boundaries. Used by
:class:`~labkit.store.annotations.AnnotationRepository`.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from labkit.geometry import KINDS
from labkit.geometry.bulk import normalize_many
from labkit.store import schema as S

__all__ = ["EXACT_IN_DATABASE", "EXPAND", "check_source", "checked_above", "delivered", "image_runs", "is_source",
           "shaped", "valid_rows", "warn_invalid"]

EXPAND = {  # geometry columns added when annotations() is asked for a single kind
    "box": ("x0", "y0", "x1", "y1"),
    "ellipse": ("cx", "cy", "rx", "ry", "angle"),
}


def delivered(dialect: str) -> sa.ColumnElement[bool]:
    """SQL: the annotation is a delivered label, ordinary (``state`` NULL) or an accepted proposal.

    On SQLite written as ``coalesce(state, 'accepted') = 'accepted'``: SQLite answers
    ``state IS NULL OR state = 'accepted'`` from the ``state`` index (nearly every row is
    NULL) and then sorts the whole read by id in a temporary B-tree, 1-2 s at a million
    rows; the coalesce reads the table in id order. PostgreSQL keeps the OR, which its
    statistics (the fraction of NULLs) estimate well; it would guess a function's result.
    """
    state = S.annotations.c.state
    if dialect == "sqlite":
        return sa.func.coalesce(state, "accepted") == "accepted"
    return sa.or_(state.is_(None), state == "accepted")


def is_source(source: Any) -> bool:
    """Whether ``source`` is a provenance source: one of ``schema.SOURCES`` or ``"import:<tool>"``."""
    return source in S.SOURCES or (isinstance(source, str) and source.startswith("import:") and len(source) > 7)


def check_source(source: str) -> str:
    """``source`` if it is a provenance source (:func:`is_source`), else a ValueError saying which are."""
    if is_source(source):
        return source
    raise ValueError(f"unknown source {source!r}; expected one of {S.SOURCES} or 'import:<format>'")


#: Kinds whose geometry the database checks exactly as the API does (``tests/store/test_project.py``
#: holds the triggers to ``normalize_geometry``): a stored row of these kinds is valid. Masks
#: (the database does not decode RLE) and ellipses (SQLite bounds them without trigonometry) are not.
EXACT_IN_DATABASE = ("box", "polygon", "point", "label")


def checked_above(conn: sa.Connection) -> int | None:
    """The highest annotation id stored before the database checked geometry (None: unknown, check all)."""
    value = conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "checked_above")).scalar()
    return int(value) if isinstance(value, int) else None


def valid_rows(df: pd.DataFrame, above: int | None = None) -> tuple[pd.DataFrame, dict[int, str]]:
    """The rows of a read whose kind, source, provenance and geometry are valid, geometry canonical,
    and ``{annotation id: why}`` of the rest.

    The rest are left out (:func:`warn_invalid` names them): rows written before the
    database checked them (schema 2) must not stop every read and export. Checked column
    by column (:func:`~labkit.geometry.bulk.normalize_many`); the messages are the row checks'.
    Rows with an id above ``above`` (see :func:`checked_above`) of a kind the database
    checks exactly (:data:`EXACT_IN_DATABASE`) passed those checks when stored: their
    geometry is not checked again.
    """
    width, height = df.pop("_width"), df.pop("_height")
    bad: dict[int, str] = {}
    kinds = df["kind"]
    for i in np.flatnonzero(~kinds.isin(KINDS).to_numpy()).tolist():
        bad[i] = f"unknown kind {kinds.iat[i]!r}"
    sources = df["source"]
    known = sources.isin(S.SOURCES) | (sources.str.startswith("import:") & (sources.str.len() > 7))
    for i in np.flatnonzero(~known.to_numpy()).tolist():
        try:
            check_source(sources.iat[i])
        except ValueError as exc:
            bad.setdefault(i, str(exc))
    for i, prov in enumerate(df["provenance"]):
        if type(prov) is not dict and i not in bad:
            bad[i] = f"provenance is {type(prov).__name__}, not a JSON object"
    check = np.ones(len(df), bool)
    if above is not None:  # the database checked these when they were stored
        check = ~(kinds.isin(EXACT_IN_DATABASE).to_numpy() & (df["annotation"].to_numpy() > above))
    check[list(bad)] = False
    ok = np.flatnonzero(check).tolist()
    geometry = df["geometry"].to_numpy()
    canonical, problems = normalize_many(list(kinds.to_numpy()[ok]), list(geometry[ok]),
                                         list(width.to_numpy()[ok]), list(height.to_numpy()[ok]))
    for j, why in problems.items():
        bad[ok[j]] = why
    geometry = geometry.copy()
    geometry[ok] = pd.Series(canonical, dtype=object).to_numpy()
    df["geometry"] = pd.Series(geometry, index=df.index, dtype=object)
    if not bad:
        return df, {}
    aids = df["annotation"].to_numpy()
    bad = {int(aids[i]): why for i, why in sorted(bad.items())}
    return df[~df["annotation"].isin(list(bad))].copy(), bad


def warn_invalid(bad: dict[int, str], stacklevel: int) -> None:
    """One ``UserWarning`` naming the rows :func:`valid_rows` left out, and how to repair them."""
    if not bad:
        return
    shown = "; ".join(f"annotation {i}: {why}" for i, why in list(bad.items())[:10])
    more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
    warnings.warn(f"{len(bad)} stored annotation{'s are' if len(bad) != 1 else ' is'} not valid and "
                  f"{'were' if len(bad) != 1 else 'was'} skipped, ids {sorted(bad)[:20]}: {shown}{more}. They "
                  "predate the database's checks; an admin deletes them with project.delete_annotation(id) or "
                  "repairs them with project.update_annotation(id, geometry=...)", UserWarning, stacklevel=stacklevel)


def shaped(df: pd.DataFrame, kind: str | None) -> pd.DataFrame:
    """A read's frame as :meth:`AnnotationRepository.table` returns it: typed, indexed, geometry spread."""
    df["deleted"] = df["deleted"].astype(bool)
    df["simulated"] = df["simulated"].astype(bool)
    df = df.set_index("annotation")
    if kind in EXPAND:
        for col in EXPAND[kind]:
            df[col] = [g[col] for g in df["geometry"]] if len(df) else pd.Series(dtype=float)
    elif kind == "point":
        pts = [g["points"][0] for g in df["geometry"]]
        df["x"] = [p[0] for p in pts] if pts else pd.Series(dtype=float)
        df["y"] = [p[1] for p in pts] if pts else pd.Series(dtype=float)
    return df


def image_runs(counts: list[tuple[int, int]], rows: int) -> Iterator[tuple[int, int]]:
    """``(first, last)`` image ids of consecutive runs of ``(image id, row count)`` of at most ``rows`` rows
    (one image of more is a run by itself)."""
    start, last, n = None, None, 0
    for image, k in counts:
        if start is not None and n + k > rows:
            yield start, last  # type: ignore[misc]
            start, n = None, 0
        if start is None:
            start = image
        last, n = image, n + k
    if start is not None:
        yield start, last  # type: ignore[misc]
