"""A box drawn in JupyterLab with jupyter-bbox-widget lands in a labkit project (real browser)."""
from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from PIL import Image, ImageDraw

from tests.browser.harness import (
    kernel_exec,
    open_notebook,
    pytestmark,
    run_all_cells,
    wait_for_file,
)

pytestmark = [pytestmark, pytest.mark.browser]


def _make(nbdir):
    from labkit import Project

    img = Image.new("RGB", (400, 300), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([60, 50, 180, 170], fill="orange", outline="black")
    img.save(nbdir / "scene.png")
    p = Project.create(nbdir / "proj", classes=["cat", "dog"])
    p.add_annotator("ana")
    p.add_images([nbdir / "scene.png"])
    p.close()
    cell = (
        "import json, os\n"
        "from labkit import Project\n"
        "from jupyter_bbox_widget import BBoxWidget\n"
        "p = Project.open('proj')\n"
        "bbox = BBoxWidget(image=str(p.image_path(1)), classes=p.classes())\n"
        "bbox.add_class('test-bbox')\n"
        "@bbox.on_submit\n"
        "def _save():\n"
        "    ids = [p.add_annotation(image=1, kind='box', label=b['label'], annotator='ana',\n"
        "                            geometry=[b['x'], b['y'], b['x'] + b['width'], b['y'] + b['height']],\n"
        "                            provenance={'tool': 'jupyter-bbox-widget'}) for b in bbox.bboxes]\n"
        "    with open('saved.json.tmp', 'w') as f:\n"
        "        json.dump(ids, f)\n"
        "    os.replace('saved.json.tmp', 'saved.json')\n"
        "bbox"
    )
    nb = new_notebook(cells=[new_code_cell(cell)], metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, nbdir / "label.ipynb")


def test_drawn_box_is_stored(lab, page, js_errors, shot_dir):
    from labkit import Project

    _make(lab["dir"])
    open_notebook(page, lab, "label.ipynb")
    run_all_cells(page)
    widget = page.locator(".test-bbox")
    img = widget.locator("img")
    img.wait_for(state="visible")
    page.wait_for_function("() => { const i = document.querySelector('.test-bbox img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    widget.scroll_into_view_if_needed()
    widget.locator(".class-label", has_text="dog").click()
    overlay = widget.locator("svg").first
    box = overlay.bounding_box()
    scale = img.evaluate("i => i.naturalWidth") / box["width"]
    x0, y0 = box["x"] + 60 / scale, box["y"] + 50 / scale  # the orange square's corner, in screen px
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 120 / scale, y0 + 120 / scale, steps=15)
    page.mouse.up()
    widget.locator("rect").first.wait_for(state="attached")
    page.screenshot(path=str(shot_dir / "bbox_to_store.png"))
    widget.get_by_role("button", name="Submit").click()
    ids = json.loads(wait_for_file(lab["dir"] / "saved.json"))
    assert len(ids) == 1
    with Project.open(lab["dir"] / "proj") as p:
        df = p.annotations(kind="box")
    assert df.index.tolist() == ids
    row = df.iloc[0]
    assert row["label"] == "dog" and row["worker"] == "ana" and row["source"] == "human"
    assert row["provenance"] == {"tool": "jupyter-bbox-widget"}
    for col, want in {"x0": 60, "y0": 50, "x1": 180, "y1": 170}.items():
        assert abs(row[col] - want) <= 2 * scale, (col, row[col])
    assert kernel_exec(page, "print(len(p.annotations()))").strip() == "1"
    assert not js_errors, js_errors
