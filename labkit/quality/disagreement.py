"""Rank images by how much their annotators disagree (for review galleries and adjudication)."""
from __future__ import annotations

import pandas as pd


def disagreement_by_task(data: pd.DataFrame, *, kind: str = "label", iou_threshold: float = 0.5) -> pd.DataFrame:
    """Disagreement per image (task), highest first.

    Parameters
    ----------
    data : DataFrame
        Long layout (``task``, ``worker``, ``label``, plus ``geometry`` for geometric kinds)
        of one kind, e.g. ``project.annotations(kind="box")``.
    kind : str
        ``"label"``: 1 minus the share of labels equal to the task's plurality label.
        Other kinds: 1 minus the mean over annotator pairs of F1 x mean IoU of their
        matched objects (:func:`labkit.quality.geometric_agreement`), so both missed
        objects and loose outlines count.

    Returns
    -------
    DataFrame
        Indexed by task: ``disagreement`` in [0, 1], ``n_workers``; tasks with a single
        annotator are left out.

    Examples
    --------
    >>> df = pd.DataFrame({"task": [1, 1, 1, 2, 2], "worker": list("abcab"),
    ...                    "label": ["x", "x", "y", "z", "z"]})
    >>> disagreement_by_task(df).round(3)
          disagreement  n_workers
    task
    1            0.333          3
    2            0.000          2
    """
    missing = {"task", "worker", "label"} - set(data.columns)
    if missing:
        raise ValueError(f"data lacks columns {sorted(missing)}; found {list(data.columns)}")
    n = data.groupby("task")["worker"].nunique().rename("n_workers")
    if kind == "label":
        counts = data.groupby(["task", "label"]).size()
        top = counts.groupby(level="task").max()
        score = 1 - top / counts.groupby(level="task").sum()
    else:
        from labkit.quality.geometric import geometric_agreement

        pairs = geometric_agreement(data, kind=kind, iou_threshold=iou_threshold)
        quality = pairs["f1"] * pairs["mean_iou"].fillna(0)
        score = 1 - quality.groupby(pairs["task"]).mean()
    out = pd.DataFrame({"disagreement": score}).join(n, how="inner")
    out = out[out["n_workers"] >= 2]
    return out.sort_values(["disagreement", "n_workers"], ascending=[False, False], kind="stable")
