"""Two processes writing to one project at the same time lose nothing."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from labkit import Project

WRITER = textwrap.dedent("""
    import sys, time
    from labkit import Project
    location, name, start, n = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    p = Project.open(location, workdir=sys.argv[5])
    while time.time() < start:
        time.sleep(0.001)
    for i in range(n):
        p.add_annotation(image=1 + i % 5, kind="box", label="cat", annotator=name,
                         geometry=[i % 10, 0, i % 10 + 5, 5], provenance={"i": i})
    print("ok", name)
""")


@pytest.mark.timeout(300)
def test_two_processes_add_500_each(location, tmp_path, image_files):
    p = Project.create(location, classes=["cat"], workdir=tmp_path / "w")
    p.add_annotator("w1")
    p.add_annotator("w2")
    p.add_images(image_files)
    start = time.time() + 3  # both start writing at the same moment
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(location), name, str(start), "500",
                               str(tmp_path / "w")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("w1", "w2")]
    outs = [proc.communicate(timeout=280) for proc in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err
        assert "locked" not in err
    df = p.annotations()
    assert len(df) == 1000
    assert df.groupby("worker").size().to_dict() == {"w1": 500, "w2": 500}
    spans = df.groupby("worker")["created_at"].agg(["min", "max"])
    assert spans.loc["w1", "min"] < spans.loc["w2", "max"] and spans.loc["w2", "min"] < spans.loc["w1", "max"], \
        f"the writers did not overlap in time, so nothing was tested: {spans}"
    for w in ("w1", "w2"):
        assert sorted(g["i"] for g in df[df.worker == w]["provenance"]) == list(range(500))
    p.close()
