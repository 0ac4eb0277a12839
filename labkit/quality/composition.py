"""Dataset composition and model-based validation (seed 004: a dataset card's tables).

- :func:`attribute_table`: images' attributes (and split) as one column each;
- :func:`attribute_shares`: the share of every attribute value, in percent;
- :func:`coverage_matrix`: images per class x attribute value, and
  :func:`coverage_gaps`: the cells below a minimum count;
- :func:`validation_table`: metric, baseline, measured value and split of
  model-based validation, with :func:`accuracy` and :func:`mean_iou` to fill it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["attribute_table", "attribute_shares", "coverage_matrix", "coverage_gaps", "accuracy",
           "mean_iou", "validation_table", "MISSING"]

#: The value shown for an image that lacks an attribute.
MISSING = "(missing)"


def _scalar(v: Any) -> Any:
    if isinstance(v, (list, tuple, dict)):
        return str(v)
    return v


def attribute_table(images: pd.DataFrame, *, columns: Sequence[str] | None = None,
                    include_split: bool = True) -> pd.DataFrame:
    """One column per image attribute (from the ``attributes`` dicts) plus ``split``.

    Nested values (lists, dicts) become text; a missing attribute is :data:`MISSING`.

    Examples
    --------
    >>> imgs = pd.DataFrame({"split": ["train", "test"],
    ...                      "attributes": [{"image": "rgb"}, {"image": "ir", "inst": "S"}]}, index=[1, 2])
    >>> attribute_table(imgs)
           split image       inst
    image
    1      train   rgb  (missing)
    2       test    ir          S
    """
    if not isinstance(images, pd.DataFrame) or "attributes" not in images.columns:
        raise ValueError("images must be a DataFrame with an 'attributes' column (project.images()); "
                         f"got {getattr(images, 'columns', type(images).__name__)!r}")
    rows = [{k: _scalar(v) for k, v in (a or {}).items()} for a in images["attributes"]]
    table = pd.DataFrame(rows, index=images.index)
    if include_split and "split" in images.columns:
        table.insert(0, "split", images["split"])
    if columns is not None:
        missing = [c for c in columns if c not in table.columns]
        for c in missing:
            table[c] = np.nan
        table = table[list(columns)]
    table.index.name = "image"
    return table.astype(object).where(table.notna(), MISSING)


def attribute_shares(table: pd.DataFrame, *, max_values: int = 30) -> pd.DataFrame:
    """Images and percentage per value of every column of ``table`` (seed 004's diversity tables).

    Parameters
    ----------
    table : DataFrame, one row per image (e.g. :func:`attribute_table`)
    max_values : int
        Columns with more distinct values (ids, free text) are summarised as one row
        ``(N distinct values)``.

    Returns
    -------
    DataFrame
        Columns ``attribute``, ``value``, ``images``, ``percent``; values by count, descending.

    Examples
    --------
    >>> attribute_shares(pd.DataFrame({"image": ["rgb", "ir", "rgb", "rgb"]}))
      attribute value  images  percent
    0     image   rgb       3     75.0
    1     image    ir       1     25.0
    """
    rows = []
    n = len(table)
    for col in table.columns:
        counts = table[col].astype(str).value_counts(sort=True)
        if len(counts) > max_values:
            rows.append({"attribute": col, "value": f"({len(counts)} distinct values)", "images": n,
                         "percent": 100.0})
            continue
        for value, k in counts.items():
            rows.append({"attribute": col, "value": value, "images": int(k), "percent": 100.0 * k / n})
    return pd.DataFrame(rows, columns=["attribute", "value", "images", "percent"])


def coverage_matrix(labels: pd.Series, table: pd.DataFrame, attribute: str, *,
                    classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Images per class (rows) and value of ``attribute`` (columns).

    Parameters
    ----------
    labels : Series of class names indexed by image id; an image with several classes
        may appear several times (one row per class).
    table : DataFrame indexed by image id with the ``attribute`` column
    classes : the rows to show, in order (default: the classes present)

    Examples
    --------
    >>> labels = pd.Series(["cat", "dog", "cat"], index=[1, 2, 3])
    >>> table = pd.DataFrame({"light": ["day", "day", "night"]}, index=[1, 2, 3])
    >>> coverage_matrix(labels, table, "light", classes=["cat", "dog", "bird"])
    light  day  night
    class
    cat      1      1
    dog      1      0
    bird     0      0
    """
    if attribute not in table.columns:
        raise ValueError(f"no attribute {attribute!r}; available: {list(table.columns)}")
    df = pd.DataFrame({"_image": labels.index, "_class": labels.to_numpy(),
                       "_value": table[attribute].reindex(labels.index).fillna(MISSING).to_numpy()}
                      ).drop_duplicates()  # an image counts once per class
    m = pd.crosstab(df["_class"], df["_value"])
    if classes is not None:
        m = m.reindex(list(classes), fill_value=0)
    m.columns.name = attribute
    m.index.name = "class"
    return m.astype(int)


def coverage_gaps(matrix: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Cells of a :func:`coverage_matrix` with fewer than ``min_count`` images.

    Examples
    --------
    >>> m = pd.DataFrame({"day": [5, 1]}, index=pd.Index(["cat", "dog"], name="class"))
    >>> coverage_gaps(m, 2)
      class value  images
    0   dog   day       1
    """
    long = matrix.stack().rename("images").reset_index()
    long.columns = ["class", "value", "images"]
    return long[long["images"] < min_count].reset_index(drop=True)


def accuracy(predicted: pd.Series, reference: pd.Series) -> tuple[float, int]:
    """``(share of equal labels, n)`` over the ids both Series have."""
    common = predicted.index.intersection(reference.index)
    if not len(common):
        raise ValueError("predicted and reference share no ids")
    eq = predicted.loc[common].astype(str).to_numpy() == reference.loc[common].astype(str).to_numpy()
    return float(eq.mean()), int(len(common))


def mean_iou(pairs: Sequence[tuple[Any, Any]]) -> tuple[float, int]:
    """``(mean IoU, n)`` of (predicted mask, reference mask) pairs (RLE dicts or bool arrays)."""
    from labkit.geometry import mask_iou

    pairs = list(pairs)
    if not pairs:
        raise ValueError("no mask pairs to compare")
    ious = [float(mask_iou([a], [b])[0, 0]) for a, b in pairs]
    return float(np.mean(ious)), len(ious)


def validation_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The model-based validation table: metric, model, split, n, baseline, measured, status.

    Each row is a mapping with ``metric``, ``model``, ``split``, ``measured`` (None when
    not evaluated), ``baseline`` (None: no baseline agreed), optional ``n``,
    ``higher_is_better`` (default True) and ``note``. ``status`` is ``meets baseline``,
    ``below baseline``, ``no baseline`` or ``not evaluated``.

    Examples
    --------
    >>> validation_table([{"metric": "accuracy", "model": "pool", "split": "5-fold", "baseline": 0.9,
    ...                    "measured": 0.93, "n": 300}])[["metric", "baseline", "measured", "status"]]
         metric  baseline  measured          status
    0  accuracy       0.9      0.93  meets baseline
    """
    out = []
    for r in rows:
        measured, baseline = r.get("measured"), r.get("baseline")
        higher = r.get("higher_is_better", True)
        if measured is None:
            status = "not evaluated"
        elif baseline is None:
            status = "no baseline"
        else:
            ok = measured >= baseline if higher else measured <= baseline
            status = "meets baseline" if ok else "below baseline"
        out.append({"metric": r["metric"], "model": r.get("model", ""), "split": r.get("split", ""),
                    "n": r.get("n"), "baseline": baseline, "measured": measured, "status": status,
                    "note": r.get("note", "")})
    return pd.DataFrame(out, columns=["metric", "model", "split", "n", "baseline", "measured", "status", "note"])
