"""What the hash chain costs: sealing a bulk insert, and recomputing the chain in ``labkit verify``.

Run either way:

    .venv/bin/python -m pytest -m bench benchmarks/bench_chain.py -s
    .venv/bin/python benchmarks/bench_chain.py [--rows 200000] [--verify-rows 100000] [--url postgresql://...]

- ``insert``: one write transaction of ``AnnotationRepository.insert_rows`` (boxes with
  a score and provenance, as an import writes them) into a fresh project, sealed (what
  labkit does) and not (``write_transaction(..., sealed=False)``); best of 3 each, and
  their ratio;
- ``verify``: ``chain.check`` (what ``labkit verify`` adds to re-hashing the files) of a
  project holding ``--verify-rows`` annotations, a tenth of them changed once (so the
  history and the blocks of single writes are recomputed too).

SQLite by default (a temporary folder); ``--url`` runs it on an empty PostgreSQL database.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _project(location, tmp: Path):
    from labkit import Project

    img = tmp / "a.png"
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(img)
    p = Project.create(location, classes=["cat", "dog"], workdir=tmp / "work")
    p.add_images([img])
    return p


def _rows(p, n: int) -> list[dict]:
    with p.store.ctx.connect() as conn:
        me = p.store.ctx.policy.actor(conn)
    rng = np.random.default_rng(0)
    return [{"image_id": 1, "annotator_id": me.id, "kind": "box", "class_id": 1 + i % 2,
             "geometry": {"x0": float(i % 50), "y0": 1.0, "x1": float(i % 50) + 10.5, "y1": 20.0},
             "score": float(rng.random()), "source": "import:coco", "provenance": {"import": {"row": i}}}
            for i in range(n)]


def _location(url: str | None, tmp: Path):
    if url is None:
        return tmp / f"p{uuid.uuid4().hex[:6]}"
    import sqlalchemy as sa

    name = f"bench_{uuid.uuid4().hex[:10]}"
    eng = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    eng.dispose()
    return sa.make_url(url).set(database=name).render_as_string(hide_password=False)


def insert(n: int, url: str | None = None, repeats: int = 3) -> dict[str, float]:
    """Seconds of one transaction inserting ``n`` annotation rows, sealed and not (best of ``repeats``)."""
    from labkit.store.engine import write_transaction

    best: dict[str, float] = {}
    for _ in range(repeats):
        for sealed in (False, True):
            with tempfile.TemporaryDirectory() as d:
                p = _project(_location(url, Path(d)), Path(d))
                rows = _rows(p, n)
                t0 = time.perf_counter()
                with write_transaction(p.store.ctx.engine, sealed=sealed) as conn:
                    p.store.annotations.insert_rows(conn, rows)
                took = time.perf_counter() - t0
                p.close()
            key = "sealed" if sealed else "unsealed"
            best[key] = min(best.get(key, took), took)
    best["ratio"] = best["sealed"] / best["unsealed"]
    return best


def verify(n: int, url: str | None = None) -> dict[str, float]:
    """Seconds of recomputing the chain of a project holding ``n`` annotations."""
    from labkit.store import chain

    with tempfile.TemporaryDirectory() as d:
        p = _project(_location(url, Path(d)), Path(d))
        p.store.ctx.write(lambda conn: p.store.annotations.insert_rows(conn, _rows(p, n)))
        for aid in range(1, n + 1, max(1, n // 200)):  # 200 single writes: 200 small blocks
            p.update_annotation(aid, label="dog")
        with p.store.ctx.connect() as conn:
            t0 = time.perf_counter()
            report = chain.check(conn)
            took = time.perf_counter() - t0
        assert report.ok, report.problems
        out = {"rows": n, "blocks": report.blocks, "seconds": took}
        p.close()
    return out


@pytest.mark.bench
def test_chain_costs():
    costs = insert(200_000)
    print(costs)
    assert costs["ratio"] < 1.10
    print(verify(100_000))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--verify-rows", type=int, default=100_000)
    ap.add_argument("--url", default=None, help="an empty PostgreSQL server's URL (a database is created)")
    args = ap.parse_args()
    ins = insert(args.rows, args.url)
    print(f"insert_rows of {args.rows} rows: {ins['unsealed']:.2f} s unsealed, {ins['sealed']:.2f} s sealed, "
          f"ratio {ins['ratio']:.3f}")
    ver = verify(args.verify_rows, args.url)
    print(f"chain check of {ver['rows']} annotations in {ver['blocks']} blocks: {ver['seconds']:.2f} s")
