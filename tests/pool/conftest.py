"""One tiny cross-fitted pool, trained once per session on real digits with planted flips.

Two of timm's smallest real architectures (``test_resnet``, ``test_efficientnet``) x two
training fractions x two folds = 8 models on 16 px inputs, trained two at a time
(``jobs=2``): 10-15 s on two CPU cores. Tests that change files work on a copy of the project folder
(:func:`project_copy`), never on the shared one.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from .helpers import digits_project

N_DIGITS = 300
TINY = dict(archs=("test_resnet", "test_efficientnet"), fractions=(0.5, 1.0), folds=2, image_size=16,
            epochs=12, batch_size=16, lr=3e-3, seed=0, num_workers=0, jobs=2, progress=False)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on a busy 2-core machine: one thread avoids waiting on the other core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """``(project, truth, flipped)`` with 10% planted flips among 300 digits."""
    root = tmp_path_factory.mktemp("digits")
    project, truth, flipped = digits_project(root, n=N_DIGITS, flip_rate=0.1, seed=0)
    yield project, truth, flipped
    project.close()


@pytest.fixture(scope="session")
def trained(digits):
    """The tiny pool trained on the digits project, and its predictions for the project."""
    from labkit.models.pool import ModelPool

    project = digits[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models on a busy 2-core machine: one thread is faster
    try:
        with pytest.warns(UserWarning, match=r"@0.5 trains for only 48 steps \(74 images"):
            pool = ModelPool.train(project, **TINY)  # tiny on purpose, and told so
        return pool, pool.predict(project, num_workers=0, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def project_copy(digits, trained, tmp_path):
    """An independent copy of the trained project's folder (images, pool, predictions), opened."""
    from labkit import Project

    dst = tmp_path / "copy"
    shutil.copytree(Path(digits[0].root), dst)
    p = Project.open(dst)
    yield p
    p.close()
