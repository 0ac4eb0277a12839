"""Gold items: images with a known image-level answer, mixed into annotators' queues.

The answer lives in the image's attributes under ``"gold"`` (:func:`add_gold`, audited
with the previous value); :func:`gold_answers` reads them back and :func:`gold_queue`
spreads them through a queue with :func:`labkit.quality.annotators.gold_mix`.
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from labkit.services.project import Project

__all__ = ["GOLD_KEY", "add_gold", "gold_answers", "gold_queue"]

GOLD_KEY = "gold"


def add_gold(project: Project, answers: Mapping[int, str] | pd.Series, *, by: str) -> None:
    """Mark images as gold items with their known image-level label.

    The answer goes into the image's attributes under ``"gold"`` (audited, with the
    previous value); ``None`` as an answer removes it.

    Parameters
    ----------
    project : labkit.Project
    answers : mapping or Series, image id -> class name
    by : str
        Who sets the answers, for the audit log.
    """
    answers = dict(answers.items()) if isinstance(answers, pd.Series) else dict(answers)
    classes = set(project.classes())
    bad = {k: v for k, v in answers.items() if v is not None and v not in classes}
    if bad:
        raise ValueError(f"gold answers {dict(list(bad.items())[:5])} are not classes of the project "
                         f"{sorted(classes)[:20]}; nothing was stored")
    known = set(project.images().index)
    missing = [k for k in answers if int(k) not in known]
    if missing:
        raise ValueError(f"no images {missing[:10]} in the project; nothing was stored")
    for image, label in answers.items():
        project.set_image_attributes(int(image), {GOLD_KEY: label}, by=by)


def gold_answers(project: Project) -> pd.Series:
    """Known answers of the gold items: a Series image id -> class name, named ``gold``."""
    images = project.images()
    values = {i: a[GOLD_KEY] for i, a in images["attributes"].items() if isinstance(a, dict) and GOLD_KEY in a}
    return pd.Series(values, name=GOLD_KEY, dtype=object).rename_axis("task")


def gold_queue(project: Project, annotator: str, *, rate: float, seed: int | None = None) -> list[int]:
    """``annotator``'s pending queue with gold items mixed in at ``rate``.

    Gold items the annotator has not labelled yet are drawn and spread through the queue
    by :func:`~labkit.quality.annotators.gold_mix`; the ones drawn are assigned to the
    annotator (so they can be submitted). The store keeps assignments in the order they
    were made, so show the annotator the returned order.

    Returns
    -------
    list of int
        Image ids in the order to label them.
    """
    from labkit.quality.annotators import gold_mix

    queue = project.queue(annotator)
    done = set(project.annotations(annotator=annotator)["task"])
    candidates = [int(g) for g in gold_answers(project).index if int(g) not in done]
    mixed = gold_mix(queue, candidates, rate, seed=seed)
    new = [i for i in mixed if i not in set(queue)]
    if new:
        project.assign(new, [annotator])
    return [int(i) for i in mixed]
