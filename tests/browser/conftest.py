"""The browser fixtures (JupyterLab server, Chromium, page, JS errors, screenshots) for every test here."""
from tests.browser.harness import browser, js_errors, lab, page, shot_dir  # noqa: F401  (fixtures)
