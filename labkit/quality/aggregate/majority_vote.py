"""Majority vote over categorical labels, optionally weighted per worker."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._votes import Votes, encode_votes, first_max, labels_series, probas_frame

__all__ = ["MajorityVote"]


class MajorityVote:
    """Per task, the label with the most votes (or the largest summed worker weight).

    Ties are broken deterministically: the winner is the tied label that comes first in
    category order (the sorted labels, or ``categories=``), as crowd-kit's
    ``MajorityVote`` does. ``probas_`` keeps the tie visible (equal shares).

    Parameters
    ----------
    categories : sequence, optional
        Category order, which may include labels nobody chose (they get probability 0).
        Default: sorted unique labels.
    duplicates : {"error", "first"}
        A (task, worker) pair with several rows: raise, or keep the first row.

    Attributes
    ----------
    labels_ : Series of length N
        Index ``task``, name ``label``.
    probas_ : DataFrame of shape (N, K)
        Share of the (weighted) votes per label; rows sum to 1.
    skills_ : Series of length M
        Index ``worker``: each worker's accuracy against ``labels_`` (crowd-kit's
        ``skills_``).

    Examples
    --------
    >>> df = pd.DataFrame({"task": [1, 1, 1, 2, 2], "worker": ["a", "b", "c", "a", "b"],
    ...                    "label": ["cat", "dog", "dog", "dog", "cat"]})
    >>> MajorityVote().fit_predict(df).to_dict()
    {1: 'dog', 2: 'cat'}

    Task 2 is a tie; it goes to "cat", the first label in sorted order. Weights decide:

    >>> MajorityVote().fit_predict(df, weights={"a": 2.0, "b": 1.0, "c": 1.5}).tolist()
    ['dog', 'dog']
    """

    def __init__(self, *, categories: Sequence[Any] | None = None, duplicates: str = "error"):
        self.categories = categories
        self.duplicates = duplicates

    def fit(self, data: pd.DataFrame, weights: Mapping[Any, float] | pd.Series | None = None) -> MajorityVote:
        """Count the votes.

        Parameters
        ----------
        data : DataFrame with columns ``task``, ``worker``, ``label``
        weights : Series or mapping, optional
            A non-negative weight per worker (e.g. a skill); every worker in ``data``
            needs one. Default: 1 each.

        Returns
        -------
        self
        """
        votes = encode_votes(data, categories=self.categories, duplicates=self.duplicates)
        counted = votes if weights is None else _weighted(votes, weights)
        self._finish(votes, counted.counts())
        return self

    def _finish(self, votes: Votes, counts: np.ndarray) -> None:
        total = counts.sum(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            probas = np.where(total > 0, counts / np.where(total > 0, total, 1), 1.0 / votes.n_classes)
        codes = first_max(counts)
        self.probas_ = probas_frame(probas, votes)
        self.labels_ = labels_series(codes, votes)
        self.skills_ = _accuracy(votes, codes)

    def fit_predict(self, data: pd.DataFrame, weights: Mapping[Any, float] | pd.Series | None = None) -> pd.Series:
        """:meth:`fit`, then return ``labels_``."""
        return self.fit(data, weights).labels_

    def fit_predict_proba(self, data: pd.DataFrame,
                          weights: Mapping[Any, float] | pd.Series | None = None) -> pd.DataFrame:
        """:meth:`fit`, then return ``probas_``."""
        return self.fit(data, weights).probas_


def _weighted(votes: Votes, weights: Mapping[Any, float] | pd.Series) -> Votes:
    w = pd.Series(weights, dtype=float) if not isinstance(weights, pd.Series) else weights.astype(float)
    missing = [x for x in votes.workers if x not in w.index]
    if missing:
        raise ValueError(f"weights has no value for workers {missing[:10]}; give every worker a weight "
                         f"(found weights for {w.index.tolist()[:10]})")
    values = w.reindex(votes.workers).to_numpy()
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"weights must be finite and non-negative; got {values.tolist()[:10]}")
    scale = sp.diags(np.repeat(values, votes.n_classes))
    return votes._replace(matrix=(votes.matrix @ scale).tocsr())


def _accuracy(votes: Votes, codes: np.ndarray) -> pd.Series:
    """Each worker's share of vote weight on the aggregated label (a soft vote counts its mass)."""
    k = votes.n_classes
    coo = votes.matrix.tocoo()
    worker, label = coo.col // k, coo.col % k
    hit = np.bincount(worker, weights=coo.data * (label == codes[coo.row]), minlength=len(votes.workers))
    n = np.bincount(worker, weights=coo.data, minlength=len(votes.workers))
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.Series(hit / n, index=pd.Index(votes.workers, name="worker"), name="skill")
