"""Provenance of SAM/GrabCut masks and replay from a stored annotation."""
from __future__ import annotations

import numpy as np
import pytest


def _accept(project, seg, image_id, **prompts):
    """What the Labeler does: predict, pick a mask, store it with its provenance."""
    from labkit.models import make_provenance, project_image

    image, key = project_image(project, image_id)
    seg.set_image(image, key=key)
    masks, scores = seg.predict(**prompts)
    index = int(np.argmax(scores))
    prov = make_provenance(seg, **prompts, multimask_index=index, time_spent_s=3.5)
    return project.add_annotation(image=image_id, kind="mask", label="thing", annotator="ana",
                                  geometry=masks[index], score=float(scores[index]), provenance=prov,
                                  source="sam" if seg.name.startswith("sam") else "grabcut"), masks[index]


@pytest.mark.parametrize("prompts", [
    dict(box=[4, 5, 50, 40], points=[[20, 20], [45, 10]], point_labels=[1, 0]),
    dict(points=[[30, 25]], point_labels=[1]),
    dict(box=[10, 10, 60, 44], multimask=False),
])
def test_replay_gives_the_identical_mask(seg_project, tiny_segmenter, prompts):
    from labkit.geometry import decode_rle
    from labkit.models import replay

    seg = tiny_segmenter()
    ann_id, mask = _accept(seg_project, seg, 2, **prompts)
    row = seg_project.annotations(kind="mask").loc[ann_id]
    assert row["provenance"]["segmenter"] == "sam" and row["provenance"]["model_id"] == seg.model_id
    fresh = tiny_segmenter(cache_dir=seg.cache_dir.parent / "other_cache")  # encodes afresh
    again = replay(row, project=seg_project, segmenter=fresh)
    np.testing.assert_array_equal(again, mask)
    np.testing.assert_array_equal(again, decode_rle(row["geometry"]))
    # a plain dict works too, and a segmenter reading the float16 cache gives the same mask here
    np.testing.assert_array_equal(replay(dict(row), project=seg_project, segmenter=tiny_segmenter()), mask)


def test_replay_grabcut_without_a_segmenter(seg_project):
    from labkit.models import load_segmenter, replay

    ann_id, mask = _accept(seg_project, load_segmenter("grabcut"), 1, box=[5, 5, 50, 40])
    row = seg_project.annotations().loc[ann_id]
    np.testing.assert_array_equal(replay(row, project=seg_project), mask)


def test_provenance_format(tiny_segmenter):
    from labkit.models import make_provenance, prompts_from_provenance

    seg = tiny_segmenter()
    prov = make_provenance(seg, box=np.array([1, 2, 3, 4]), points=np.array([[5, 6]]),
                           point_labels=np.array([0]), multimask_index=2, time_spent_s=1.25, annotator_note="x")
    assert prov == {"segmenter": "sam", "model_id": "tiny-sam-test",
                    "prompts": [{"box": [1.0, 2.0, 3.0, 4.0]}, {"point": [5.0, 6.0], "label": 0}],
                    "multimask": True, "multimask_index": 2, "time_spent_s": 1.25, "annotator_note": "x"}
    import json

    kw = prompts_from_provenance(json.dumps(prov))
    assert kw["box"].tolist() == [1, 2, 3, 4] and kw["points"].tolist() == [[5, 6]]
    assert kw["point_labels"].tolist() == [0] and kw["multimask"] is True


@pytest.mark.parametrize("prov, match", [
    ({"segmenter": "sam", "model_id": "tiny-sam-test"}, "no 'prompts' list"),
    ({"segmenter": "sam", "model_id": "tiny-sam-test", "prompts": [{"box": [1, 2, 3, 4]}, {"box": [1, 2, 3, 4]}]},
     "more than one box"),
    ({"segmenter": "sam", "model_id": "tiny-sam-test", "prompts": [{"point": [1, 2]}]}, "without a 'label'"),
    ({"segmenter": "sam", "model_id": "tiny-sam-test", "prompts": [{"polygon": []}]}, "expected 'box' or 'point'"),
    ({"segmenter": "sam", "model_id": "another-model", "prompts": [{"box": [1, 2, 3, 4]}]},
     "made by model 'another-model'"),
    ({"model_id": "x", "prompts": []}, "provenance lacks 'segmenter'"),
    ({"segmenter": "sam", "model_id": "tiny-sam-test", "prompts": [{"box": [1, 2, 30, 40]}],
      "multimask_index": 5}, "multimask_index 5 is out of range"),
])
def test_replay_errors(seg_project, tiny_segmenter, prov, match):
    from labkit.models import replay

    with pytest.raises(ValueError, match=match):
        replay({"task": 1, "provenance": prov}, project=seg_project, segmenter=tiny_segmenter())


def test_replay_needs_an_image_source(tiny_segmenter):
    from labkit.models import replay

    prov = {"segmenter": "sam", "model_id": "tiny-sam-test", "prompts": [{"box": [1, 2, 30, 40]}]}
    with pytest.raises(ValueError, match="pass project="):
        replay({"task": 1, "provenance": prov}, segmenter=tiny_segmenter())
    with pytest.raises(ValueError, match="needs an annotations row"):
        replay({"task": 1}, segmenter=tiny_segmenter())
