"""Provenance of model-made masks, and regenerating a mask from it.

Provenance format
-----------------
A mask made with a segmenter is stored (kind ``mask``, source ``sam`` or ``grabcut``)
with this ``provenance`` dict, the prompt state **accumulated at the moment the mask was
accepted** (not the history of clicks: one box at most, then every point still on the
image, in the order they were placed)::

    {
      "segmenter": "sam_vit_b",            # registry name (load_segmenter)
      "model_id": "sam_vit_b-01ec64d29a2f...",   # architecture + weights id
      "prompts": [                          # the box first, if any, then the points
        {"box": [x0, y0, x1, y1]},          # XYXY pixels
        {"point": [x, y], "label": 1},      # 1 = object, 0 = background
        {"point": [x, y], "label": 0}
      ],
      "multimask": true,                    # predict(multimask=...) (default true)
      "multimask_index": 0,                 # which of the returned masks was accepted
      "time_spent_s": 4.2                   # optional: seconds the annotator spent
    }

Coordinates are image pixels (``docs/data-model.md``). Other keys may be added; they are
kept and ignored here. :func:`make_provenance` builds the dict from the prompts given to
``predict``, and :func:`replay` runs them again.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from labkit.models.segmenters.base import check_prompts
from labkit.store.protocol import ProjectLike


def make_provenance(segmenter: Any, *, box: Any = None, points: Any = None, point_labels: Any = None,
                    multimask: bool = True, multimask_index: int = 0, time_spent_s: float | None = None,
                    **extra: Any) -> dict[str, Any]:
    """The provenance dict (module docstring) for a mask accepted from ``segmenter.predict``.

    Examples
    --------
    >>> from labkit.models import load_segmenter
    >>> prov = make_provenance(load_segmenter("grabcut"), box=[10, 20, 60, 90], points=[[30, 40]],
    ...                        point_labels=[1], multimask=False)
    >>> prov["prompts"]
    [{'box': [10.0, 20.0, 60.0, 90.0]}, {'point': [30.0, 40.0], 'label': 1}]
    """
    b, p, lab = check_prompts(box, points, point_labels)
    prompts: list[dict[str, Any]] = []
    if b is not None:
        prompts.append({"box": [float(v) for v in b]})
    if p is not None and lab is not None:
        prompts += [{"point": [float(x), float(y)], "label": int(v)} for (x, y), v in zip(p, lab)]
    prov = {"segmenter": segmenter.name, "model_id": segmenter.model_id, "prompts": prompts,
            "multimask": bool(multimask), "multimask_index": int(multimask_index)}
    if time_spent_s is not None:
        prov["time_spent_s"] = float(time_spent_s)
    prov.update(extra)
    return prov


def prompts_from_provenance(provenance: Mapping[str, Any] | str) -> dict[str, Any]:
    """``predict`` keyword arguments (``box``, ``points``, ``point_labels``, ``multimask``) from provenance."""
    prov = _as_dict(provenance)
    prompts = prov.get("prompts")
    if not isinstance(prompts, list) or not prompts:
        raise ValueError(f"provenance has no 'prompts' list (found keys {sorted(prov)}); it was not made "
                         "by a segmenter, or by a labkit that did not record prompts")
    box, pts, labs = None, [], []
    for i, pr in enumerate(prompts):
        if not isinstance(pr, Mapping):
            raise ValueError(f"prompts[{i}] is {pr!r}; expected {{'box': [...]}} or {{'point': [x, y], 'label': 0|1}}")
        if "box" in pr:
            if box is not None:
                raise ValueError("provenance has more than one box prompt; the format keeps one box")
            box = pr["box"]
        elif "point" in pr:
            if "label" not in pr:
                raise ValueError(f"prompts[{i}] is a point without a 'label' (1 object, 0 background)")
            pts.append(pr["point"])
            labs.append(pr["label"])
        else:
            raise ValueError(f"prompts[{i}] has keys {sorted(pr)}; expected 'box' or 'point'")
    b, p, lab = check_prompts(box, pts or None, labs or None)
    return {"box": b, "points": p, "point_labels": lab, "multimask": bool(prov.get("multimask", True))}


def replay(annotation: Any, *, project: ProjectLike | None = None, segmenter: Any = None,
           image: np.ndarray | None = None
           ) -> np.ndarray:
    """Regenerate a model-made mask from the prompts in its provenance.

    Parameters
    ----------
    annotation : dict or pandas.Series
        An annotations row (``project.annotations()``) with ``task`` (image id) and
        ``provenance``; ``geometry`` is not used (compare with it to check the replay).
    project : labkit.Project, optional
        Where to read the image (by ``task``); not needed when ``image`` is given.
    segmenter : Segmenter, optional
        Default: ``load_segmenter(provenance["segmenter"])``. Its ``model_id`` must equal the
        recorded one: other weights would give another mask.
    image : ndarray of shape (H, W, 3), optional
        The image, if already in memory.

    Returns
    -------
    mask : ndarray of shape (H, W), bool
    """
    row = annotation.to_dict() if hasattr(annotation, "to_dict") else annotation
    if not isinstance(row, Mapping) or "provenance" not in row:
        found = sorted(row) if isinstance(row, Mapping) else type(annotation).__name__
        raise ValueError(f"replay needs an annotations row with 'task' and 'provenance'; got {found}")
    prov = _as_dict(row["provenance"])
    for k in ("segmenter", "model_id"):
        if k not in prov:
            raise ValueError(f"provenance lacks {k!r} (keys: {sorted(prov)}); cannot tell which model made the mask")
    kwargs = prompts_from_provenance(prov)
    if segmenter is None:
        from labkit.models.segmenters.registry import load_segmenter

        segmenter = load_segmenter(prov["segmenter"])
    if segmenter.model_id != prov["model_id"]:
        raise ValueError(f"the mask was made by model {prov['model_id']!r} but the segmenter is "
                         f"{segmenter.model_id!r}; load the same weights (checkpoint) to replay it")
    key = None
    if image is None:
        if project is None:
            where = f"image {row['task']}" if "task" in row else "the annotation's image"
            raise ValueError(f"replay needs the image: pass project= (to read {where} from it) or image=")
        if "task" not in row:
            raise ValueError(f"the annotation has no 'task' (image id); keys: {sorted(row)}")
        from labkit.models.embeddings import project_image

        image, key = project_image(project, int(row["task"]))
    segmenter.set_image(image, key=key)
    masks, _ = segmenter.predict(**kwargs)
    index = int(prov.get("multimask_index", 0))
    if not 0 <= index < len(masks):
        raise ValueError(f"multimask_index {index} is out of range for {len(masks)} mask(s)")
    return masks[index]


def _as_dict(provenance: Any) -> dict[str, Any]:
    if isinstance(provenance, str):
        provenance = json.loads(provenance)
    if not isinstance(provenance, Mapping):
        raise ValueError(f"provenance must be a dict (or its JSON), got {type(provenance).__name__}")
    return dict(provenance)
