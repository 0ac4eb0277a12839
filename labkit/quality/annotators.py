"""Per-annotator numbers for fair incentives: throughput, time per object, agreement with
consensus and accuracy on gold items (plotted by :func:`labkit.plots.plot_annotator_stats`);
and mixing gold items into queues.

Gold items (CVAT calls them honeypots) are items with a known answer, mixed into each
annotator's queue at a chosen rate and not told apart from the rest, so accuracy on them
estimates the annotator's accuracy on everything. :func:`gold_mix` does the mixing as a
pure function of the queue; :func:`labkit.services.gold.add_gold` stores the answers in a
project.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .agreement import cohen_kappa

__all__ = ["annotator_stats", "gold_mix"]


def _check(data: Any) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"expected a long DataFrame (task, worker, label, ...); got {type(data).__name__}")
    missing = [c for c in ("task", "worker", "label") if c not in data.columns]
    if missing:
        raise ValueError(f"data is missing columns {missing}; found {list(map(str, data.columns))}; "
                         "expected the long layout, e.g. project.annotations()")
    if "source" in data.columns:
        data = data[data["source"] != "consensus"]  # consensus is a reference, not an annotator
    if len(data) == 0:
        raise ValueError("data has no annotations by annotators (rows with source='consensus' are left out)")
    return data


def _times(data: pd.DataFrame, idle_gap: float) -> pd.DataFrame:
    """Per worker: active hours, throughput and interval-based seconds per object."""
    out = {}
    for worker, g in data.groupby("worker", sort=True):
        t = pd.to_datetime(g["created_at"], utc=True).dropna()
        if t.empty:
            out[worker] = (np.nan, np.nan, np.nan)
            continue
        per_save = t.value_counts().sort_index()  # objects saved at each instant
        stamps = (per_save.index - per_save.index[0]).total_seconds().to_numpy()
        gaps = np.diff(stamps)
        inside = gaps <= idle_gap  # an interval that belongs to a working session
        active = float(gaps[inside].sum())
        counted = per_save.to_numpy()[1:][inside]  # objects finished at the end of each interval
        rate = counted.sum() / (active / 3600.0) if active > 0 else np.nan
        per_object = np.repeat(gaps[inside] / np.maximum(counted, 1), counted)
        out[worker] = (active / 3600.0, rate, float(np.median(per_object)) if len(per_object) else np.nan)
    return pd.DataFrame.from_dict(out, orient="index", columns=["active_hours", "throughput_per_hour",
                                                               "interval_s"])


def _time_spent(data: pd.DataFrame) -> pd.Series:
    """Median of provenance["time_spent_s"] per worker (NaN where none recorded)."""
    def spent(p: Any) -> float:
        if isinstance(p, dict):
            v = p.get("time_spent_s")
            if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v >= 0:
                return float(v)
        return np.nan
    values = data["provenance"].map(spent) if "provenance" in data.columns else pd.Series(np.nan, index=data.index)
    return values.groupby(data["worker"]).median()


def _label_agreement(data: pd.DataFrame, reference: pd.Series, prefix: str) -> pd.DataFrame:
    """Per worker: labels compared with a per-task reference label, accuracy and Cohen's kappa."""
    ref = reference.dropna()
    joined = data[["task", "worker", "label"]].join(ref.rename("_ref"), on="task", how="inner")
    rows = {}
    for worker, g in joined.groupby("worker", sort=True):
        acc = float((g["label"].to_numpy() == g["_ref"].to_numpy()).mean())
        kappa = cohen_kappa(g["label"].to_numpy(), g["_ref"].to_numpy()) if len(g) >= 2 else np.nan
        rows[worker] = (len(g), acc, kappa)
    cols = [f"n_{prefix}", f"{prefix}_accuracy"] + ([f"{prefix}_kappa"] if prefix == "consensus" else [])
    out = pd.DataFrame.from_dict(rows, orient="index",
                                 columns=[f"n_{prefix}", f"{prefix}_accuracy", f"{prefix}_kappa"])
    return out[cols]


