"""Gold items: images with a known image-level answer, mixed into annotators' queues.

Annotators are scored against the answers, so the answers are kept where annotators can
neither read nor change them: the store's ``gold`` table (:class:`labkit.store.gold.GoldRepository`),
written by admins (:func:`add_gold`, audited with the previous answer) and read by admins
and viewers (:func:`gold_answers`), on PostgreSQL by the grants as well. :func:`gold_queue`
spreads them through a queue with :func:`labkit.quality.annotators.gold_mix`. (Before
schema 3 they were the image attribute ``"gold"``; ``labkit migrate`` moves them.)
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from labkit.services.project import Project

__all__ = ["GOLD_KEY", "add_gold", "gold_answers", "gold_queue"]

GOLD_KEY = "gold"  # the image attribute that held answers before schema 3 (now reserved)


def add_gold(project: Project, answers: Mapping[int, str | None] | pd.Series, *, by: str | None = None) -> None:
    """Mark images as gold items with their known image-level label. Admins only.

    All answers are stored in one transaction, audited (``set_gold``) with the previous
    ones; ``None`` as an answer removes it. Annotators never see them.

    Parameters
    ----------
    project : labkit.Project
    answers : mapping or Series, image id -> class name
    by : str, optional
        On whose behalf (a note in the audit log); you are the actor.
    """
    answers = dict(answers.items()) if isinstance(answers, pd.Series) else dict(answers)
    project.store.gold.set({int(k): v for k, v in answers.items()}, by=by)


def gold_answers(project: Project) -> pd.Series:
    """Known answers of the gold items: a Series image id -> class name, named ``gold``.

    Admins and viewers only: annotators are scored against them.
    """
    return project.store.gold.table()


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
