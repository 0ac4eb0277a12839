"""The report kernel runs on private Unix sockets, quietly: no TCP port, no kernel warnings in the log."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import nbformat
import pytest

from labkit import Project


@pytest.mark.skipif(sys.platform == "win32", reason="IPC transport is POSIX-only; Windows keeps TCP")
def test_a_report_run_prints_no_kernel_warning_and_listens_on_no_port(tmp_path):
    Project.create(tmp_path / "proj", classes=["a", "b"]).close()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('project = ""')
    params.metadata["tags"] = ["parameters"]
    probe = nbformat.v4.new_code_cell(textwrap.dedent("""\
        import json, os
        from ipykernel.kernelapp import IPKernelApp
        app = IPKernelApp.instance()
        print(json.dumps({"transport": app.transport, "ip": app.ip}))"""))
    nb.cells = [params, probe]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, tmp_path / "probe.ipynb")
    code = (f"from labkit.reports import run_report; "
            f"run_report({str(tmp_path / 'probe.ipynb')!r}, project={str(tmp_path / 'proj')!r}, "
            f"out_dir={str(tmp_path / 'out')!r})")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "IPKernelApp" not in run.stderr and "without encryption" not in run.stderr, run.stderr
    assert "KeyboardInterrupt" not in run.stderr, run.stderr
    out = nbformat.read(tmp_path / "out" / "probe.ipynb", as_version=4)
    shown = "".join(o.get("text", "") for o in out.cells[-1].outputs)
    assert '"transport": "ipc"' in shown, shown
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["probe.html", "probe.ipynb", "probe.json"]