def _geometric_agreement(data: pd.DataFrame, reference: pd.DataFrame, prefix: str, kind: str | None,
                         iou_threshold: float) -> pd.DataFrame:
    """Per worker: F1 and mean IoU of its objects against reference objects (e.g. fused boxes)."""
    from .geometric import geometric_agreement, summarize_agreement

    ref_name = "\x00reference"
    ref = reference.copy()
    ref["worker"] = ref_name
    if "kind" not in ref.columns and "kind" in data.columns:
        ref["kind"] = kind if kind is not None else data["kind"].iloc[0]
    tasks = set(ref["task"])
    mine = data[data["task"].isin(tasks)]
    cols = [c for c in ("task", "worker", "label", "kind", "geometry", "x0", "y0", "x1", "y1")
            if c in mine.columns and c in ref.columns]
    both = pd.concat([mine[cols], ref[cols]], ignore_index=True)
    seen = pd.concat([mine[["task", "worker"]], ref[["task", "worker"]]]).drop_duplicates()
    pairs = geometric_agreement(both, kind=kind, iou_threshold=iou_threshold, seen=seen)
    pairs = pairs[(pairs["worker_a"] == ref_name) | (pairs["worker_b"] == ref_name)]
    per = summarize_agreement(pairs, by="worker").drop(index=ref_name, errors="ignore")
    out = pd.DataFrame({f"n_{prefix}": per["n"], f"{prefix}_f1": per["f1"]})
    if "mean_iou" in per.columns:
        out[f"{prefix}_iou"] = per["mean_iou"]
    return out


def annotator_stats(data: pd.DataFrame, *, consensus: pd.Series | pd.DataFrame | None = None,
                    gold: pd.Series | pd.DataFrame | None = None, idle_gap: float = 1800.0,
                    kind: str | None = None, iou_threshold: float = 0.5) -> pd.DataFrame:
    """One row of numbers per annotator: volume, speed, agreement with consensus, gold accuracy.

    Parameters
    ----------
    data : DataFrame
        Long layout: ``task``, ``worker``, ``label``; optional ``created_at`` (for
        throughput), ``provenance`` (dicts; ``time_spent_s`` is the time an annotator spent
        on the object) and geometry columns. Rows with ``source == "consensus"`` are left
        out. ``project.annotations(kind=...)`` has this layout.
    consensus : Series or DataFrame, optional
        For labels, the consensus label per task (e.g. ``DawidSkene().fit_predict(...)``);
        for objects, consensus objects in the long layout (e.g. :func:`fuse_boxes`' output),
        compared by :func:`~labkit.quality.geometric.geometric_agreement`.
    gold : Series or DataFrame, optional
        Known answers for gold items, in the same form as ``consensus``.
    idle_gap : float, default 1800
        Seconds between saves beyond which the annotator is taken to have paused.
    kind : str, optional
        Geometry kind for object comparisons (default: the one in ``data``).
    iou_threshold : float, default 0.5
        For object comparisons.

    Returns
    -------
    DataFrame
        Index ``worker``. Columns:

        - ``n_objects``, ``n_tasks``: annotations and distinct tasks;
        - ``active_hours``: time between consecutive saves, summed over gaps of at most
          ``idle_gap``; ``throughput_per_hour``: objects saved at the end of those gaps per
          active hour (a session's first save has no measured start and is not counted);
        - ``median_time_s`` and ``time_source``: the median of ``provenance["time_spent_s"]``
          (``"provenance"``), or where an annotator has none recorded, of the intervals
          between saves split over the objects saved (``"created_at"``);
        - with ``consensus``: ``n_consensus``, ``consensus_accuracy`` and
          ``consensus_kappa`` (Cohen's kappa with the consensus labels) for labels, or
          ``consensus_f1`` and ``consensus_iou`` for objects;
        - with ``gold``: ``n_gold`` and ``gold_accuracy`` (or ``gold_f1``, ``gold_iou``).

    Examples
    --------
    >>> t0 = pd.Timestamp("2024-01-01 09:00", tz="UTC")
    >>> df = pd.DataFrame({"task": [1, 2, 3, 1, 2, 3], "worker": ["a"] * 3 + ["b"] * 3,
    ...                    "label": ["cat", "dog", "cat", "cat", "cat", "cat"],
    ...                    "created_at": [t0 + pd.Timedelta(seconds=s) for s in (0, 30, 60, 0, 10, 20)]})
    >>> stats = annotator_stats(df, consensus=pd.Series({1: "cat", 2: "dog", 3: "cat"}),
    ...                         gold=pd.Series({2: "dog"}))
    >>> stats[["n_objects", "throughput_per_hour", "median_time_s"]]
            n_objects  throughput_per_hour  median_time_s
    worker
    a               3                120.0           30.0
    b               3                360.0           10.0
    >>> stats[["consensus_accuracy", "gold_accuracy"]].round(3)
            consensus_accuracy  gold_accuracy
    worker
    a                    1.000            1.0
    b                    0.667            0.0
    """
    data = _check(data)
    if not idle_gap > 0:
        raise ValueError(f"idle_gap must be a positive number of seconds; got {idle_gap}")
    grouped = data.groupby("worker", sort=True)
    out = pd.DataFrame({"n_objects": grouped.size(), "n_tasks": grouped["task"].nunique()})
    if "created_at" in data.columns:
        times = _times(data, idle_gap)
    else:
        times = pd.DataFrame(np.nan, index=out.index, columns=["active_hours", "throughput_per_hour", "interval_s"])
    out = out.join(times[["active_hours", "throughput_per_hour"]])
    spent = _time_spent(data).reindex(out.index)
    out["median_time_s"] = spent.fillna(times["interval_s"].reindex(out.index))
    no_source = np.array(None, dtype=object)  # None where neither gives a time
    out["time_source"] = np.where(spent.notna(), "provenance",
                                  np.where(out["median_time_s"].notna(), "created_at", no_source))
    for name, ref in (("consensus", consensus), ("gold", gold)):
        if ref is None:
            continue
        if isinstance(ref, pd.Series):
            part = _label_agreement(data, ref, name)
        elif isinstance(ref, pd.DataFrame):
            part = _geometric_agreement(data, ref, name, kind, iou_threshold)
        else:
            raise ValueError(f"{name} must be a Series (label per task) or a DataFrame of objects; "
                             f"got {type(ref).__name__}")
        out = out.join(part)
        out[f"n_{name}"] = out[f"n_{name}"].fillna(0).astype(np.int64)
    out.index.name = "worker"
    return out


