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
    from pathlib import Path
    location, name, barrier, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    p = Project.open(location, workdir=sys.argv[5])
    p.annotations()  # warm up: connect before the race
    (barrier / f"ready-{name}").touch()
    while not (barrier / "go").exists():
        time.sleep(0.001)
    t0 = time.time()
    for i in range(n):
        p.add_annotation(image=1 + i % 5, kind="box", label="cat", annotator=name,
                         geometry=[i % 10, 0, i % 10 + 5, 5], provenance={"i": i})
    print(t0, time.time())
""")


@pytest.mark.timeout(300)
def test_two_processes_add_500_each(location, tmp_path, image_files):
    p = Project.create(location, classes=["cat"], workdir=tmp_path / "w")
    p.add_annotator("w1")
    p.add_annotator("w2")
    p.add_images(image_files)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(location), name, str(barrier), "500",
                               str(tmp_path / "w")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("w1", "w2")]
    deadline = time.monotonic() + 120
    while not all((barrier / f"ready-{n}").exists() for n in ("w1", "w2")):  # both connected...
        assert time.monotonic() < deadline and all(proc.poll() is None for proc in procs), \
            [proc.communicate() for proc in procs if proc.poll() is not None]
        time.sleep(0.01)
    (barrier / "go").touch()  # ...then both start writing at once
    outs = [proc.communicate(timeout=280) for proc in procs]
    for proc, (_, err) in zip(procs, outs):
        assert proc.returncode == 0, err
        assert "locked" not in err
    df = p.annotations()
    assert len(df) == 1000
    assert df.groupby("worker").size().to_dict() == {"w1": 500, "w2": 500}
    (a0, a1), (b0, b1) = (map(float, out.split()) for out, _ in outs)
    assert a0 < b1 and b0 < a1, "the writers did not try to write at the same time, so nothing was tested"
    for w in ("w1", "w2"):
        assert sorted(g["i"] for g in df[df.worker == w]["provenance"]) == list(range(500))
    p.close()
