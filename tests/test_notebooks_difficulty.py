"""notebooks/difficulty.ipynb runs through papermill on a small demo project with a tiny pool."""
from __future__ import annotations

from pathlib import Path

import nbformat

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "difficulty.ipynb"


def test_difficulty_notebook_executes(copy_demo, tmp_path):
    import papermill as pm

    copy_demo(tmp_path / "demo")  # a copy: the notebook trains a pool into the project
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out), kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
                        parameters={"project": str(tmp_path / "demo"), "archs": ["resnet18"], "fractions": [1.0],
                                    "folds": 2, "image_size": 16, "epochs": 1, "top": 10})
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "c_perplexity" in text and "PoolPredictions" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
    assert (tmp_path / "demo" / "pool" / "default" / "pool.json").exists()
