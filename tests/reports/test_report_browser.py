"""The rendered audit report opened in Chromium (file://, no network) and screenshotted.

Chromium's launch settings come from tests/browser/harness.py. With REQUIRE_BROWSER_TESTS=1
a missing Chromium or Playwright fails instead of skipping. Screenshots go to
$SCREENSHOT_DIR (default: the test's tmp folder): look at them.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.harness import CHROMIUM, CHROMIUM_ARGS, REQUIRE_BROWSER_TESTS

pytestmark = pytest.mark.browser

if REQUIRE_BROWSER_TESTS:
    from playwright import sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium not found (apt-get install -y chromium)", allow_module_level=True)


def test_audit_report_in_chromium(report, tmp_path):
    shots = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    remote, errors = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(report.html.resolve().as_uri())
            page.wait_for_load_state("load")
            banner = page.locator(".banner .word")
            assert banner.inner_text() == "FAIL" and banner.is_visible()
            assert page.locator("h2#verdict").bounding_box()["y"] < page.locator("h2#accuracy").bounding_box()["y"]
            images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
            assert len(images) >= 8 and all(done and width > 0 for done, width in images)
            page.screenshot(path=str(shots / "audit_report_top.png"))
            page.screenshot(path=str(shots / "audit_report_full.png"), full_page=True)
        finally:
            browser.close()
    assert remote == [] and errors == []
    assert (shots / "audit_report_top.png").stat().st_size > 20_000
