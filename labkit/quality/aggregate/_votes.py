"""Votes as a sparse matrix: the one representation every label aggregator works on.

A long DataFrame (``task``, ``worker``, ``label``) becomes a CSR matrix ``A`` of shape
(N tasks, M*K) where ``A[t, m*K + l]`` is the weight of worker m's vote for label l on
task t: 1 for a human label, a probability for a soft (model) label. Everything the
aggregators need is a product with ``A`` or its transpose:

- votes per task and label: ``A @ P`` with ``P`` the (M*K, K) stack of identities;
- Dawid–Skene's E-step log-likelihoods ``A @ log(errors)`` and M-step counts
  ``A.T @ posteriors``.

Validation and integer coding of the long layout use :mod:`labkit.quality.layouts`' helpers.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._coding import code_rows


class Votes(NamedTuple):
    """Sparse votes and the labels of their axes (see the module docstring)."""

    matrix: sp.csr_matrix  # (N, M*K)
    tasks: pd.Index
    workers: pd.Index
    categories: pd.Index

    @property
    def n_classes(self) -> int:
        return len(self.categories)

    def counts(self) -> np.ndarray:
        """Summed vote weight per task and label, shape (N, K)."""
        n, mk = self.matrix.shape
        k = self.n_classes
        # summing the M blocks of K columns: one sparse product with stacked identities
        stack = sp.csr_matrix((np.ones(mk), (np.arange(mk), np.arange(mk) % k)), shape=(mk, k))
        return np.asarray((self.matrix @ stack).todense()) if n else np.zeros((0, k))


def encode_votes(long: pd.DataFrame, *, categories: Sequence[Any] | None = None,
                 duplicates: str = "error") -> Votes:
    """Validate long labels and code them as a sparse vote matrix of weight-1 votes.

    Works on the rows directly (never a dense tasks x workers table), so many workers
    with a few tasks each cost no more than a few workers with many.
    """
    t_codes, w_codes, l_codes, tasks, workers, cats = code_rows(long, categories, duplicates)
    n, m, k = len(tasks), len(workers), len(cats)
    matrix = sp.csr_matrix((np.ones(len(t_codes)), (t_codes, w_codes * k + l_codes)), shape=(n, m * k))
    matrix.sort_indices()
    return Votes(matrix, tasks, workers, cats)


def add_worker(votes: Votes, rows: np.ndarray, weights: np.ndarray, name: Any) -> Votes:
    """Append one worker whose votes are ``weights`` (R, K) on the tasks at ``rows`` (R,)."""
    if name in votes.workers:
        raise ValueError(f"a worker named {name!r} is already in the data; pass another name=")
    n, mk = votes.matrix.shape
    k = votes.n_classes
    r, c = np.nonzero(weights > 0)
    extra = sp.csr_matrix((weights[r, c], (rows[r], mk + c)), shape=(n, mk + k))
    matrix = sp.hstack([votes.matrix, sp.csr_matrix((n, k))], format="csr") + extra
    matrix.sort_indices()
    workers = votes.workers.append(pd.Index([name], name="worker"))
    return Votes(matrix.tocsr(), votes.tasks, workers, votes.categories)


def first_max(scores: np.ndarray) -> np.ndarray:
    """Column of the largest score per row; ties go to the first column (category order)."""
    return scores.argmax(1)


def labels_series(codes: np.ndarray, votes: Votes) -> pd.Series:
    """Label per task as a Series indexed by ``task`` and named ``label``."""
    values = np.asarray(votes.categories)[codes]
    return pd.Series(values, index=pd.Index(votes.tasks, name="task"), name="label")


def probas_frame(probas: np.ndarray, votes: Votes) -> pd.DataFrame:
    """Posteriors (N, K) as a DataFrame indexed by ``task`` with a column per label."""
    return pd.DataFrame(probas, index=pd.Index(votes.tasks, name="task"),
                        columns=pd.Index(votes.categories, name="label"))


def check_true_labels(true_labels: Any, votes: Votes) -> tuple[np.ndarray, np.ndarray]:
    """Rows and category codes of known (gold) labels, validated against the votes."""
    if not isinstance(true_labels, pd.Series):
        raise ValueError(f"true_labels must be a pandas Series indexed by task; got "
                         f"{type(true_labels).__name__}")
    known = true_labels.dropna()
    rows = votes.tasks.get_indexer(known.index)
    keep = rows >= 0
    codes = votes.categories.get_indexer(known.to_numpy()[keep])
    if (codes < 0).any():
        bad = pd.unique(known.to_numpy()[keep][codes < 0])[:5].tolist()
        raise ValueError(f"true_labels has labels {bad} that are not categories "
                         f"{votes.categories.tolist()[:20]}; pass categories=[...] including them")
    return rows[keep], codes
