from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from pg_server import PostgresServer, PostgresUnavailable  # noqa: E402

REQUIRE_POSTGRES = bool(os.environ.get("REQUIRE_POSTGRES_TESTS"))


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server for the whole session (started here, stopped at the end)."""
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL tests are required here but the server cannot start: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the test server."""
    return pg_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def location(request, tmp_path):
    """Where a new project goes: a folder (SQLite) or an empty PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "proj"
    return request.getfixturevalue("pg_url")


def write_image(path: Path, width: int = 40, height: int = 30, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def image_files(tmp_path):
    """Five small, distinct PNG files (40x30)."""
    return [write_image(tmp_path / "imgs" / f"img_{i}.png", seed=i) for i in range(5)]


@pytest.fixture
def project(location, image_files, tmp_path):
    """A project with classes cat/dog/bird, annotators ana/ben/cy (+ an admin, a viewer), 5 images."""
    from labkit import Project

    p = Project.create(location, classes=["cat", "dog", "bird"], workdir=tmp_path / "work")
    for name in ["ana", "ben", "cy"]:
        p.add_annotator(name)
    p.add_annotator("boss", role="admin")
    p.add_annotator("eve", role="viewer")
    p.add_images(image_files)
    yield p
    p.close()


# ----------------------------------------------------------------------------- the demo project

DEMO_DIGITS = 60
"""Digits in the session's demo project (plus the 4 photos): enough for the difficulty notebook's 2 folds."""


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """The demo project, built once per session by ``build_demo`` (``DEMO_DIGITS`` digits).

    Never open or change this folder: read :func:`demo_dir`, or take a :func:`copy_demo`.
    """
    from labkit.demo import build_demo

    out = tmp_path_factory.mktemp("demo_template") / "demo"
    build_demo(out, n_digits=DEMO_DIGITS, progress=False).close()
    return out


@pytest.fixture(scope="session")
def copy_demo(demo_template):
    """``copy_demo(dest)``: a private copy of the demo project at ``dest`` (returned), for tests that change it."""
    def copy(dest: Path) -> Path:
        return Path(shutil.copytree(demo_template, dest))

    return copy


@pytest.fixture(scope="session")
def demo_dir(copy_demo, tmp_path_factory) -> Path:
    """The demo project folder shared by the tests that only READ it (a change would leak into others)."""
    return copy_demo(tmp_path_factory.mktemp("demo_shared") / "demo")
