"""Consensus written into a real project: originals untouched, provenance, reruns replace
earlier consensus by soft-deleting it; gold items and the annotator table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labkit._version import __version__
from labkit.geometry import decode_rle, encode_rle
from labkit.services import add_gold, annotator_table, gold_answers, gold_queue, write_consensus

LABELS = {  # image -> (ana, ben, cy)
    1: ("cat", "cat", "dog"), 2: ("dog", "dog", "dog"), 3: ("bird", "cat", "bird"),
    4: ("cat", "cat", "cat"), 5: ("dog", "bird", "dog"),
}


def originals(project) -> pd.DataFrame:
    cols = ["task", "worker", "label", "kind", "geometry", "score", "source", "provenance", "version",
            "updated_at", "deleted"]
    df = project.annotations(include_deleted=True)
    df = df.assign(score=df["score"].astype(float))  # all-None scores read back as object
    return df[df["source"] != "consensus"][cols]


def add_labels(project):
    project.add_annotations([{"image": i, "kind": "label", "label": lab, "annotator": w,
                              "provenance": {"time_spent_s": 3.0 + k}}
                             for i, labs in LABELS.items()
                             for k, (w, lab) in enumerate(zip(["ana", "ben", "cy"], labs))])


def test_label_consensus_leaves_originals_and_replaces_itself(project):
    add_labels(project)
    before = originals(project)
    out = write_consensus(project, kind="label", method="majority_vote")
    assert out["label"].tolist() == ["cat", "dog", "bird", "cat", "dog"] and out.attrs["replaced"] == []
    pd.testing.assert_frame_equal(originals(project), before)
    stored = project.annotations(source="consensus")
    assert (stored["worker"] == "consensus").all() and (stored["kind"] == "label").all()
    assert project.annotators().loc["consensus", "role"] == "annotator"
    assert not project.annotators().loc["consensus", "simulated"]
    prov = stored.iloc[0]["provenance"]
    ids = project.annotations(kind="label", image=1, source="human").index.tolist()
    assert prov["method"] == "majority_vote" and sorted(prov["inputs"]) == ids
    assert prov["labkit_version"] == __version__ and "parameters" in prov
    assert stored.iloc[0]["score"] == pytest.approx(2 / 3)

    again = write_consensus(project, kind="label")  # Dawid–Skene now, over the same originals
    assert sorted(again.attrs["replaced"]) == sorted(out.index)
    assert set(again.index).isdisjoint(out.index)
    live = project.annotations(source="consensus")
    assert sorted(live.index) == sorted(again.index) and live["provenance"].iloc[0]["method"] == "dawid_skene"
    every = project.annotations(source="consensus", include_deleted=True)
    assert every.loc[out.index, "deleted"].all()
    history = project.annotation_history(int(out.index[0]))
    assert history["deleted"].tolist() == [False, True]  # kept, restorable
    pd.testing.assert_frame_equal(originals(project), before)
    assert "write_consensus" in project.audit_log()["action"].tolist()


def boxes_project(project):
    rows = []
    for w, dx in (("ana", 0), ("ben", 1), ("cy", 2)):
        rows.append({"image": 1, "kind": "box", "label": "cat", "annotator": w, "geometry": [2 + dx, 2, 14 + dx, 12]})
    rows.append({"image": 1, "kind": "box", "label": "cat", "annotator": "cy", "geometry": [30, 20, 38, 28]})
    rows.append({"image": 2, "kind": "box", "label": "dog", "annotator": "ana", "geometry": [0, 0, 10, 10]})
    rows.append({"image": 2, "kind": "box", "label": "dog", "annotator": "ben", "geometry": [1, 0, 10, 10]})
    return project.add_annotations(rows)


def test_box_consensus(project):
    ids = boxes_project(project)
    before = originals(project)
    out = write_consensus(project, kind="box", quorum=2)
    assert len(out) == 2 and out["n_inputs"].tolist() == [3, 2]
    stored = project.annotations(kind="box", source="consensus")
    assert stored.loc[out.index[0], ["x0", "y0", "x1", "y1"]].tolist() == pytest.approx([3, 2, 15, 12])
    assert stored.loc[out.index[0], "provenance"]["inputs"] == ids[:3]
    assert stored.loc[out.index[1], "provenance"]["workers"] == ["ana", "ben"]
    pd.testing.assert_frame_equal(originals(project), before)
    # a rerun on one image replaces only that image's consensus
    again = write_consensus(project, kind="box", quorum=2, images=[2])
    assert again.attrs["replaced"] == [int(out.index[1])]
    assert sorted(project.annotations(kind="box", source="consensus").index) == sorted([out.index[0], again.index[0]])


def test_mask_consensus_staple(project):
    yy, xx = np.mgrid[:30, :40]
    cell = (yy - 15) ** 2 + (xx - 12) ** 2 <= 36
    rows = [{"image": 3, "kind": "mask", "label": "bird", "annotator": w, "geometry": encode_rle(m)}
            for w, m in (("ana", cell), ("ben", np.roll(cell, 1, 1)), ("cy", cell))]
    project.add_annotations(rows)
    out = write_consensus(project, kind="mask")
    stored = project.annotations(kind="mask", source="consensus")
    assert len(out) == 1 and (decode_rle(stored.iloc[0]["geometry"]) == cell).mean() > 0.98
    prov = stored.iloc[0]["provenance"]
    assert prov["method"] == "staple" and set(prov["sensitivity"]) == {"ana", "ben", "cy"}
    assert prov["parameters"]["by"] == "object"
    out = write_consensus(project, kind="mask", method="majority", by="class")
    assert len(out) == 1 and len(project.annotations(kind="mask", source="consensus")) == 1


def test_model_assisted_label_consensus(project):
    add_labels(project)
    probs = np.full((5, 3), 0.05)
    probs[:, 2] = 0.9  # the pool is sure every image is a bird (classes: cat, dog, bird)
    out = write_consensus(project, kind="label", method="majority_vote", probs=probs,
                          sample_ids=[1, 2, 3, 4, 5], model_weight=2.0)
    labels = out.set_index("task")["label"]
    assert labels[1] == "cat"  # cat 2 + 0.1 beats bird 1.8
    assert labels[5] == "bird"  # dog 2 + 0.1 loses to bird 1 + 1.8
    prov = project.annotations(source="consensus").iloc[0]["provenance"]
    assert prov["parameters"]["model_weight"] == 2.0


def test_write_consensus_errors(project, tmp_path):
    with pytest.raises(ValueError, match="unknown kind 'polygon'"):
        write_consensus(project, kind="polygon")
    with pytest.raises(ValueError, match="no 'label' annotations to aggregate"):
        write_consensus(project)
    add_labels(project)
    with pytest.raises(ValueError, match="unknown method for kind='label' 'staple'"):
        write_consensus(project, method="staple")
    with pytest.raises(ValueError, match="by= applies to masks only"):
        write_consensus(project, by="class")
    project.add_annotator("robot", simulated=True)
    with pytest.raises(ValueError, match="'robot' is simulated"):
        write_consensus(project, annotator="robot")
    assert project.annotations(source="consensus").empty


def test_gold_items_queue_and_annotator_table(project):
    add_labels(project)
    add_gold(project, {2: "dog", 4: "cat"}, by="boss")
    assert gold_answers(project).to_dict() == {2: "dog", 4: "cat"}
    with pytest.raises(ValueError, match="not classes of the project"):
        add_gold(project, {1: "unicorn"}, by="boss")
    write_consensus(project, kind="label")
    table = annotator_table(project)
    assert set(table.index) == {"ana", "ben", "cy"}
    assert table.loc["ana", "gold_accuracy"] == 1.0 and table.loc["ana", "n_gold"] == 2
    assert table.loc["ana", "consensus_accuracy"] == 1.0 and table.loc["ben", "consensus_accuracy"] == 0.6
    assert table.loc["ana", "median_time_s"] == 3.0 and table.loc["cy", "time_source"] == "provenance"
    # gold in a new annotator's queue
    project.add_annotator("dee")
    project.assign([1, 3, 5], ["dee"])
    order = gold_queue(project, "dee", rate=0.4, seed=0)
    assert [i for i in order if i in (1, 3, 5)] == [1, 3, 5] and sorted(set(order) - {1, 3, 5}) == [2, 4]
    assert sorted(project.queue("dee")) == [1, 2, 3, 4, 5]


def test_gold_answers_live_apart_from_image_attributes(project):
    """Item 8: answers are a table of their own, set in one audited transaction; the attribute is reserved."""
    add_gold(project, {2: "dog", 4: "cat"}, by="qa-lead")
    assert not any("gold" in a for a in project.images()["attributes"])
    add_gold(project, {4: None})  # None removes an answer
    assert gold_answers(project).to_dict() == {2: "dog"}
    with pytest.raises(ValueError, match="no image 99 .*nothing was stored"):
        add_gold(project, {2: "cat", 99: "dog"})
    assert gold_answers(project).to_dict() == {2: "dog"}
    log = project.audit_log()
    sets = log[log["action"] == "set_gold"]
    assert set(sets["actor"]) == {project.user} and sets["details"].iloc[0]["on_behalf_of"] == "qa-lead"
    assert sets["details"].iloc[1]["before"] == {"4": "cat"} and sets["details"].iloc[1]["after"] == {"4": None}
    with pytest.raises(ValueError, match="'gold' is reserved"):
        project.set_image_attributes(2, {"gold": "cat"})
