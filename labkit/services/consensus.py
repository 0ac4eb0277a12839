"""Consensus in a project: the thin store-aware layer over :mod:`labkit.quality.aggregate`.

:func:`write_consensus` reads annotations from the store, aggregates them with a pure
function and writes the result back as ``source="consensus"`` annotations of a
``consensus`` annotator, with provenance (method, input annotation ids, parameters,
labkit version). Originals are never changed. Rerunning replaces the earlier consensus
of that kind by soft-deleting it (kept in the history) in the same transaction that
writes the new one.

:func:`annotator_table` puts per-annotator numbers together from the store (with the gold
items of :mod:`labkit.services.gold`). :func:`ensure_consensus_annotator` is the one
place that creates the annotator consensus and adjudication write as.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from labkit._util.checks import check_choice
from labkit._version import __version__
from labkit.services.gold import gold_answers
from labkit.services.project import Project

__all__ = ["CONSENSUS", "annotator_table", "ensure_consensus_annotator", "write_consensus"]

#: The annotator consensus and adjudication results are written as, by default.
CONSENSUS = "consensus"

CONSENSUS_KINDS = ("label", "mask", "box")
LABEL_METHODS = ("dawid_skene", "majority_vote")
MASK_METHODS = ("staple", "majority")
BOX_METHODS = ("fusion",)


def _inputs(project: Project, kind: str, annotator: str, images: Sequence[int] | None) -> pd.DataFrame:
    df = project.annotations(kind=kind)
    df = df[(df["source"] != "consensus") & (df["worker"] != annotator)]
    if kind == "label":  # a reference is compared against, not a vote (labkit.quality.delivered)
        from labkit.quality.delivered import find_references

        df = df[~df["worker"].isin(find_references(df))]
    if images is not None:
        df = df[df["task"].isin([int(i) for i in images])]
    return df


def ensure_consensus_annotator(project: Project, name: str = CONSENSUS) -> None:
    """Register ``name`` (role ``annotator``) to hold derived results, unless it exists.

    A simulated annotator cannot hold them: its work is marked as not a person's, and a
    consensus or an adjudicated decision is not simulated.
    """
    annotators = project.annotators()
    if name not in annotators.index:
        project.add_annotator(name, role="annotator")
    elif bool(annotators.loc[name, "simulated"]):
        raise ValueError(f"annotator {name!r} is simulated, so it cannot hold consensus annotations; "
                         "pass another annotator= name")


def _clean(value: Any) -> Any:
    """Plain JSON types for provenance (numpy scalars and tuples out)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_consensus(project: Project, *, kind: str = "label", method: str | None = None, by: str | None = None,
                    images: Sequence[int] | None = None, annotator: str = CONSENSUS,
                    probs: Any = None, sample_ids: Sequence[Any] | None = None, model_weight: float = 1.0,
                    iou_threshold: float = 0.5, quorum: float = 0.5, n_iter: int = 100,
                    tol: float | None = None) -> pd.DataFrame:
    """Aggregate the project's annotations of one kind and store the consensus.

    Inputs are the live (not deleted) annotations of ``kind`` whose source is not
    ``"consensus"``; for labels, without the reference annotators that
    :func:`labkit.quality.delivered.find_references` finds (they are compared against, not
    votes, as in every delivered label). The result is written as annotations of ``annotator`` (created with
    role ``"annotator"`` if missing) with ``source="consensus"``; each records in its
    provenance the ``method``, the ids of the annotations it came from (``inputs``), the
    ``parameters`` and the ``labkit_version``. Earlier consensus of this kind by
    ``annotator`` on the same images is soft-deleted in the same transaction (history
    kept); no other annotation is touched.

    Parameters
    ----------
    project : labkit.Project
    kind : {"label", "mask", "box"}
    method : str, optional
        Labels: ``"dawid_skene"`` (default) or ``"majority_vote"``; masks: ``"staple"``
        (default) or ``"majority"``; boxes: ``"fusion"`` (default).
    by : {"object", "class"}, optional
        Masks only: fuse matched objects (default) or each class's union per image.
    images : sequence of int, optional
        Only these images (default: all).
    annotator : str, default "consensus"
    probs : ndarray of shape (N, K) or (M, N, K), optional
        Labels only: the model pool's out-of-sample probabilities, added as one more
        annotator (:func:`~labkit.quality.aggregate.aggregate_with_model`); classes in
        ``project.classes()`` order.
    sample_ids : sequence of int, optional
        The image id of each row of ``probs`` (default ``0 .. N-1``).
    model_weight : float, default 1.0
        Weight of the pool's votes.
    iou_threshold, quorum : float
        Boxes and masks by object: matching threshold and the minimum number (int) or
        share (float) of annotators an object needs.
    n_iter, tol
        Dawid–Skene iterations and tolerance (default 1e-5), or STAPLE's (default 1e-7).

    Returns
    -------
    DataFrame
        The new consensus annotations, indexed by annotation id: ``task``, ``label``,
        ``score`` (the posterior of the label; the fused score of a box; the mean
        posterior inside a mask) and ``n_inputs``. Its ``attrs["replaced"]`` lists the
        ids of the consensus annotations it soft-deleted.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> from labkit import Project
    >>> tmp = tempfile.mkdtemp()
    >>> Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(f"{tmp}/a.png")
    >>> p = Project.create(f"{tmp}/proj", classes=["cat", "dog"])
    >>> for name in ["ana", "ben", "cy"]:
    ...     _ = p.add_annotator(name)
    >>> p.add_images([f"{tmp}/a.png"])
    [1]
    >>> _ = p.add_annotations([{"image": 1, "kind": "label", "label": lab, "annotator": who}
    ...                        for who, lab in [("ana", "cat"), ("ben", "cat"), ("cy", "dog")]])
    >>> write_consensus(p, kind="label", method="majority_vote")
                task label     score  n_inputs
    annotation
    4              1   cat  0.666667         3
    >>> p.annotations(source="consensus")[["worker", "label", "source"]]
                   worker label     source
    annotation
    4           consensus   cat  consensus
    """
    kind = check_choice(kind, CONSENSUS_KINDS, "kind")
    methods = {"label": LABEL_METHODS, "mask": MASK_METHODS, "box": BOX_METHODS}[kind]
    method = check_choice(method if method is not None else methods[0], methods, f"method for kind={kind!r}")
    if by is not None and kind != "mask":
        raise ValueError(f"by= applies to masks only (got kind={kind!r}); leave it out")
    if probs is not None and kind != "label":
        raise ValueError(f"probs= (model-assisted consensus) applies to kind='label' only; got kind={kind!r}")
    data = _inputs(project, kind, annotator, images)
    if data.empty:
        raise ValueError(f"the project has no {kind!r} annotations to aggregate"
                         + (f" on images {list(images)[:10]}" if images is not None else ""))
    if kind == "label":
        records, params = _label_records(project, data, method, probs, sample_ids, model_weight, n_iter,
                                         1e-5 if tol is None else tol)
    elif kind == "box":
        records, params = _box_records(data, iou_threshold, quorum)
    else:
        records, params = _mask_records(data, method, by or "object", iou_threshold, quorum, n_iter,
                                        1e-7 if tol is None else tol)
    for r in records:
        r.update(kind=kind, annotator=annotator, source="consensus")
        r["provenance"] = _clean({"method": method, **r["provenance"], "parameters": params,
                                  "labkit_version": __version__})
    ensure_consensus_annotator(project, annotator)
    scope = sorted(set(data["task"].tolist())) if images is None else [int(i) for i in images]
    ids, replaced = _replace(project, records, kind, annotator, scope, method)
    out = pd.DataFrame({"task": [r["image"] for r in records], "label": [r["label"] for r in records],
                        "score": [r["score"] for r in records],
                        "n_inputs": [len(r["provenance"]["inputs"]) for r in records]},
                       index=pd.Index(ids, name="annotation"))
    out.attrs["replaced"] = replaced
    return out


