"""Image-level class proposals from the project's model pool, with how sure the pool is.

The pool's out-of-sample probabilities (:meth:`labkit.models.ModelPool.predict`: an image
the pool trained on is scored only by the models of the fold that held it out) give
each image one proposal: the class of the largest mean probability. Its provenance says
how doubtful it is, so a reviewer can tell (and the review queue shows the least
confident first):

- ``confidence``: the mean probability of the proposed class (also the ``score``);
- ``x_perplexity``: the share of members whose own top class is another one (0: all
  agree), :func:`labkit.quality.x_perplexity` with the proposal as the label;
- ``c_perplexity``: the members' mean entropy as perplexity (1: all certain),
  :func:`labkit.quality.c_perplexity`;
- ``votes``: the members' top classes; ``fold``: the cross-fitting fold that scored it
  (-1: every fold's models, for an image the pool never trained on).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from labkit.quality.difficulty import c_perplexity, x_perplexity

__all__ = ["pool_proposals"]


def pool_proposals(predictions: Any, image_ids: Sequence[int], classes: Sequence[str], *, pool_name: str,
                   pool_id: str) -> dict[int, list[dict[str, Any]]]:
    """One label proposal per image of ``image_ids`` that ``predictions`` scored.

    Parameters
    ----------
    predictions : PoolPredictions
        ``probs`` of shape (M, N, K) for ``predictions.images``.
    image_ids : sequence of int
        The images to propose for.
    classes : sequence of str
        The project's classes; every class of the pool must be one.
    pool_name, pool_id : the pool's name in the project and its id (provenance).
    """
    missing = sorted(set(predictions.classes) - set(classes))
    if missing:
        raise ValueError(f"the pool's classes {missing} are not classes of the project ({list(classes)}); "
                         "train the pool on this project's labels")
    pos = predictions.images.get_indexer(list(image_ids))
    keep = pos >= 0
    ids = np.asarray(image_ids)[keep]
    probs = np.asarray(predictions.probs, dtype=np.float64)[:, pos[keep]]
    if probs.shape[1] == 0:
        return {}
    mean = probs.mean(axis=0)
    top = mean.argmax(axis=1)
    x = x_perplexity(probs, top)
    c = c_perplexity(probs)
    votes = probs.argmax(axis=2)  # (M, n)
    names = list(predictions.classes)
    fold = np.asarray(predictions.fold)[pos[keep]]
    out = {}
    for j, image in enumerate(ids):
        label = names[int(top[j])]
        prov = {"prelabel": "pool", "model_id": pool_id, "pool": pool_name, "members": list(predictions.models),
                "confidence": round(float(mean[j, top[j]]), 6), "x_perplexity": round(float(x[j]), 6),
                "c_perplexity": round(float(c[j]), 6), "votes": [names[int(v)] for v in votes[:, j]],
                "fold": int(fold[j])}
        out[int(image)] = [{"kind": "label", "label": label, "geometry": None,
                            "score": float(mean[j, top[j]]), "provenance": prov}]
    return out
