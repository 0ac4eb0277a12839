"""The labels a pool trains on and is audited against, and the cross-fitting split.

- :func:`project_delivery`: a project's delivered labels and the votes behind them, by
  the one definition of :mod:`labkit.quality.delivered` (what every view shows);
  :func:`reference_labels`: just the labels (the default of ``ModelPool.train``).
- :func:`project_label_issues`: label-error candidates for a project's images from a
  pool's predictions (:func:`labkit.quality.issues.label_issues` on the labeled images).
- ``assign_folds`` / ``subsample``: the seeded, stratified cross-fitting split and the
  nested training fractions (internal).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from labkit.quality.delivered import Delivery, deliver
from labkit.store.protocol import ProjectLike

__all__ = ["project_delivery", "project_label_issues", "reference_labels"]


def project_delivery(project: ProjectLike, *, references: Sequence[str] = ()) -> Delivery:
    """The project's delivered labels: :func:`labkit.quality.delivered.deliver` on its image-level labels.

    One label per image: the stored consensus, else the majority of the annotators' labels
    (one vote each, ties to the class listed first in ``project.classes()``). Reference
    annotators are not votes: the ``references`` given (e.g. a contract's
    ``exclude_workers``) and those :func:`~labkit.quality.delivered.find_references` finds
    (a dataset's own labels that simulated annotators were drawn from, as the demo's
    ``sklearn-digits``). Deleted annotations and images withdrawn from consent are left out.

    Returns
    -------
    Delivery
        ``labels``, how each was decided, the votes, the voters (agreement's annotators)
        and the references; ``describe()`` states the definition in one line.
    """
    return deliver(project.annotations(kind="label"), project.classes(), references=references)


def reference_labels(project: ProjectLike) -> pd.Series:
    """One label per image: the project's delivered labels (``project_delivery(project).labels``).

    The name is older than reference annotators: these are the labels a pool trains on
    and is audited against, by the one definition of :func:`project_delivery`, and a
    reference annotator's labels are *not* among their votes. Images without a label
    vote or consensus are left out.

    Returns
    -------
    pandas.Series
        Class names indexed by image id (index ``"image"``, name ``"label"``), sorted by id.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> from labkit import Project
    >>> tmp = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(f"{tmp}/{i}.png")
    >>> p = Project.create(f"{tmp}/proj", classes=["cat", "dog"])
    >>> for name in ("ana", "ben", "cy"):
    ...     _ = p.add_annotator(name)
    >>> _ = p.add_images([f"{tmp}/{i}.png" for i in range(3)], progress=False)
    >>> _ = p.add_annotations([
    ...     dict(image=1, kind="label", label="dog", annotator="ana"),
    ...     dict(image=1, kind="label", label="dog", annotator="ben"),
    ...     dict(image=1, kind="label", label="cat", annotator="cy"),
    ...     dict(image=2, kind="label", label="dog", annotator="ana"),
    ...     dict(image=2, kind="label", label="cat", annotator="ben")])
    >>> reference_labels(p)  # image 2 is a tie: 'cat' comes first; image 3 has no label
    image
    1    dog
    2    cat
    Name: label, dtype: object
    """
    return project_delivery(project).labels


def check_labels(labels: Any, image_ids: pd.Index, classes: list[str]) -> pd.Series:
    """A caller's labels as a Series image id -> class name, restricted to valid entries."""
    if not isinstance(labels, pd.Series):
        raise ValueError(f"labels has type {type(labels).__name__}; expected a pandas.Series of "
                         "class names indexed by image id (or None for the project's delivered labels)")
    labels = labels.dropna()
    if not labels.index.is_unique:
        dup = labels.index[labels.index.duplicated()][0]
        raise ValueError(f"labels has image {dup!r} more than once; expected one label per image")
    unknown_ids = labels.index.difference(image_ids)
    if len(unknown_ids):
        raise ValueError(f"labels names {len(unknown_ids)} image id(s) the project does not have, "
                         f"e.g. {list(unknown_ids[:5])}; ids are listed by project.images()")
    unknown = sorted(set(map(str, labels)) - set(classes))
    if unknown:
        raise ValueError(f"labels has class names the project does not have: {unknown[:10]}; "
                         f"expected names from project.classes() = {classes}")
    out = labels.astype(str).rename("label")
    out.index = out.index.astype(np.int64).rename("image")
    return out.sort_index()


def assign_folds(keys: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold id per sample: stratified by label, identical content (equal keys) kept together.

    Within each class, groups are shuffled (seeded) and dealt round-robin, starting where
    the previous class stopped, so fold sizes differ by at most one group overall.
    """
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    group_y = y[first]  # a duplicated image takes the label of its first copy
    rng = np.random.default_rng([seed, 0xF01D])
    fold_of_group = np.empty(len(uniq), np.int64)
    start = 0
    for k in np.unique(group_y):
        members = rng.permutation(np.flatnonzero(group_y == k))
        fold_of_group[members] = (start + np.arange(len(members))) % folds
        start = (start + len(members)) % folds
    return fold_of_group[inverse]


def subsample(train: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified fraction of the positions ``train`` (at least one per class present).

    Nested: for one seed, the subset for a smaller fraction is inside the larger one's,
    so pool members differ in how much they saw, not in which images.
    """
    if fraction >= 1:
        return np.sort(train)
    rng = np.random.default_rng([seed, 0x5AB])
    keep = []
    for k in np.unique(y[train]):
        members = train[y[train] == k]
        order = members[rng.permutation(len(members))]
        keep.append(order[:max(1, int(round(fraction * len(members))))])
    return np.sort(np.concatenate(keep))


def project_label_issues(project: ProjectLike, predictions: Any, *, labels: pd.Series | None = None,
                         **options: Any) -> pd.DataFrame:
    """Label-error candidates among a project's labeled images.

    Parameters
    ----------
    project : labkit.Project
    predictions : PoolPredictions
        From ``pool.predict(project)``; must be out-of-sample (a pool trained with
        :meth:`ModelPool.train` is, by cross-fitting).
    labels : pandas.Series, optional
        Class names indexed by image id; default: the delivered labels
        (:func:`project_delivery`). Images whose label is not one of the pool's classes
        are left out, with a warning.
    **options
        Passed to :func:`labkit.quality.issues.label_issues` (``x_threshold``,
        ``candidates``, ``return_all``, ...).

    Returns
    -------
    pandas.DataFrame
        As :func:`labkit.quality.issues.label_issues`, indexed by image id (``"image"``),
        with the image's ``path`` as the last column.
    """
    from labkit.quality.issues import label_issues

    table = project.images()
    labels = reference_labels(project) if labels is None else check_labels(
        labels, table.index, project.classes())
    classes = list(predictions.classes)
    known = labels.isin(classes)
    if not known.all():
        warnings.warn(f"{int((~known).sum())} labeled image(s) have a class the pool does not "
                      f"predict ({sorted(set(labels[~known]))[:5]}); they are left out", stacklevel=2)
    labels = labels[known]
    pos = predictions.images.get_indexer(labels.index)
    if (pos < 0).any():
        raise ValueError(f"{int((pos < 0).sum())} labeled image(s) are not in the predictions, "
                         f"e.g. {list(labels.index[pos < 0][:5])}; predict the whole project with "
                         "pool.predict(project)")
    if not len(labels):
        raise ValueError("no labeled image to audit: the project has no image-level labels of the "
                         "pool's classes")
    y = pd.Categorical(labels.to_numpy(), categories=classes).codes
    out = label_issues(np.asarray(predictions.probs)[:, pos], y, classes=classes,
                       sample_ids=labels.index, **options)
    out.index.name = "image"
    out["path"] = table["path"].reindex(out.index).to_numpy()
    return out


def project_difficulty(project: ProjectLike, predictions: Any, *, labels: pd.Series | None = None) -> pd.DataFrame:
    """:func:`labkit.quality.difficulty_table` for a project's labeled images, plus their ``label``.

    Parameters
    ----------
    project : labkit.Project
    predictions : PoolPredictions
        From :meth:`ModelPool.predict` (out of sample for a trained pool).
    labels : Series, optional
        Class name per image id; default: the delivered labels (:func:`project_delivery`).

    Returns
    -------
    DataFrame
        Indexed by image id: the difficulty scores, and ``label`` (the given class).
    """
    from labkit.quality.difficulty import difficulty_table

    labels = reference_labels(project) if labels is None else labels
    classes = list(predictions.classes)
    labels = labels[labels.isin(classes) & labels.index.isin(predictions.images)]
    if labels.empty:
        raise ValueError("no labeled image is both scored by the pool and labeled with one of its classes "
                         f"({classes[:10]}); label images or retrain the pool")
    pos = predictions.images.get_indexer(labels.index)
    y = pd.Categorical(labels.to_numpy(), categories=classes).codes
    table = difficulty_table(np.asarray(predictions)[:, pos], y, classes=classes, sample_ids=labels.index)
    table["label"] = labels.to_numpy()
    return table
