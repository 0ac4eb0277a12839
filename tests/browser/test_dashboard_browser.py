"""AgreementDashboard in a real JupyterLab + Chromium: adjudicate one image, then undo."""
from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.browser.harness import (
    open_notebook,
    pytestmark,
    run_all_cells,
)
from tests.browser.test_labeler_browser import _kernel_json, _wait_kernel

pytestmark = [pytestmark, pytest.mark.browser]


def test_dashboard_adjudicate_and_undo(lab, page, js_errors, shot_dir, copy_demo):
    copy_demo(lab["dir"] / "demo")  # a copy: the test adjudicates in it
    nb = new_notebook(cells=[new_code_cell(
        "import json\nfrom labkit import Project\nfrom labkit.widgets import AgreementDashboard\n"
        "d = AgreementDashboard(Project.open('demo'), adjudicator='demo-admin')\nd")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, lab["dir"] / "agree.ipynb")
    open_notebook(page, lab, "agree.ipynb")
    run_all_cells(page)
    page.locator(".labkit-gallery .labkit-review").first.wait_for()
    assert "Krippendorff" in page.locator(".labkit-agreement-numbers").inner_text()
    page.locator(".labkit-gallery .labkit-review").first.click()
    image = _wait_kernel(page, "d.image_id", lambda v: v is not None)
    who = _wait_kernel(page, "[v for _, v in d.choice.options]", bool)[0]
    choice = page.locator(".labkit-choice label", has_text=f"{who}:")
    choice.wait_for()
    choice.click()
    page.locator(".labkit-decide").click()
    final = _wait_kernel(page, f"d.project.annotations(image={image}, annotator='consensus')"
                               "[['label', 'source', 'provenance']].to_dict('records')", lambda v: len(v) == 1)
    assert final[0]["source"] == "consensus"
    prov = final[0]["provenance"]  # the decision is the acting member's; the dashboard's adjudicator a note
    assert prov["adjudicated_by"] == _kernel_json(page, "d.project.user") and prov["chosen"] == who
    assert prov["on_behalf_of"] == "demo-admin"
    page.locator(".labkit-status", has_text="decided image").wait_for()
    page.locator(".labkit-agreement").scroll_into_view_if_needed()
    page.screenshot(path=str(shot_dir / "dashboard_decided.png"), full_page=True)
    page.locator(".labkit-undo").click()
    _wait_kernel(page, f"len(d.project.annotations(image={image}, annotator='consensus'))", lambda v: v == 0)
    assert _kernel_json(page, f"len(d.project.annotations(image={image}, annotator='consensus', "
                              "include_deleted=True))") == 1
    assert not js_errors, js_errors