def _label_records(project: Project, data: pd.DataFrame, method: str, probs: Any,
                   sample_ids: Sequence[Any] | None, model_weight: float, n_iter: int,
                   tol: float) -> tuple[list[dict], dict[str, Any]]:
    from labkit.quality.aggregate import DawidSkene, MajorityVote, aggregate_with_model

    long = data[["task", "worker", "label"]]
    classes = project.classes()
    params: dict[str, Any] = {}
    agg: Any
    if probs is not None:
        agg = aggregate_with_model(long, probs, sample_ids=sample_ids, classes=classes, method=method,
                                   weight=model_weight, n_iter=n_iter, tol=tol)
        params.update(model_weight=model_weight, model="model-pool", soft=True)
    elif method == "dawid_skene":
        agg = DawidSkene(n_iter, tol, categories=classes).fit(long)
    else:
        agg = MajorityVote(categories=classes).fit(long)
    if method == "dawid_skene":
        params.update(n_iter=n_iter, tol=tol, iterations_run=agg.n_iter_)
    inputs = data.reset_index().groupby("task")["annotation"].agg(list)
    labels = agg.labels_
    post = agg.probas_.reindex(labels.index).to_numpy(dtype=float)  # row i: task i's posterior
    names = [str(c) for c in agg.probas_.columns]
    column = {c: j for j, c in enumerate(agg.probas_.columns)}
    records: list[dict] = []
    for row, task, label in zip(post, labels.index.tolist(), labels.tolist()):  # no per-task .loc: 100k+ tasks
        records.append({"image": int(task), "label": label, "geometry": None, "score": float(row[column[label]]),
                        "provenance": {"inputs": inputs.get(task, []),
                                       "posterior": {names[j]: float(row[j]) for j in np.flatnonzero(row > 1e-6)}}})
    return records, params


