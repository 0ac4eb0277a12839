"""Real-browser harness: JupyterLab on 127.0.0.1 + Debian's Chromium driven by Playwright.

Adapted from shared/recipes/test_bbox_widget_browser.py (checked 16/16 runs there).
Fixtures: ``lab`` (a JupyterLab server; notebooks go in ``lab["dir"]``), ``browser``,
``page``, ``js_errors``, ``shot_dir``; helpers: ``open_notebook``, ``run_all_cells``,
``kernel_exec``, ``wait_for_file``.

REQUIRE_BROWSER_TESTS=1 (set by .ci/run) turns "Chromium missing" into an error.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REQUIRE_BROWSER_TESTS = bool(os.environ.get("REQUIRE_BROWSER_TESTS"))
if REQUIRE_BROWSER_TESTS:
    from playwright import sync_api  # missing package => collection error, not a silent skip
else:
    sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
TOKEN = "test-token"
SERVER_START_TIMEOUT_S = 90
UI_TIMEOUT_MS = 30_000
KERNEL_TIMEOUT_MS = 90_000

if not os.path.exists(CHROMIUM) and REQUIRE_BROWSER_TESTS:
    raise RuntimeError(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="Chromium not found (apt-get install -y chromium)"
)

# ---------------------------------------------------------------- fixtures --


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_lab_settings(settings_dir: Path) -> None:
    """Quiet, deterministic JupyterLab UI: no news/update toast, all cells in the DOM."""
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
            {"windowingMode": "none"},
    }
    for rel, content in files.items():
        p = settings_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(content))


def _stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM (Jupyter shuts its kernels down), then SIGKILL our process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:  # start_new_session=True => pgid == proc.pid; reap anything left behind
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("jlab")
    nbdir = root / "notebooks"
    nbdir.mkdir()
    home = root / "jupyter-home"
    _write_lab_settings(home / "lab-settings")
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
    )
    port = _free_port()
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={nbdir}", f"--IdentityProvider.token={TOKEN}",
        "--LabApp.expose_app_in_browser=True",   # window.jupyterapp for commands/kernel access
        "--LabApp.extension_manager=readonly",    # no PyPI queries from the extension manager
        "--LabApp.news_url=None",                 # no news feed fetch
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = root / "jupyterlab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=nbdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited early:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab not up after {SERVER_START_TIMEOUT_S}s:\n"
                            f"{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": base, "dir": nbdir, "log": log_path}
    finally:
        _stop_process(proc)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        # launch() gives every run a fresh temporary user-data-dir.
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


@pytest.fixture
def js_errors(page):
    """Uncaught exceptions in the page (widget JS errors end up here)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


@pytest.fixture
def shot_dir(tmp_path):
    d = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


# ----------------------------------------------------------------- helpers --

JS_KERNEL_IDLE = """() => {
  const nb = window.jupyterapp?.shell?.currentWidget;
  const k = nb?.sessionContext?.session?.kernel;
  if (!k || k.status !== 'idle' || k.connectionStatus !== 'connected') return false;
  // no cell still queued/running ("[*]:")
  return ![...nb.node.querySelectorAll('.jp-InputArea-prompt')]
      .some(p => p.textContent.includes('*'));
}"""

JS_KERNEL_EXEC = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({ code, store_history: false });
  let stdout = '';
  future.onIOPub = (msg) => {
    if (msg.header.msg_type === 'stream') stdout += msg.content.text;
    if (msg.header.msg_type === 'error') stdout += msg.content.evalue;
  };
  const reply = await future.done;
  return { status: reply.content.status, stdout };
}"""


def start_kernel_session(lab, name: str) -> str:
    """Start the notebook's kernel through the REST API before the page loads.

    JupyterLab then attaches to this session instead of choosing a kernel itself,
    so no "Select Kernel" dialog can pop up (and the kernel boots while the page loads).
    """
    body = {"path": name, "name": name, "type": "notebook", "kernel": {"name": "python3"}}
    req = urllib.request.Request(
        f"{lab['url']}/api/sessions", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"token {TOKEN}"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["kernel"]["id"]


def open_notebook(page, lab, name: str) -> None:
    kernel_id = start_kernel_session(lab, name)
    page.goto(f"{lab['url']}/lab/tree/{name}?token={TOKEN}&reset", wait_until="domcontentloaded")
    page.wait_for_function(JS_KERNEL_IDLE, timeout=KERNEL_TIMEOUT_MS)
    attached = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id")
    assert attached == kernel_id, "JupyterLab did not attach to the pre-started kernel"


def run_all_cells(page) -> None:
    # The command's promise resolves once every cell's execute_reply has arrived.
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(JS_KERNEL_IDLE, timeout=KERNEL_TIMEOUT_MS)


def kernel_exec(page, code: str) -> str:
    """Run code in the notebook's kernel (no new cell); return its stdout."""
    res = page.evaluate(JS_KERNEL_EXEC, code)
    assert res["status"] == "ok", res
    return res["stdout"]


def wait_for_file(path: Path, timeout_s: float = 15) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} not written within {timeout_s}s")
        time.sleep(0.1)
    return path.read_text()


