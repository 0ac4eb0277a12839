"""The Labeler in a real JupyterLab + Chromium: box -> mask overlay, negative click, Enter, z, blind mode."""
from __future__ import annotations

import json
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from PIL import Image

from tests.browser.harness import (
    kernel_exec,
    open_notebook,
    pytestmark,
    run_all_cells,
)
from tests.widgets.conftest import box_of, scene

pytestmark = [pytestmark, pytest.mark.browser]


def _setup(nbdir):
    from labkit import Project

    img, truth = scene(0, h=240, w=320)
    Image.fromarray(img).save(nbdir / "scene.png")
    p = Project.create(nbdir / "proj", classes=["cat", "dog"])
    p.add_annotator("ana")
    p.add_annotator("ben")
    p.add_images([nbdir / "scene.png"])
    p.assign([1], ["ana", "ben"], overlap=2)  # two annotators: blind mode
    p.add_annotation(image=1, kind="box", label="cat", annotator="ben", geometry=[5, 5, 60, 50])
    p.close()
    nb = new_notebook(cells=[new_code_cell(
        "import json\nimport numpy as np\nfrom labkit import Project\nfrom labkit.widgets import Labeler\n"
        "lab = Labeler(Project.open('proj'), annotator='ana', segmenter='grabcut')\nlab")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, nbdir / "label.ipynb")
    return truth


def _kernel_json(page, expr: str):
    return json.loads(kernel_exec(page, f"print(json.dumps({expr}))"))


def _wait_kernel(page, expr: str, ok, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while True:
        value = _kernel_json(page, expr)
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{expr} = {value!r} after {timeout_s}s")
        time.sleep(0.2)


def _to_screen(page, selector, x, y):
    """Image pixel (x, y) -> screen point on the <img> inside ``selector``."""
    img = page.locator(f"{selector} img").first
    b = img.bounding_box()
    s = b["width"] / img.evaluate("i => i.naturalWidth")
    return b["x"] + x * s, b["y"] + y * s


def test_labeler_box_click_accept_undo(lab, page, js_errors, shot_dir):
    truth = _setup(lab["dir"])
    open_notebook(page, lab, "label.ipynb")
    run_all_cells(page)
    page.wait_for_function("() => { const i = document.querySelector('.labkit-bbox img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    page.locator(".labkit-labeler").scroll_into_view_if_needed()
    # blind mode: ben's box exists but ana does not see it
    assert _kernel_json(page, "len(lab.session.project.annotations())") == 1
    assert page.locator(".labkit-objects option").count() == 0
    assert "blind mode" in page.locator(".labkit-labeler").inner_text()

    x0, y0, x1, y1 = box_of(truth)
    a, b = _to_screen(page, ".labkit-bbox", x0, y0), _to_screen(page, ".labkit-bbox", x1, y1)
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*b, steps=15)
    page.mouse.up()
    page.locator(".labkit-candidates button").first.wait_for()
    area = _wait_kernel(page, "int(lab.session.mask.sum()) if lab.session.mask is not None else 0", bool)
    assert 0.8 * truth.sum() <= area <= 1.25 * truth.sum()
    page.wait_for_timeout(300)  # let the overlay image load
    page.screenshot(path=str(shot_dir / "labeler_mask.png"))

    page.locator(".labkit-tool button", has_text="Click").click()
    page.locator(".labkit-canvas img").wait_for(state="visible")
    page.wait_for_function("() => { const i = document.querySelector('.labkit-canvas img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    bx, by = _to_screen(page, ".labkit-canvas", x0 + 3, y0 + 3)  # background, inside the box
    page.mouse.click(bx, by, button="right")
    prompts = _wait_kernel(page, "[p.as_dict() for p in lab.session.prompts]", lambda v: len(v) == 2)
    assert prompts[0] == {"box": pytest.approx([x0, y0, x1, y1], abs=3)}
    assert prompts[1]["label"] == 0 and prompts[1]["point"] == pytest.approx([x0 + 3, y0 + 3], abs=2)
    page.wait_for_timeout(300)
    assert page.locator(".lm-Menu").count() == 0, "JupyterLab's context menu opened over the canvas"
    page.screenshot(path=str(shot_dir / "labeler_negative_click.png"))

    page.locator(".labkit-labeler .widget-html").first.click()  # focus the labeler, then use the keys
    page.keyboard.press("Enter")
    saved = _wait_kernel(page, "lab.session.project.annotations(kind='mask', annotator='ana')"
                               "[['label', 'source', 'provenance']].to_dict('records')", lambda v: len(v) == 1)
    assert saved[0]["label"] == "cat" and saved[0]["source"] == "grabcut"
    assert [list(p) for p in saved[0]["provenance"]["prompts"]] == [["box"], ["point", "label"]]
    page.locator(".labkit-status", has_text="saved object").wait_for()
    page.locator(".labkit-objects option").first.wait_for(state="attached")
    assert page.locator(".labkit-objects option").count() == 1  # her own object only

    page.keyboard.press("z")
    _wait_kernel(page, "len(lab.session.project.annotations(kind='mask'))", lambda v: v == 0)
    assert _kernel_json(page, "len(lab.session.project.annotations(kind='mask', include_deleted=True))") == 1
    page.screenshot(path=str(shot_dir / "labeler_after_undo.png"))
    assert not js_errors, js_errors
