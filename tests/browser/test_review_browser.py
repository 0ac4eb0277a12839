"""Reviewing machine proposals in a real JupyterLab + Chromium, the way a reviewer does it.

The demo's photographs with their reference boxes; GrabCut pre-labels a mask from each
box; the reviewer (an annotator the photos are assigned to) opens the Labeler in review
mode and, with no click to give it the focus, accepts the first proposal with Enter,
rejects the next with Delete, and edits the third with one click on the image and
Enter. The store then holds the three states with the reviewer and the times, and the
delivered annotations (agreement, exports) leave the two unreviewed proposals out.
"""
from __future__ import annotations

import json

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.browser.harness import kernel_exec, open_notebook, pytestmark, run_all_cells
from tests.browser.test_labeler_browser import (
    JS_FOCUS_IN_LABELER,
    JS_IMG_LOADED,
    KERNELSPEC,
    _lab_json,
    _show,
    _to_screen,
    _wait_lab,
)

pytestmark = [pytestmark, pytest.mark.browser]


def _setup(nbdir, copy_demo) -> list[int]:
    """A copy of the demo with reviewer ``rev``, the reference boxes of the photos, and GrabCut proposals."""
    from labkit import Project
    from labkit.demo.build import PHOTOS
    from labkit.models import prelabel

    copy_demo(nbdir / "review_demo")
    p = Project.open(nbdir / "review_demo")
    p.add_annotator("reference")
    p.add_annotator("rev")
    photos = [int(i) for i in p.images(split="photos").index]
    p.add_annotations([dict(image=i, kind="box", label=cls, annotator="reference", geometry=list(box))
                       for i, (_, objects) in zip(photos, PHOTOS) for cls, box in objects])
    p.assign(photos, ["rev"])
    made = prelabel(p, source="boxes", segmenter="grabcut", boxes="reference", images=photos, progress=False)
    p.close()
    assert len(made) == 5 and set(made["source"]) == {"grabcut"}
    nb = new_notebook(cells=[new_code_cell(
        "import json\nimport numpy as np\nfrom labkit import Project\nfrom labkit.widgets import Labeler\n"
        "lab = Labeler(Project.open('review_demo', user='rev'), annotator='rev', segmenter='grabcut', review=True)\n"
        "lab")], metadata=KERNELSPEC)
    nbformat.write(nb, nbdir / "review.ipynb")
    return made["id"].tolist()


def test_accept_reject_and_edit_proposals_in_the_browser(lab, page, js_errors, shot_dir, copy_demo):
    ids = _setup(lab["dir"], copy_demo)
    open_notebook(page, lab, "review.ipynb")
    run_all_cells(page)
    page.wait_for_function(JS_IMG_LOADED, arg=".labkit-bbox")
    review = page.locator(".labkit-review")
    review.filter(has_text="5 of 5 proposals left").wait_for()
    page.wait_for_function(JS_FOCUS_IN_LABELER)  # the review mode takes the keyboard by itself
    page.wait_for_timeout(300)
    page.screenshot(path=str(shot_dir / "review_first_proposal.png"))
    order = _lab_json(page, "lab.review_queue.ids")
    assert sorted(order) == sorted(ids)

    page.keyboard.press("Enter")  # straight after it is shown, no click anywhere
    _wait_lab(page, "lab.review_queue.decisions", lambda v: len(v) == 1)
    review.filter(has_text="4 of 5 proposals left · 1 accepted").wait_for()
    page.keyboard.press("Delete")
    _wait_lab(page, "lab.review_queue.decisions", lambda v: len(v) == 2)
    review.filter(has_text="1 rejected").wait_for()
    page.wait_for_function(JS_IMG_LOADED, arg=".labkit-bbox")
    page.wait_for_timeout(300)
    page.screenshot(path=str(shot_dir / "review_third_proposal.png"))

    # the edit: the click tool by key, one click on the object the proposal missed (or in it), Enter
    third = _lab_json(page, "lab.review_queue.current")
    x, y = _lab_json(page, (
        "(lambda r, m: (lambda b: [[float(x) + 0.5, float(y) + 0.5] for y, x in np.argwhere(~m) "
        "if b[0] + 0.3 * (b[2] - b[0]) <= x <= b[2] - 0.3 * (b[2] - b[0]) and b[1] + 0.3 * (b[3] - b[1]) <= y "
        "<= b[3] - 0.3 * (b[3] - b[1])][:1] or [[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]])("
        "r['provenance']['prompts'][0]['box'])[0])(lab.review_queue.row, "
        "__import__('labkit.geometry').geometry.decode_rle(lab.review_queue.row['geometry']))"))
    page.keyboard.press("c")
    _show(page, "click")
    page.mouse.click(*_to_screen(page, ".labkit-canvas", x, y))
    prompts = _wait_lab(page, "[p.as_dict() for p in lab.session.prompts]", lambda v: len(v) == 2)
    assert list(prompts[0]) == ["box"] and prompts[1]["label"] == 1  # the click refines the proposal's box
    page.wait_for_timeout(300)
    page.screenshot(path=str(shot_dir / "review_edit.png"))
    page.keyboard.press("Enter")
    _wait_lab(page, "lab.review_queue.decisions", lambda v: len(v) == 3)
    review.filter(has_text="2 of 5 proposals left · 1 accepted · 1 edited · 1 rejected").wait_for()
    assert page.evaluate(JS_FOCUS_IN_LABELER)
    assert not js_errors, js_errors
    kernel_exec(page, "lab.close()")

    # the store: three states, the reviewer and the times
    from labkit import Project
    from labkit.quality import geometric_agreement

    p = Project.open(lab["dir"] / "review_demo")
    df = p.proposals(None)
    first, second = order[0], order[1]
    assert df["state"].to_dict() == {**{i: "proposed" for i in ids}, first: "accepted", second: "rejected",
                                     third: "edited"}
    reviewed = df.loc[[first, second, third]]
    assert set(reviewed["reviewed_by"]) == {"rev"} and reviewed["reviewed_at"].notna().all()
    assert (reviewed["review_s"] > 0).all()
    new = int(df.loc[third, "replaced_by"])
    masks = p.annotations(kind="mask")
    assert set(masks.index) == {first, new}  # delivered: the accepted proposal and the edit's replacement
    edit = masks.loc[new]
    assert edit["worker"] == "rev" and edit["source"] == "grabcut" and edit["provenance"]["replaces"] == third
    # agreement and exports see the delivered objects only
    photos = [int(i) for i in p.images(split="photos").index]
    seen = pd.DataFrame([(t, w) for t in photos for w in (p.user, "rev")], columns=["task", "worker"])
    pairs = geometric_agreement(p.annotations(kind="mask"), kind="mask", seen=seen)
    counted = {}
    for r in pairs.itertuples():
        counted[(r.task, r.label, r.worker_a)], counted[(r.task, r.label, r.worker_b)] = r.n_a, r.n_b
    assert sum(counted.values()) == 2  # the proposer's one accepted mask and rev's edit; nothing unreviewed
    out = p.export(lab["dir"] / "export.json", format="coco", kinds=["mask"], progress=False)
    exported = json.loads(out.read_text())["annotations"]
    assert len(exported) == 2
    p.close()
