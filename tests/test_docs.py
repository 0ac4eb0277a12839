"""Every ```python block of the README and docs/ runs, as written, so the docs cannot drift.

The blocks of one file run in order in one namespace (like a notebook's cells), in a fresh
working folder. A block may declare what it needs on the line before it, in an HTML comment
that a reader of the rendered page does not see::

    <!-- docs-test: photos demo -->
    ```python
    ...
    ```

Fixtures (each prepares the working folder or adds names to the namespace once per file):

- ``photos``: ``photos/`` (four small PNGs of real photographs) and ``faces/`` (three
  crops of the astronaut photograph), for blocks that add images;
- ``demo``: ``demo_project/``, a copy of the demo project (``labkit demo``);
- ``contracts``: ``contracts/``, the example contracts of a labkit checkout;
- ``postgres``: a running PostgreSQL server; ``server`` (``host:port``), ``database`` and
  ``admin_url`` (a URL of that empty database, with the server's superuser) are defined.

A block that cannot run anywhere (none today) would have to be a ```text block instead.
"""
from __future__ import annotations

import os
import re
import shutil
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FIXTURES = ("photos", "demo", "contracts", "postgres")
_BLOCK = re.compile(r"(?:<!--\s*docs-test:(?P<needs>[^>]*)-->\s*\n)?```python\n(?P<code>.*?)```", re.S)


@dataclass
class Block:
    path: Path
    line: int
    code: str
    needs: list[str] = field(default_factory=list)


def blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, with their line numbers and declared fixtures."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in _BLOCK.finditer(text):
        needs = (m.group("needs") or "").split()
        unknown = sorted(set(needs) - set(FIXTURES))
        if unknown:
            raise ValueError(f"{path.name}: unknown docs-test fixtures {unknown}; known: {list(FIXTURES)}")
        line = text.count("\n", 0, m.start("code")) + 1
        out.append(Block(path, line, m.group("code"), needs))
    return out


def test_blocks_are_found_with_their_fixtures(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("intro\n```python\na = 1\n```\n\n<!-- docs-test: photos demo -->\n```python\nb = a\n```\n"
                  "```text\nnot python\n```\n")
    found = blocks(md)
    assert [(b.line, b.code, b.needs) for b in found] == [(3, "a = 1\n", []), (8, "b = a\n", ["photos", "demo"])]
    md.write_text("<!-- docs-test: gpu -->\n```python\npass\n```\n")
    with pytest.raises(ValueError, match=r"unknown docs-test fixtures \['gpu'\]"):
        blocks(md)


def test_a_failing_block_is_reported_with_its_file_and_line(tmp_path):
    md = tmp_path / "y.md"
    md.write_text("```python\nx = 1\n```\n\n```python\nraise ValueError('boom')\n```\n")
    with pytest.raises(AssertionError, match=r"(?s)y\.md:6: the block fails.*ValueError: boom"):
        run_file(md, tmp_path / "work", request=None)


def _photos(folder: Path) -> None:
    from PIL import Image
    from skimage import data

    (folder / "photos").mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = getattr(data, name)()
        Image.fromarray(img[::4, ::4]).save(folder / "photos" / f"{name}.png")
    (folder / "faces").mkdir()
    face = data.astronaut()
    for i, (y, x) in enumerate([(0, 120), (20, 140), (40, 160)]):
        Image.fromarray(np.ascontiguousarray(face[y:y + 240, x:x + 200])).save(folder / "faces" / f"face_{i}.png")


def _prepare(need: str, work: Path, namespace: dict, request) -> None:
    if need == "photos":
        _photos(work)
    elif need == "demo":
        request.getfixturevalue("copy_demo")(work / "demo_project")
    elif need == "contracts":
        shutil.copytree(ROOT / "contracts", work / "contracts")
    elif need == "postgres":
        server = request.getfixturevalue("pg_server")
        namespace["database"] = f"gaze_{uuid.uuid4().hex[:8]}"
        namespace["admin_url"] = server.create_database(namespace["database"])
        namespace["server"] = f"127.0.0.1:{server.port}"


def run_file(path: Path, work: Path, *, request) -> None:
    """Run every block of ``path`` in order, in ``work``; fail naming the block's file and line."""
    work.mkdir(parents=True, exist_ok=True)
    namespace: dict = {"__name__": "__docs__"}
    prepared: set[str] = set()
    here = os.getcwd()
    os.chdir(work)
    try:
        for block in blocks(path):
            for need in block.needs:
                if need not in prepared:
                    _prepare(need, work, namespace, request)
                    prepared.add(need)
            try:
                exec(compile(block.code, f"{path.name}:{block.line}", "exec"), namespace)  # noqa: S102
            except Exception:
                raise AssertionError(f"{path.name}:{block.line}: the block fails as written:\n"
                                     f"{traceback.format_exc(limit=-3)}") from None
    finally:
        for value in list(namespace.values()):  # close projects the docs opened
            close = getattr(value, "close", None)
            if type(value).__name__ == "Project" and callable(close):
                close()
        os.chdir(here)


@pytest.mark.parametrize("path", [p for p in DOCS if blocks(p)], ids=lambda p: p.name)
def test_every_python_block_runs_as_written(path, tmp_path, request):
    if any("postgres" in b.needs for b in blocks(path)):
        request.applymarker(pytest.mark.postgres)
    run_file(path, tmp_path / "work", request=request)
    shutil.rmtree(tmp_path / "work", ignore_errors=True)
