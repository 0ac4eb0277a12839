""":func:`prelabel`: proposals for a project's images in bulk, resumable, here or on a Dask cluster."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from labkit._util.checks import check_choice
from labkit.store.protocol import StoredProject

__all__ = ["PRELABELERS", "RESULT_COLUMNS", "prelabel"]

#: The pre-labelers: masks from the project's boxes, SAM's "segment everything", the model pool's classes.
PRELABELERS = ("boxes", "auto", "pool")
#: Columns of :func:`prelabel`'s result.
RESULT_COLUMNS = ("id", "image", "kind", "label", "score", "source")


def prelabel(project: StoredProject, *, source: str, segmenter: Any = None, images: Sequence[int] | None = None,
             annotator: str | None = None, client: Any = None, progress: bool = True, boxes: str | None = None,
             label: str | None = None, generator: Mapping[str, Any] | None = None, pool: Any = "default",
             batch_size: int = 16, ship_images: bool = False) -> pd.DataFrame:
    """Propose annotations for a project's images, for people to review (``Labeler(..., review=True)``).

    Proposals are stored with state ``proposed`` (:mod:`labkit.store.proposals`): they are
    not delivered labels until a reviewer accepts them. An admin's job.

    Parameters
    ----------
    project : labkit.Project
    source : {"boxes", "auto", "pool"}
        ``boxes``: a mask for every box on the images, by the segmenter, with the box's
        class. ``auto``: SAM's automatic mask generation ("segment everything"); every
        mask gets the class ``label`` (default: the project's first class), which the
        reviewer changes with the class keys where it is wrong. ``pool``: one image-level
        class per image from the project's model pool (its out-of-sample predictions),
        with the pool's confidence and X/C-perplexity in the provenance.
    segmenter : segmenter or str, optional
        ``boxes``/``auto``: an object from :func:`~labkit.models.load_segmenter` or a
        registry name. Default: SAM when ``$LABKIT_SAM_CHECKPOINT`` names a checkpoint,
        else GrabCut (``auto`` needs SAM). Embeddings go to and come from the project's
        cache (:func:`~labkit.models.project_cache_dir`).
    images : sequence of int, optional
        Image ids (default: every image).
    annotator : str, optional
        The member the proposals are stored under (default: you).
    client : distributed.Client, optional
        Run on this Dask cluster: one task per ``batch_size`` images; the workers read
        the files (checked against their hashes, or sent as bytes with ``ship_images``)
        and never open the store; the client stores each batch as it finishes. For
        ``pool``, the pool's own predictions run there (:meth:`ModelPool.predict`).
    progress : bool
        Show a progress bar.
    boxes : str, optional
        ``boxes``: only the boxes of this annotator (e.g. a reference annotator);
        default every live box.
    label : str, optional
        ``auto``: the class of the proposals (default: the project's first class).
    generator : dict, optional
        ``auto``: options of ``segment_anything.SamAutomaticMaskGenerator``
        (``points_per_side``, ``pred_iou_thresh``, ...; see ``GENERATOR_DEFAULTS``).
    pool : str or ModelPool, default "default"
        ``pool``: the pool trained in the project under this name, or a pool.
    batch_size : int, default 16
        Images per stored batch (and per Dask task): an interrupted run keeps the
        finished batches.
    ship_images : bool, default False
        With a ``client`` whose workers cannot see the project's files.

    Returns
    -------
    pandas.DataFrame
        One row per new proposal: ``id`` (annotation id), ``image``, ``kind``,
        ``label``, ``score``, ``source`` (``sam``, ``grabcut`` or ``pool``). ``attrs``:
        ``prelabel``, ``model_id``, ``skipped`` (images that already had proposals of
        this pre-labeler and model: a run resumes where the last one stopped).

    Examples
    --------
    ::

        from labkit.models import prelabel
        prelabel(project, source="boxes", segmenter="grabcut")         # masks from boxes
        prelabel(project, source="pool")                              # classes from the pool
        Labeler(project, annotator="ana", review=True)                # people review them
    """
    source = check_choice(source, PRELABELERS, "pre-labeler (source)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size is {batch_size!r}; expected a positive integer (images per batch)")
    project.store.ctx.require("add_proposals", "admin", what="store proposals")  # before any work
    table = project.images()
    ids = _image_ids(table, images)
    who = annotator if annotator is not None else project.user
    if source == "pool":
        return _run_pool(project, ids, pool, who, client=client, progress=progress, batch_size=batch_size,
                         ship=ship_images)
    seg = _segmenter(project, segmenter, source)
    work: dict[int, Any]
    if source == "boxes":
        work = _box_work(project, ids, boxes)
    else:
        from .masks import check_generator

        classes = project.classes()
        label = label if label is not None else classes[0]
        if label not in classes:
            raise ValueError(f"label {label!r} is not a class of the project; classes: {classes}")
        options = check_generator(generator)
        work = {i: {"label": label, "generator": options} for i in ids}
    stored = "sam" if getattr(seg, "sam", None) is not None else "grabcut"
    done = project.store.proposals.done_images(prelabel=source, model_id=seg.model_id)
    todo = [i for i in work if i not in done]
    sink = _Sink(project, who, stored, batch_size)
    try:
        if client is None:
            _here(project, seg, source, todo, work, table["sha256"], sink, progress)
        elif todo:
            _on_cluster(project, seg, source, todo, work, client, sink, progress=progress, batch_size=batch_size,
                        ship=ship_images)
    finally:
        sink.flush()  # what was proposed before a failure is kept: the next run resumes after it
    return sink.frame({"prelabel": source, "model_id": seg.model_id, "skipped": sorted(set(work) & done)})


def _image_ids(table: pd.DataFrame, images: Sequence[int] | None) -> list[int]:
    if images is None:
        return [int(i) for i in table.index]
    if isinstance(images, (str, bytes)) or not isinstance(images, (Sequence, np.ndarray, pd.Index)):
        raise ValueError(f"images is {images!r}; expected a list of image ids")
    ids = list(dict.fromkeys(int(i) for i in images))
    unknown = sorted(set(ids) - set(table.index))
    if unknown:
        raise ValueError(f"no image {unknown[:10]} in the project (ids are listed by project.images())")
    return ids


def _segmenter(project: StoredProject, segmenter: Any, source: str) -> Any:
    from labkit.models.embeddings import project_cache_dir
    from labkit.models.segmenters.registry import default_segmenter, load_segmenter

    if segmenter is None:
        seg = default_segmenter(cache_dir=project_cache_dir(project))
    elif isinstance(segmenter, str):
        seg = load_segmenter(segmenter, cache_dir=project_cache_dir(project))
    else:
        seg = segmenter
    if source == "auto" and getattr(seg, "sam", None) is None:
        raise ValueError(f"source='auto' is SAM's automatic mask generation, but the segmenter is {seg.name!r}; "
                         "pass segmenter='sam_vit_b' (or _l, _h) with checkpoint=... or $LABKIT_SAM_CHECKPOINT")
    return seg


def _box_work(project: StoredProject, ids: list[int], boxes: str | None) -> dict[int, list[tuple]]:
    """``{image: [(box id, class, [x0, y0, x1, y1]), ...]}`` of the live boxes on ``ids``, in id order."""
    df = project.annotations(kind="box")
    if boxes is not None:
        if boxes not in set(df["worker"]):
            raise ValueError(f"no boxes by {boxes!r} in the project; boxes are by {sorted(set(df['worker']))}")
        df = df[df["worker"] == boxes]
    df = df[df["task"].isin(ids)]
    work: dict[int, list[tuple]] = {}
    for aid, t, lab, x0, y0, x1, y1 in zip(df.index, df["task"], df["label"], df["x0"], df["y0"], df["x1"], df["y1"]):
        work.setdefault(int(t), []).append((int(aid), str(lab), [float(x0), float(y0), float(x1), float(y1)]))
    return {i: work[i] for i in ids if i in work}


def _here(project: StoredProject, seg: Any, mode: str, todo: list[int], work: Mapping[int, Any], keys: pd.Series,
          sink: _Sink, progress: bool) -> None:
    from labkit._util.progress import progress_bar

    from .masks import propose_image

    for image in progress_bar(todo, desc=f"pre-labeling ({mode})", unit="img", disable=not progress):
        sink.add(image, propose_image(seg, project.read_image(image), str(keys[image]), mode, work[image]))


def _on_cluster(project: StoredProject, seg: Any, mode: str, todo: list[int], work: Mapping[int, Any], client: Any,
                sink: _Sink, *, progress: bool, batch_size: int, ship: bool) -> None:
    from pathlib import Path

    from labkit._util.dask import check_client, run_tasks
    from labkit.store.errors import FixableError, ImageError

    from .masks import propose_batch, spec_of

    client = check_client(client)
    files = project.image_files(todo, purpose=f"pre-labeling ({mode}, {seg.model_id})")
    paths = {int(i): Path(p) for i, p in zip(files.index, files["path"])}
    keys = {int(i): str(k) for i, k in zip(files.index, files["sha256"])}
    spec = client.scatter(spec_of(seg), broadcast=True, hash=False)
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]

    def args(batch: list[int]) -> tuple:
        sources = [paths[i].read_bytes() if ship else str(paths[i]) for i in batch]
        return (spec, sources, [keys[i] for i in batch], [f"image {i}" for i in batch], mode,
                [work[i] for i in batch])

    def error(batch: list[int], exc: BaseException) -> BaseException:
        if isinstance(exc, FixableError):
            return exc
        return ImageError(f"images {batch[0]} .. {batch[-1]}: pre-labeling failed on the Dask cluster "
                          f"({type(exc).__name__}: {exc}); stored batches are kept: run again to resume")

    def done(batch: list[int], result: list[list[dict]]) -> None:  # on the client, as each batch finishes
        for image, found in zip(batch, result):
            sink.add(image, found)
        sink.flush()

    run_tasks(client, propose_batch, batches, args=args, on_result=done, error=error, weight=len,
              name=lambda b: f"images {b[0]} .. {b[-1]}", desc=f"pre-labeling ({mode}, Dask)", unit="img",
              progress=progress)


def _run_pool(project: StoredProject, ids: list[int], pool: Any, who: str, *, client: Any, progress: bool,
              batch_size: int, ship: bool) -> pd.DataFrame:
    from labkit.models.pool import ModelPool

    from .pool import pool_proposals

    if isinstance(pool, str):
        name, model = pool, ModelPool.load(project, pool)
    elif isinstance(pool, ModelPool):
        name, model = (pool.home.name if pool.home is not None else "checkpoints"), pool
    else:
        raise ValueError(f"pool is {pool!r}; expected the name of a pool trained in the project or a ModelPool")
    done = project.store.proposals.done_images(prelabel="pool", model_id=model.id)
    todo = [i for i in ids if i not in done]
    meta = {"prelabel": "pool", "model_id": model.id, "skipped": sorted(set(ids) & done)}
    proposals: dict[int, list[dict]] = {}
    if todo:
        predictions = model.predict(project, progress=progress, client=client, ship_images=ship,
                                    num_workers=0 if client is None else 2)
        proposals = pool_proposals(predictions, todo, project.classes(), pool_name=name, pool_id=model.id)
    sink = _Sink(project, who, "pool", batch_size)
    for image in todo:
        if image in proposals:
            sink.add(image, proposals[image])
    sink.flush()
    return sink.frame(meta)


class _Sink:
    """Stores ``(image, proposals)`` pairs a batch of images at a time, and remembers what it stored."""

    def __init__(self, project: StoredProject, who: str, source: str, batch_size: int):
        self.project, self.who, self.source, self.batch_size = project, who, source, batch_size
        self.rows: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        self.images = 0

    def add(self, image: int, found: list[dict[str, Any]]) -> None:
        self.pending.extend({**p, "image": int(image), "annotator": self.who, "source": self.source} for p in found)
        self.images += 1
        if self.images % self.batch_size == 0:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        ids = self.project.store.proposals.add(self.pending)
        self.rows.extend({"id": i, "image": r["image"], "kind": r["kind"], "label": r["label"], "score": r["score"],
                          "source": r["source"]} for i, r in zip(ids, self.pending))
        self.pending.clear()

    def frame(self, meta: dict[str, Any]) -> pd.DataFrame:
        out = pd.DataFrame(self.rows, columns=list(RESULT_COLUMNS))
        out = out.astype({"id": np.int64, "image": np.int64, "score": float})
        out.attrs = meta
        return out
