"""Delivered labels: the one image-level label per image a project delivers, and whose labels are votes.

Every labkit view that needs "the label of an image" (the audit report, the
AgreementDashboard, the DifficultyExplorer, ``labkit issues``, ``ModelPool.train``) and
every agreement figure takes it from :func:`deliver`, so they cannot disagree:

1. **A reference is not a vote.** A reference annotator's labels are what the delivery is
   compared against (the simulated inspector of the demo checks against them), so they
   enter neither the majority nor agreement. References are declared by the caller (a
   contract's ``[annotations] exclude_workers``), and :func:`find_references` adds the
   ones a project shows by itself: a dataset's own labels that a simulation draws from
   (the demo's ``sklearn-digits``).
2. **A stored consensus decides.** An image with a ``source="consensus"`` label (from
   ``write_consensus`` or an adjudication) delivers it; with several, the latest.
3. **Otherwise the majority of the votes**: every other annotator's image-level labels,
   one vote per annotator and image (its latest label). A tie goes to the class listed
   first in ``classes`` (``project.classes()``), as in
   :class:`~labkit.quality.aggregate.MajorityVote`, which counts the votes; ties are
   reported (:attr:`Delivery.ties`), never hidden.
4. **Agreement uses the same votes**: the voters' labels on images with at least two
   voters (:attr:`Delivery.agreement_votes`); consensus and reference labels never enter.

"Latest" is the row order of the table: ``project.annotations()`` lists rows by
annotation id, so the later of two labels is the one written last.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Delivery", "deliver", "find_references"]

#: Columns :func:`deliver` needs; ``simulated`` too when it looks for references itself.
REQUIRED = ("task", "worker", "label", "source")
CONSENSUS = "consensus"


@dataclass(frozen=True, eq=False)
class Delivery:
    """The delivered labels of a project and the votes behind them (see the module docstring).

    Attributes
    ----------
    labels : Series
        One class name per image with a vote or a consensus; index ``"image"`` (sorted),
        name ``"label"``.
    decided_by : Series
        How each label was decided, aligned with ``labels``: ``"consensus"``,
        ``"majority"`` or ``"tie"`` (the class listed first among the tied ones).
    votes : DataFrame
        The annotation rows that are votes (all columns, the input's index): one per
        voter and image, references and consensus left out.
    voters : tuple of str
        The annotators whose labels are votes, sorted: the annotators agreement is
        computed over.
    references : tuple of str
        The annotators left out as references, sorted.
    """

    labels: pd.Series
    decided_by: pd.Series
    votes: pd.DataFrame
    voters: tuple[str, ...]
    references: tuple[str, ...]

    @property
    def ties(self) -> pd.Index:
        """Images whose majority was a tie (broken by class order)."""
        return self.decided_by.index[self.decided_by.to_numpy() == "tie"]

    @property
    def agreement_votes(self) -> pd.DataFrame:
        """``task, worker, label`` of the votes on images with two or more voters: agreement's input."""
        long = self.votes[["task", "worker", "label"]]
        return long[long.groupby("task")["worker"].transform("size").to_numpy() >= 2]

    def describe(self) -> str:
        """The definition in one line, as every view states it."""
        who = ", ".join(self.voters) if 0 < len(self.voters) <= 6 else f"{len(self.voters)} annotators"
        n_cons = int((self.decided_by == "consensus").sum())
        text = (f"delivered label = the stored consensus ({n_cons} image(s)), else the majority of {who} "
                f"(one vote each; ties go to the class listed first: {len(self.ties)} image(s))")
        if self.references:
            names = ", ".join(repr(r) for r in self.references)
            text += f"; reference {names} excluded (compared against, not a vote)"
        return text


def _check(annotations: Any, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not isinstance(annotations, pd.DataFrame):
        raise ValueError(f"annotations has type {type(annotations).__name__}; expected a pandas DataFrame "
                         f"in the long layout (project.annotations())")
    missing = [c for c in columns if c not in annotations.columns]
    if missing:
        raise ValueError(f"annotations lacks columns {missing} needed {what}; found {list(annotations.columns)}. "
                         "project.annotations() has them all")
    if "kind" in annotations.columns:
        annotations = annotations[annotations["kind"] == "label"]
    return annotations[annotations["label"].notna()]


def _names(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        raise ValueError(f"{what} is the string {value!r}; expected a list of names, e.g. {what}=[{value!r}]")
    if not isinstance(value, (Sequence, pd.Index, np.ndarray, set, frozenset)):
        raise ValueError(f"{what} has type {type(value).__name__}; expected a list of names")
    return [str(v) for v in value]


def find_references(annotations: pd.DataFrame) -> list[str]:
    """Annotators whose labels are the reference of a simulation: a dataset's own labels.

    An annotator is one when it is not simulated, every image-level label it gave was
    imported (``source`` ``"import:..."``), and simulated annotators labeled some of the
    same images: the simulation drew its answers from these labels, so they are what its
    annotators are measured against, not one more of them. A project without simulated
    annotators has none; declare other references explicitly (``deliver(references=)``).

    Parameters
    ----------
    annotations : DataFrame
        The long layout with ``task``, ``worker``, ``label``, ``source`` and ``simulated``
        (``project.annotations()``); rows of another ``kind`` than ``"label"`` are ignored.

    Returns
    -------
    list of str
        Sorted annotator names.

    Examples
    --------
    >>> df = pd.DataFrame({"task": [1, 1, 1], "worker": ["dataset", "sim-a", "sim-b"],
    ...                    "label": ["3", "3", "8"], "source": ["import:digits", "simulated", "simulated"],
    ...                    "simulated": [False, True, True]})
    >>> find_references(df)
    ['dataset']
    >>> find_references(df.assign(simulated=False))  # people, not a simulation: everyone votes
    []
    """
    lab = _check(annotations, (*REQUIRED, "simulated"), "to find reference annotators")
    lab = lab[lab["source"] != CONSENSUS]
    simulated = lab["simulated"].astype(bool)
    per = pd.DataFrame({"worker": lab["worker"].astype(str), "simulated": simulated,
                        "imported": lab["source"].astype(str).str.startswith("import:"),
                        "shared": lab["task"].isin(set(lab["task"][simulated]))}).groupby("worker")
    stats = per.agg({"simulated": "any", "imported": "all", "shared": "any"})
    return sorted(stats.index[~stats["simulated"] & stats["imported"] & stats["shared"]])


def deliver(annotations: pd.DataFrame, classes: Sequence[str], *, references: Sequence[str] = (),
            find: bool = True) -> Delivery:
    """One label per image and the votes behind it, by the rules of the module docstring.

    Parameters
    ----------
    annotations : DataFrame
        The long layout: ``task``, ``worker``, ``label``, ``source`` (and ``simulated``
        when ``find``), rows in the order they were written (``project.annotations()``).
        Rows of another ``kind`` than ``"label"`` are ignored.
    classes : sequence of str
        The class order that breaks ties (``project.classes()``); labels outside it come
        after it, sorted.
    references : sequence of str
        Annotators declared as references (e.g. a contract's ``exclude_workers``).
    find : bool, default True
        Also leave out the references :func:`find_references` finds.

    Returns
    -------
    Delivery

    Examples
    --------
    >>> df = pd.DataFrame({
    ...     "task": [1, 1, 1, 2, 2, 2, 2, 3],
    ...     "worker": ["ana", "ben", "cy", "ana", "ben", "cy", "ref", "ana"],
    ...     "label": ["dog", "dog", "cat", "bird", "dog", "cat", "dog", "cat"],
    ...     "source": ["human"] * 7 + ["consensus"]})
    >>> d = deliver(df, ["cat", "dog", "bird"], references=["ref"], find=False)
    >>> d.labels  # 2 is a three-way tie: "cat" is listed first; 3 has a stored consensus
    image
    1    dog
    2    cat
    3    cat
    Name: label, dtype: object
    >>> d.decided_by.tolist(), d.voters, list(d.ties)
    (['majority', 'tie', 'consensus'], ('ana', 'ben', 'cy'), [2])
    """
    lab = _check(annotations, (*REQUIRED, "simulated") if find else REQUIRED, "for delivered labels")
    order = _names(classes, "classes")
    refs = set(_names(references, "references"))
    if find:
        refs |= set(find_references(lab))
    return _deliver(lab, order, sorted(refs))


def _deliver(lab: pd.DataFrame, classes: list[str], references: list[str]) -> Delivery:
    cons = lab[lab["source"] == CONSENSUS].groupby("task")["label"].last()
    votes = lab[(lab["source"] != CONSENSUS) & ~lab["worker"].isin(references)]
    votes = votes[~votes.duplicated(["task", "worker"], keep="last")]
    labels = pd.Series([], index=pd.Index([], dtype=np.int64), dtype=object)
    how = pd.Series([], index=labels.index, dtype=object)
    if len(votes):
        from labkit.quality.aggregate import MajorityVote

        seen = set(votes["label"].astype(str))
        order = [c for c in classes if c in seen] + sorted(seen - set(classes))
        mv = MajorityVote(categories=order).fit(votes[["task", "worker", "label"]].astype({"label": str}))
        shares = mv.probas_.to_numpy()
        tied = (shares == shares.max(1, keepdims=True)).sum(1) > 1
        labels = mv.labels_.astype(object)
        how = pd.Series(np.where(tied, "tie", "majority"), index=labels.index, dtype=object)
    keep = ~labels.index.isin(cons.index)
    labels = pd.concat([labels[keep], cons.astype(object)]).sort_index()
    how = pd.concat([how[keep], pd.Series(CONSENSUS, index=cons.index, dtype=object)]).reindex(labels.index)
    index = labels.index if len(labels) else pd.Index([], dtype=np.int64)  # image ids, even when none
    labels.index = how.index = index.rename("image")
    return Delivery(labels=labels.rename("label"), decided_by=how.rename("decided_by"), votes=votes,
                    voters=tuple(sorted(map(str, votes["worker"].unique()))),
                    references=tuple(references))
