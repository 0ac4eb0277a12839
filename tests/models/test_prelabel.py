"""labkit.models.prelabel with a tiny random SAM and GrabCut: replayable proposals, resumable runs, Dask."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from labkit.geometry import decode_rle
from labkit.models import prelabel, replay

#: A coarse grid and no quality filter: a random-weight SAM's masks pass, a few per image.
GENERATOR = {"points_per_side": 4, "points_per_batch": 8, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


def _check_replays(project, seg, made):
    rows = project.proposals(None).loc[made["id"]]
    for aid, row in rows.iterrows():
        again = replay(row, project=project, segmenter=seg)
        np.testing.assert_array_equal(again, decode_rle(row["geometry"]), err_msg=f"proposal {aid}")
    return rows


def test_automatic_masks_replay_exactly(seg_project, tiny_segmenter):
    """SAM's automatic mask generator end to end on small images; every proposal regenerates from provenance."""
    p = seg_project
    seg = tiny_segmenter()
    made = prelabel(p, source="auto", segmenter=seg, images=[1, 2], generator=GENERATOR, progress=False)
    assert len(made) >= 2 and set(made["image"]) == {1, 2}
    assert set(made["kind"]) == {"mask"} and set(made["source"]) == {"sam"} and set(made["label"]) == {"thing"}
    assert seg.encoder_calls == 2  # once per image: the generator reads the embedding the cache holds
    rows = _check_replays(p, seg, made)
    prov = rows.iloc[0]["provenance"]
    assert prov["prelabel"] == "auto" and prov["segmenter"] == seg.name and prov["model_id"] == seg.model_id
    assert prov["decoder"] == "torch" and prov["generator"]["points_per_side"] == 4
    assert len(prov["prompts"]) == 1 and prov["prompts"][0]["label"] == 1
    assert 0 <= prov["generator_iou"] <= 1 and "predicted_iou" in prov and "stability_score" in prov
    assert (rows["state"] == "proposed").all() and rows["score"].tolist() == made["score"].tolist()
    # resumable: a second run skips the images done, and a fresh segmenter reuses the embedding cache
    seg2 = tiny_segmenter()
    again = prelabel(p, source="auto", segmenter=seg2, images=[1, 2, 3], generator=GENERATOR, progress=False)
    assert again.attrs["skipped"] == [1, 2] and set(again["image"]) <= {3} and seg2.encoder_calls == 1


def test_masks_from_boxes_with_sam(seg_project, tiny_segmenter):
    p = seg_project
    p.add_annotations([dict(image=1, kind="box", label="thing", annotator="ana", geometry=[5, 5, 40, 30]),
                       dict(image=1, kind="box", label="thing", annotator="ana", geometry=[30, 10, 60, 45]),
                       dict(image=3, kind="box", label="thing", annotator="ana", geometry=[2, 2, 20, 20])])
    seg = tiny_segmenter()
    made = prelabel(p, source="boxes", segmenter=seg, progress=False)
    assert made["image"].tolist() == [1, 1, 3]
    rows = _check_replays(p, seg, made)
    assert [r["from_annotation"] for r in rows["provenance"]] == [1, 2, 3]
    assert [r["prompts"] for r in rows["provenance"]][0] == [{"box": [5.0, 5.0, 40.0, 30.0]}]


def test_arguments_are_checked(seg_project, tiny_segmenter):
    p = seg_project
    with pytest.raises(ValueError, match=r"unknown pre-labeler \(source\) 'box'"):
        prelabel(p, source="box")
    with pytest.raises(ValueError, match="SAM's automatic mask generation, but the segmenter is 'grabcut'"):
        prelabel(p, source="auto", segmenter="grabcut")
    with pytest.raises(ValueError, match=r"no image \[9\] in the project"):
        prelabel(p, source="boxes", segmenter="grabcut", images=[1, 9])
    with pytest.raises(ValueError, match="no boxes by 'zed'"):
        prelabel(p, source="boxes", segmenter="grabcut", boxes="zed")
    with pytest.raises(ValueError, match="crop_n_layers must be 0"):
        prelabel(p, source="auto", segmenter=tiny_segmenter(), generator={"crop_n_layers": 1})
    with pytest.raises(ValueError, match="unknown generator options"):
        prelabel(p, source="auto", segmenter=tiny_segmenter(), generator={"points": 3})
    with pytest.raises(ValueError, match="label 'cat' is not a class"):
        prelabel(p, source="auto", segmenter=tiny_segmenter(), label="cat")


def test_annotators_cannot_prelabel(seg_project):
    from labkit import AccessDenied, Project

    p = seg_project
    p.add_annotation(image=1, kind="box", label="thing", annotator="ana", geometry=[5, 5, 40, 30])
    p.assign([1], ["ana"])
    ana = Project.open(p.location, user="ana")
    try:
        with pytest.raises(AccessDenied, match="store proposals"):
            prelabel(ana, source="boxes", segmenter="grabcut", progress=False)
    finally:
        ana.close()