def gold_mix(queue: Sequence[Any], gold_ids: Sequence[Any], rate: float, *, seed: int | None = None,
             replace: bool = False) -> list[Any]:
    """Mix gold items into a queue so that a share ``rate`` of the result is gold.

    ``round(rate * len(queue) / (1 - rate))`` gold items are drawn at random from
    ``gold_ids`` (leaving out ones already in the queue) and spread evenly: the new
    queue is cut into as many equal stretches as there are gold items and each gets one
    at a random place, so gold shows up throughout the work instead of in a block.
    The queue's own order is kept. Deterministic for a given ``seed``.

    Parameters
    ----------
    queue : sequence
        Item ids in work order (e.g. ``project.queue(annotator)``).
    gold_ids : sequence
        Items with known answers.
    rate : float in [0, 1)
        Target share of gold items in the returned queue.
    seed : int, optional
    replace : bool, default False
        Allow drawing a gold item more than once when there are too few.

    Returns
    -------
    list
        The queue with the gold items inserted.

    Raises
    ------
    ValueError
        If more gold items are needed than available and ``replace`` is False.

    Examples
    --------
    >>> gold_mix([1, 2, 3, 4, 5, 6], ["g1", "g2", "g3"], 0.25, seed=0)
    ['g2', 1, 2, 3, 'g3', 4, 5, 6]
    """
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1) (the share of gold items in the queue); got {rate}")
    queue = list(queue)
    in_queue = set(queue)
    pool = [g for g in dict.fromkeys(gold_ids) if g not in in_queue]
    n_gold = int(round(rate * len(queue) / (1.0 - rate)))
    if n_gold == 0:
        return queue
    if not pool:
        raise ValueError("no gold items to mix in: gold_ids is empty or all of them are already in the queue")
    if n_gold > len(pool) and not replace:
        raise ValueError(f"rate={rate} on a queue of {len(queue)} needs {n_gold} gold items but only "
                         f"{len(pool)} are available; lower the rate, add gold items, or pass replace=True")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(pool), size=n_gold, replace=n_gold > len(pool))
    total = len(queue) + n_gold
    edges = (np.arange(n_gold + 1) * total) // n_gold
    slots = edges[:-1] + (rng.random(n_gold) * (edges[1:] - edges[:-1])).astype(np.int64)
    out: list[Any] = []
    rest = iter(queue)
    gold_at = dict(zip(slots.tolist(), (pool[i] for i in picks)))
    for pos in range(total):
        out.append(gold_at[pos] if pos in gold_at else next(rest))
    return out
