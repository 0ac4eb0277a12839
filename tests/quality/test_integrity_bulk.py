"""geometry_findings works on columns; its findings are the row-by-row check's, row for row."""
from __future__ import annotations

import numpy as np
import pandas as pd

from labkit.quality.integrity import _findings, _one_geometry, geometry_findings


def _row_by_row(annotations: pd.DataFrame, sizes: pd.DataFrame, tolerance: float = 0.5) -> pd.DataFrame:
    """The former implementation: one iterrows step and two .at lookups per annotation."""
    rows = []
    for aid, r in annotations.iterrows():
        if r["kind"] == "label":
            continue
        base = {"image": int(r["task"]), "annotation": int(aid), "worker": r.get("worker"), "label": r.get("label")}
        w, h = float(sizes.at[r["task"], "width"]), float(sizes.at[r["task"], "height"])
        try:
            problems = _one_geometry(r["kind"], r["geometry"], w, h, float(tolerance))
        except (KeyError, TypeError, ValueError) as exc:
            problems = [("geometry_unreadable", f"{r['kind']} geometry cannot be read: {exc}")]
        rows += [{**base, "rule": rule, "detail": detail} for rule, detail in problems]
    return _findings(rows)


def test_geometry_findings_equal_the_row_by_row_check():
    rng = np.random.default_rng(0)
    geoms, kinds = [], []
    for j in range(3000):
        x, y = rng.uniform(-3, 60, 2)
        w, h = rng.choice([0.0, 2.0, 9.0]), rng.choice([0.0, 3.0, 30.0])
        kind = ["box", "box", "polygon", "point", "ellipse", "label", "box"][j % 7]
        g = {"box": {"x0": x, "y0": y, "x1": x + w, "y1": y + h},
             "polygon": {"points": [[x, y], [x + w, y], [x + w / 2, y + h]]},
             "point": {"points": [[x, y]]},
             "ellipse": {"cx": x, "cy": y, "rx": w, "ry": h, "angle": 10.0}, "label": None}[kind]
        if j % 97 == 0:
            g = {"x0": "a", "y0": 1} if kind == "box" else {"nothing": 1}
        geoms.append(g)
        kinds.append(kind)
    ann = pd.DataFrame({"task": rng.integers(1, 4, len(kinds)), "kind": kinds, "geometry": geoms,
                        "worker": "ana", "label": "cat"}, index=np.arange(100, 100 + len(kinds)))
    sizes = pd.DataFrame({"width": [40, 64, 50], "height": [30, 48, 50]}, index=[1, 2, 3])
    got, want = geometry_findings(ann, sizes), _row_by_row(ann, sizes)
    pd.testing.assert_frame_equal(got, want)
    assert {"box_zero_area", "box_out_of_bounds", "geometry_unreadable"} <= set(got["rule"])
