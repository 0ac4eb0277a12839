"""notebooks/agreement.ipynb runs through papermill on a demo project, every section producing output."""
from __future__ import annotations

from pathlib import Path

import nbformat

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "agreement.ipynb"


def sections(nb) -> dict[str, list]:
    """``## heading`` -> the outputs of the code cells under it (up to the next markdown cell)."""
    out: dict[str, list] = {}
    current = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = cell.source.lstrip()
            current = heading[3:].splitlines()[0].strip() if heading.startswith("## ") else None
            if current is not None:
                out[current] = []
        elif cell.cell_type == "code" and current is not None:
            out[current] += cell.get("outputs", [])
    return out


def test_agreement_notebook_executes(demo_dir, tmp_path):
    import papermill as pm

    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out), parameters={"project": str(demo_dir), "n_boot": 200},
                        kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    produced = sections(nb)
    assert len(produced) == len(sections(nbformat.read(NOTEBOOK, as_version=4))) >= 7  # every "## " section
    silent = [title for title, outputs in produced.items() if not outputs]
    assert not silent, f"sections without output: {silent}"
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) for c in code for o in c.outputs)
    assert "AgreementInterval" in text and "sim-ada" in text and "mean_iou" in text
    images = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert images >= 3  # heat map, per-class, confusion matrices