def _box_records(data, iou_threshold, quorum):
    from labkit.quality.aggregate import fuse_boxes

    fused = fuse_boxes(data, iou_threshold=iou_threshold, quorum=quorum)
    cols = ("task", "label", "x0", "y0", "x1", "y1", "score", "members", "workers", "support", "n_workers")
    records = [{"image": int(task), "label": label, "geometry": {"x0": x0, "y0": y0, "x1": x1, "y1": y1},
                "score": float(score), "provenance": {"inputs": list(members), "workers": list(workers),
                                                      "support": int(support), "n_workers": int(n_workers)}}
               for task, label, x0, y0, x1, y1, score, members, workers, support, n_workers
               in zip(*(fused[c].tolist() for c in cols))]  # column by column: no row objects
    return records, {"iou_threshold": iou_threshold, "quorum": quorum, "weights": "score"}


def _mask_records(data, method, by, iou_threshold, quorum, n_iter, tol):
    from labkit.quality.aggregate import fuse_masks

    fused = fuse_masks(data, method=method, by=by, iou_threshold=iou_threshold, quorum=quorum,
                       max_iter=n_iter, tol=tol)
    records = []
    for r in fused.to_dict("records"):
        prov = {"inputs": list(r["members"]), "workers": list(r["workers"]), "support": r["support"],
                "n_workers": r["n_workers"]}
        if method == "staple":
            prov.update(sensitivity=r["sensitivity"], specificity=r["specificity"])
        records.append({"image": int(r["task"]), "label": r["label"], "geometry": r["geometry"],
                        "score": r["score"], "provenance": prov})
    params = {"by": by, **({"iou_threshold": iou_threshold, "quorum": quorum} if by == "object" else {})}
    if method == "staple":
        params.update(max_iter=n_iter, tol=tol)
    return records, params


def _replace(project: Project, records: list[dict], kind: str, annotator: str, scope: list[int],
             method: str) -> tuple[list[int], list[int]]:
    """Soft-delete the old consensus on ``scope`` and insert ``records``, in one transaction."""
    old = project.annotations(annotator=annotator, kind=kind, source="consensus")
    old_ids = [int(i) for i in old.index[old["task"].isin(scope)]]
    ids = project.replace_annotations(old_ids, records, action="write_consensus", kind=kind,
                                      method=method, annotator=annotator)
    return ids, old_ids


def annotator_table(project: Project, *, kind: str = "label", idle_gap: float = 1800.0,
                    iou_threshold: float = 0.5) -> pd.DataFrame:
    """:func:`~labkit.quality.annotators.annotator_stats` from the store.

    The consensus is the stored ``source="consensus"`` annotations of ``kind`` (run
    :func:`write_consensus` first; without them the consensus columns are left out); gold
    answers come from :func:`gold_answers` (image-level labels only).
    """
    from labkit.quality.annotators import annotator_stats

    data = project.annotations(kind=kind)
    if data.empty:
        raise ValueError(f"the project has no {kind!r} annotations")
    stored = data[data["source"] == "consensus"]
    consensus: Any = None
    if not stored.empty:
        consensus = stored.set_index("task")["label"] if kind == "label" else stored
    gold = gold_answers(project) if kind == "label" else None
    if gold is not None and gold.empty:
        gold = None
    return annotator_stats(data, consensus=consensus, gold=gold, idle_gap=idle_gap, kind=kind,
                           iou_threshold=iou_threshold)