# ------------------------------------------------------------------ on Dask --
@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed", reason='the Dask tests need dask.distributed: pip install "labkit[dask]"')
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def _scene_project(root):
    """A project of 4 scenes (one orange ellipse each) with a box around each object, by ana."""
    from PIL import Image

    from labkit import Project
    from tests.widgets.conftest import box_of, scene

    files, boxes = [], []
    for i in range(4):
        img, truth = scene(i)
        files.append(root.parent / f"{root.name}_imgs" / f"scene_{i}.png")
        files[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(img).save(files[-1])
        boxes.append([float(v) for v in box_of(truth)])
    p = Project.create(root, classes=["thing"])
    p.add_annotator("ana")
    p.add_images(files)
    p.add_annotations([dict(image=i + 1, kind="box", label="thing", annotator="ana", geometry=b)
                       for i, b in enumerate(boxes)])
    p.close()
    return root


def test_command_line(tmp_path):
    from click.testing import CliRunner

    from labkit.cli import main

    proj = str(_scene_project(tmp_path / "proj"))
    run = CliRunner().invoke
    res = run(main, ["prelabel", "-P", proj, "--source", "boxes", "--segmenter", "grabcut", "--boxes-of", "ana"])
    assert res.exit_code == 0, res.output
    assert "4 proposal(s) on 4 image(s) from grabcut2-" in res.output and "grabcut thing: 4" in res.output
    res = run(main, ["prelabel", "-P", proj, "--source", "boxes", "--segmenter", "grabcut"])
    assert res.exit_code == 0 and "0 proposal(s)" in res.output and "4 image(s) already had them" in res.output
    res = run(main, ["prelabel", "-P", proj, "--source", "boxes", "--segmenter", "grabcat"])
    assert res.exit_code != 0 and "did you mean 'grabcut'" in res.output
    res = run(main, ["prelabel", "--help"])
    assert "--scheduler" in res.output and "boxes|auto|pool" in res.output


@pytest.mark.parametrize("ship", [False, True])
def test_on_a_dask_cluster_as_here(tmp_path, client, ship):
    """The workers read the files (or the bytes the client ships) and never the store: the same proposals."""
    from labkit import Project

    _scene_project(tmp_path / "here")
    shutil.copytree(tmp_path / "here", tmp_path / "there")
    here, there = Project.open(tmp_path / "here"), Project.open(tmp_path / "there")
    try:
        local = prelabel(here, source="boxes", segmenter="grabcut", progress=False)
        remote = prelabel(there, source="boxes", segmenter="grabcut", client=client, batch_size=3,
                          ship_images=ship, progress=False)
        cols = ["image", "kind", "label", "score", "source"]
        remote = remote.sort_values("image", kind="stable").reset_index(drop=True)  # batches finish in any order
        assert len(local) == 4 and remote[cols].equals(local[cols])
        a, b = here.proposals(None).sort_values("task"), there.proposals(None).sort_values("task")
        assert a["geometry"].tolist() == b["geometry"].tolist()
        assert [x["model_id"] for x in a["provenance"]] == [x["model_id"] for x in b["provenance"]]
        log = there.audit_log()
        assert (log["action"] == "read_images").sum() == 1  # the client's one audited bulk read
        assert (log["action"] == "read_image").sum() == 0
    finally:
        here.close()
        there.close()


def test_segment_everything_on_a_dask_cluster_as_here(seg_project, tiny_segmenter, tmp_path, client):
    """SAM goes to the workers once (the model, its id and decoder); the masks are the local ones."""
    from labkit import Project

    p = seg_project
    p.close()
    shutil.copytree(p.location, tmp_path / "there")
    here, there = Project.open(p.location), Project.open(tmp_path / "there")
    try:
        local = prelabel(here, source="auto", segmenter=tiny_segmenter(), images=[1, 2], generator=GENERATOR,
                         progress=False)
        remote = prelabel(there, source="auto", segmenter=tiny_segmenter(cache_dir=tmp_path / "other_cache"),
                          images=[1, 2], generator=GENERATOR, client=client, batch_size=1, progress=False)
        a, b = here.proposals(None), there.proposals(None)
        assert len(local) == len(remote) == len(a) == len(b) > 0
        key = ["task", "score"]
        a, b = a.sort_values(key, kind="stable"), b.sort_values(key, kind="stable")
        assert a["geometry"].tolist() == b["geometry"].tolist()
        assert [x["prompts"] for x in a["provenance"]] == [x["prompts"] for x in b["provenance"]]
    finally:
        here.close()
        there.close()
