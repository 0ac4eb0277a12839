"""notebooks/agreement.ipynb runs through papermill on a demo project, every section producing output."""
from __future__ import annotations

from pathlib import Path

import nbformat

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "agreement.ipynb"


def test_agreement_notebook_executes(tmp_path):
    import papermill as pm

    from labkit.demo import build_demo

    build_demo(tmp_path / "demo", n_digits=40, progress=False)
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out), parameters={"project": str(tmp_path / "demo"), "n_boot": 200},
                        kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("outputs") is not None for c in code)
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) for c in code for o in c.outputs)
    assert "AgreementInterval" in text and "sim-ada" in text and "mean_iou" in text
    images = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert images >= 3  # heat map, per-class, confusion matrices
