"""labkit's heavy jobs on a real Dask cluster: the same results as without one, and faults survived.

``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``: two worker processes
(spawned, so the code they run is labkit's own), each with a nanny that restarts it if it
dies. It starts in about a second and is closed at the end of the session. Every result
is compared with what the same call gives without a cluster, on the same data: the tiny
pool of ``tests/pool`` trained the local way (``jobs=2``: two one-thread processes) on 300
real digits, the tiny random SAM of ``tests/models``, the project's files for verify.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.pool.conftest import TINY
from tests.pool.helpers import digits_project

pytest.importorskip("distributed", reason='the Dask tests need dask.distributed: pip install "labkit[dask]"')

N_DIGITS = 300
#: The tiny pool of tests/pool with a shorter schedule: the tests compare models, not their accuracy.
OPTIONS = {**{k: v for k, v in TINY.items() if k != "jobs"}, "epochs": 6}


# ------------------------------------------------------------------ fixtures --
@pytest.fixture(scope="session")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="session")
def client(cluster):
    from distributed import Client

    with Client(cluster) as c:
        c.run(warm_worker)  # import torch and timm once per worker, outside the timed tests
        yield c


def warm_worker() -> int:
    import timm  # noqa: F401

    import labkit.models.pool.training  # noqa: F401

    return torch.get_num_threads()


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """``(project, truth, flipped)``: 300 real digits, 10% of the labels flipped."""
    project, truth, flipped = digits_project(tmp_path_factory.mktemp("dask_digits"), n=N_DIGITS, flip_rate=0.1,
                                             seed=0)
    yield project, truth, flipped
    project.close()


@pytest.fixture(scope="session")
def local_pool(digits):
    """The tiny pool trained without a cluster (two one-thread processes): the reference."""
    from labkit.models.pool import ModelPool

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*trains for only", category=UserWarning)
            return ModelPool.train(digits[0], name="local", jobs=2, **OPTIONS)
    finally:
        torch.set_num_threads(threads)


# -------------------------------------------------------------------- the pool --
def _train(project, client, name, **kw):
    from labkit.models.pool import ModelPool

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*trains for only", category=UserWarning)
        return ModelPool.train(project, name=name, client=client, **{**OPTIONS, **kw})


def _weights(pool) -> dict[str, tuple[str, ...]]:
    return {m.name: m.sha256 for m in pool.members}


def test_training_on_the_cluster_gives_the_local_models(digits, local_pool, client):
    pool = _train(digits[0], client, "on_dask")
    # training is deterministic on the CPU for a seed: every model's file is byte for byte the local one's
    assert _weights(pool) == _weights(local_pool)
    assert pool.id == local_pool.id  # the same pool: it shares the local pool's saved predictions
    assert pool.training["device"] == "cpu"
    assert [m.weights[0].split("/pool/")[1] for m in pool.members] == \
        [m.weights[0].split("/pool/")[1].replace("local", "on_dask") for m in local_pool.members]
    # resumable: a lost model is the only one trained again (here by workers that are sent the
    # images and return the weights), and it comes back the same
    lost = Path(pool.members[1].weights[1])
    kept = {w: os.stat(w).st_mtime_ns for m in pool.members for w in m.weights if Path(w) != lost}
    lost.unlink()
    again = _train(digits[0], client, "on_dask", ship_images=True)
    assert _weights(again) == _weights(local_pool)
    assert {w: os.stat(w).st_mtime_ns for w in kept} == kept


def test_predictions_on_the_cluster_equal_the_local_ones(digits, local_pool, client, tmp_path):
    project = digits[0]
    here = local_pool.predict(project, num_workers=0, progress=False, cache=False)
    there = local_pool.predict(project, progress=False, cache_dir=tmp_path / "preds", client=client,
                               batch_size=64)
    assert there.shape == here.shape == (4, 300, 10)
    np.testing.assert_allclose(there.probs, here.probs, atol=1e-6, rtol=0)
    assert list(there.images) == list(here.images)
    np.testing.assert_array_equal(there.fold, here.fold)
    assert set(there.fold) == {0, 1}  # every image out of sample, by the fold that held it out
    assert there.provenance["computed"] == 300 and there.provenance["dask_scheduler"] == client.scheduler.address
    # saved by the client in shards the local path reads back
    reread = local_pool.predict(project, num_workers=0, progress=False, cache_dir=tmp_path / "preds")
    assert reread.provenance["reused"] == 300 and reread.provenance["computed"] == 0
    np.testing.assert_array_equal(reread.probs, there.probs)
    # the workers cannot see the files: the client sends images and weights
    shipped = local_pool.predict(project, progress=False, cache=False, client=client, ship_images=True)
    np.testing.assert_allclose(shipped.probs, here.probs, atol=1e-6, rtol=0)


def _suspicious(dask_scheduler=None) -> dict:
    """On the scheduler: how many times each training task was running on a worker that died."""
    return {str(k): ts.suspicious for k, ts in dask_scheduler.tasks.items() if "fit_member" in str(k)}


def test_a_worker_killed_mid_training_changes_nothing(digits, local_pool, client):
    """SIGKILL a worker process while it trains a model: Dask reruns its tasks, the pool is the same."""
    pids = client.run(os.getpid)
    seen: dict = {}

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not seen:
            busy = [a for a, keys in client.processing().items() if any("fit_member" in str(k) for k in keys)]
            if busy and busy[0] in pids:
                time.sleep(0.2)  # inside the task: a model takes about a second
                keys = [str(k) for k in client.processing().get(busy[0], ())]
                if any("fit_member" in k for k in keys):
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    seen.update(addr=busy[0], pid=pids[busy[0]], keys=keys)
                    break
            time.sleep(0.02)
        until = time.monotonic() + 30
        while seen and time.monotonic() < until:  # the scheduler's own record of the lost tasks
            seen["suspicious"] = {k: n for k, n in client.run_on_scheduler(_suspicious).items() if n}
            if seen["suspicious"]:
                break
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    try:
        pool = _train(digits[0], client, "killed", archs=("test_resnet",))  # half the members: the same files
    finally:
        killer.join()
    assert seen, "no model was seen training on a worker: nothing was killed"
    # the training task(s) running on that worker were lost with it and run again elsewhere
    assert seen.get("suspicious"), seen
    print(f"killed worker {seen['addr']} (pid {seen['pid']}) while it ran {seen['keys']}; the scheduler counted "
          f"these training tasks lost with it and ran them again: {seen['suspicious']}")
    with pytest.raises(ProcessLookupError):
        os.kill(seen["pid"], 0)  # that process is gone
    assert _weights(pool) == {n: w for n, w in _weights(local_pool).items() if n.startswith("test_resnet@")}
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it, for the tests after this one


def test_a_client_killed_mid_training_leaves_whole_files_and_a_rerun_resumes(digits, local_pool, client):
    """SIGKILL the process that drives a training job: the files are whole, and running again finishes it."""
    import subprocess
    import sys

    from labkit._util.hashing import sha256_file

    root = Path(digits[0].root)
    home = root / "pool" / "orphaned"
    code = (f"import warnings; warnings.simplefilter('ignore')\n"
            f"from distributed import Client\nfrom labkit import Project\nfrom labkit.models.pool import ModelPool\n"
            f"ModelPool.train(Project.open({str(root)!r}), name='orphaned',\n"
            f"                client=Client({client.scheduler.address!r}), **{OPTIONS!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not list(home.glob("weights/*/*.pt")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]  # killed, not finished
    written = sorted(home.glob("weights/*/*.pt"))
    assert 1 <= len(written) < 8 and not (home / "pool.json").exists()
    local = {Path(w).relative_to(Path(w).parents[2]): h
             for m in local_pool.members for w, h in zip(m.weights, m.sha256)}
    for w in written:  # each a whole file: the very model the local path trains
        assert sha256_file(w) == local[w.relative_to(home)]
    assert not [p for p in home.rglob("*") if ".tmp" in p.name]
    pool = _train(digits[0], client, "orphaned")  # the same call again finishes the job
    assert _weights(pool) == _weights(local_pool) and (home / "pool.json").exists()


def test_a_task_error_names_its_image(digits, client, tmp_path):
    from PIL import Image

    from labkit import ImageError, Project

    shutil.copytree(Path(digits[0].root), tmp_path / "copy")
    project = Project.open(tmp_path / "copy")
    try:
        image = int(project.images().index[17])
        Image.new("RGB", (32, 32), "white").save(project.image_path(image))  # other bytes than imported
        with pytest.raises(ImageError, match=rf"^image {image}: .*no longer matches its sha256"):
            _train(project, client, "broken")
        assert not (Path(project.root) / "pool" / "broken" / "pool.json").exists()
    finally:
        project.close()


# ------------------------------------------------------------------ embeddings --
@pytest.fixture(scope="session")
def tiny_sam():
    from labkit.models.segmenters.sam_build import build_tiny_sam

    return build_tiny_sam(0)


def _segmenter(sam, cache: Path):
    from labkit.models import SamSegmenter

    return SamSegmenter(sam, cache_dir=cache, decoder="torch", model_id="tiny-sam-test")


def _entries(cache: Path) -> dict[str, bytes]:
    return {str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.rglob("*.npy"))}


def test_embeddings_on_the_cluster_are_the_local_entries(digits, client, tiny_sam, tmp_path):
    from labkit.models import precompute_embeddings

    project = digits[0]
    ids = [int(i) for i in project.images().index[:10]]
    here = precompute_embeddings(project, _segmenter(tiny_sam, tmp_path / "here"), images=ids, progress=False)
    there = precompute_embeddings(project, _segmenter(tiny_sam, tmp_path / "there"), images=ids, client=client,
                                  batch_size=4, progress=False)
    for table in (here, there):
        assert table.attrs["summary"] == {"computed": 10, "skipped": 0, "failed": 0}
        assert list(table.index) == ids and table.index.name == "image"
    pd.testing.assert_frame_equal(here, there)
    expected = _entries(tmp_path / "here")
    assert len(expected) == 10
    assert _entries(tmp_path / "there") == expected  # same keys, same files, byte for byte
    # resumable: what is cached is skipped
    for f in sorted((tmp_path / "there").rglob("*.npy"))[:3]:
        f.unlink()
    again = precompute_embeddings(project, _segmenter(tiny_sam, tmp_path / "there"), images=ids, client=client,
                                  batch_size=4, progress=False)
    assert again.attrs["summary"] == {"computed": 3, "skipped": 7, "failed": 0}
    assert _entries(tmp_path / "there") == expected
    # workers that cannot see the files: the client sends the images and writes the entries
    shipped = precompute_embeddings(project, _segmenter(tiny_sam, tmp_path / "shipped"), images=ids,
                                    client=client, batch_size=4, progress=False, ship_images=True)
    assert shipped.attrs["summary"]["computed"] == 10
    assert _entries(tmp_path / "shipped") == expected


def test_an_image_that_cannot_be_embedded_is_named(digits, client, tiny_sam, tmp_path):
    from labkit import Project
    from labkit.models import precompute_embeddings

    shutil.copytree(Path(digits[0].root), tmp_path / "copy", ignore=shutil.ignore_patterns("pool", "predictions"))
    project = Project.open(tmp_path / "copy")
    try:
        ids = [int(i) for i in project.images().index[:6]]
        project.image_path(ids[2]).unlink()
        table = precompute_embeddings(project, _segmenter(tiny_sam, tmp_path / "cache"), images=ids, client=client,
                                      batch_size=4, progress=False)
    finally:
        project.close()
    assert table.attrs["summary"] == {"computed": 5, "skipped": 0, "failed": 1}
    assert table.at[ids[2], "status"] == "failed"
    assert table.at[ids[2], "error"].startswith(f"image {ids[2]}: ") and "does not exist" in table.at[ids[2], "error"]
    assert len(_entries(tmp_path / "cache")) == 5


def test_labkit_embed_runs_on_the_scheduler_of_the_environment(digits, client, tiny_sam, tmp_path, monkeypatch):
    import torch
    from click.testing import CliRunner

    from labkit.cli import main
    from labkit.models.segmenters import registry
    from labkit.models.segmenters.sam_build import TINY_OPTIONS

    checkpoint = tmp_path / "tiny.pth"
    torch.save(tiny_sam.state_dict(), checkpoint)

    def factory(*, checkpoint=None, device=None, cache_dir=None, **options):
        return registry._REGISTRY["sam_vit_b"].factory(checkpoint=checkpoint, device=device, cache_dir=cache_dir,
                                                       build_options=TINY_OPTIONS, **options)

    monkeypatch.setitem(registry._REGISTRY, "tiny_sam_test", registry._Entry(factory, "tiny", False))
    monkeypatch.setenv("LABKIT_DASK_SCHEDULER", client.scheduler.address)
    args = ["embed", "-P", str(digits[0].root), "--segmenter", "tiny_sam_test", "--checkpoint", str(checkpoint),
            "--cache-dir", str(tmp_path / "cache")]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"{N_DIGITS} images, 0 already cached, {N_DIGITS} to compute" in res.output
    assert f"computed {N_DIGITS}, skipped 0, failed 0" in res.output
    assert len(_entries(tmp_path / "cache")) == N_DIGITS


# ---------------------------------------------------------------------- verify --
def test_verify_on_the_cluster_reports_what_the_local_check_does(digits, local_pool, client, tmp_path):
    import dask
    from click.testing import CliRunner
    from PIL import Image

    from labkit import Project
    from labkit.cli import main
    from labkit.services.verify import verify_project

    shutil.copytree(Path(digits[0].root), tmp_path / "copy")
    project = Project.open(tmp_path / "copy")
    try:
        ids = [int(i) for i in project.images().index]
        Image.new("RGB", (32, 32), "white").save(project.image_path(ids[3]))
        project.image_path(ids[5]).unlink()
        weights = sorted((tmp_path / "copy" / "pool" / "local" / "weights").rglob("*.pt"))
        weights[0].write_bytes(weights[0].read_bytes() + b"!")
        here = verify_project(project, progress=False)
        there = verify_project(project, progress=False, client=client, batch_size=64)
    finally:
        project.close()
    pd.testing.assert_frame_equal(here, there)
    assert there.attrs["summary"] == here.attrs["summary"]
    assert here.attrs["summary"]["changed"] == 2 and here.attrs["summary"]["missing"] == 1
    res = CliRunner().invoke(main, ["verify", "-P", str(tmp_path / "copy"), "--scheduler", client.scheduler.address])
    assert res.exit_code == 1 and "FAILED: 2 changed, 1 missing" in res.output, res.output
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):  # nothing listens on port 9
        res = CliRunner().invoke(main, ["verify", "-P", str(tmp_path / "copy"), "--scheduler", "tcp://127.0.0.1:9"])
    assert res.exit_code == 2, res.output  # cannot verify (1 would say a file changed)
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 2 s" in res.output


def test_add_images_on_the_cluster_stores_what_the_local_read_does(client, tmp_path):
    """The workers read and hash the files; the rows equal the local threads' (and a bad file is named)."""
    from click.testing import CliRunner
    from PIL import Image

    from labkit import ImageError, Project
    from labkit.cli import main

    rng = np.random.default_rng(0)
    files = []
    for i in range(120):
        files.append(tmp_path / "imgs" / f"{i:03d}.png")
        files[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20 + i % 7, 30, 3), dtype=np.uint8)).save(files[-1])
    here = Project.create(tmp_path / "here", classes=["a"], user="admin")
    there = Project.create(tmp_path / "there", classes=["a"], user="admin")
    here.add_images(files, progress=False)
    there.add_images(files, progress=False, client=client)
    cols = ["path", "sha256", "width", "height"]
    pd.testing.assert_frame_equal(here.images()[cols], there.images()[cols])
    (tmp_path / "imgs" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ImageError, match=r"bad.png: not an image PIL can identify"):
        there.add_images([tmp_path / "imgs" / "bad.png"], progress=False, client=client)
    assert len(there.images()) == 120
    res = CliRunner(env={"LABKIT_USER": "admin"}).invoke(
        main, ["images", "add", "-P", str(tmp_path / "cli"), str(tmp_path / "imgs" / "000.png"),
               "--scheduler", client.scheduler.address])
    assert res.exit_code != 0  # no project there: the error, not a traceback
    Project.create(tmp_path / "cli", classes=["a"], user="admin").close()
    res = CliRunner(env={"LABKIT_USER": "admin"}).invoke(
        main, ["images", "add", "-P", str(tmp_path / "cli"), *map(str, files[:60]), "--scheduler",
               client.scheduler.address])
    assert res.exit_code == 0 and "added 60 images" in res.output, res.output


# ---------------------------------------------------------------------- runner --
def test_the_runner_keeps_order_and_names_a_failed_batch(client, tmp_path):
    from labkit._util.dask import TaskFailed, map_batches, sha256_batch
    from labkit._util.hashing import sha256_file

    files = []
    for i in range(5):
        (tmp_path / f"f{i}").write_bytes(bytes([i]) * 10)
        files.append(str(tmp_path / f"f{i}"))
    got = map_batches(client, sha256_batch, [*files, str(tmp_path / "gone")], batch_size=2, progress=False)
    assert got == [sha256_file(f) for f in files] + [None]
    with pytest.raises(TaskFailed, match=rf"^1 items from {re.escape(str(tmp_path))} to .*: IsADirectoryError"):
        map_batches(client, sha256_batch, [str(tmp_path)], progress=False)


def test_the_runner_shows_progress_and_the_dashboard(client, tmp_path, capsys):
    from labkit._util.dask import dashboard_link, map_batches, sha256_batch

    (tmp_path / "a").write_bytes(b"a")
    map_batches(client, sha256_batch, [str(tmp_path / "a")] * 3, batch_size=1, desc="hashing", progress=True)
    err = capsys.readouterr().err
    assert "hashing" in err and "3/3" in err
    link = dashboard_link(client)
    assert link is None or f"hashing: Dask dashboard at {link}" in err


def test_labkit_pool_predict_runs_on_a_scheduler(digits, local_pool, client):
    from click.testing import CliRunner

    from labkit.cli import main

    res = CliRunner().invoke(main, ["pool", "predict", "-P", str(digits[0].root), "--name", "local", "--scheduler",
                                    client.scheduler.address], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"{N_DIGITS} images x 4 models x 10 classes" in res.output


def test_the_runner_asks_for_a_client_and_for_distributed(monkeypatch):
    import sys

    from labkit._util.dask import check_client, distributed_module

    with pytest.raises(TypeError, match=r"client is a str; expected a distributed.Client"):
        check_client("tcp://127.0.0.1:8786")
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r'needs dask.distributed.*pip install "labkit\[dask\]"'):
        distributed_module()


def test_the_cluster_recipes_of_the_docs_are_python():
    """docs/scale.md's Slurm and JupyterHub recipes cannot run here; they must at least compile."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "scale.md").read_text(encoding="utf-8")
    recipes = re.findall(r"<!-- not run here:[^>]*-->\s*\n```text\n(.*?)```", text, re.S)
    assert len(recipes) == 2
    for code in recipes:
        compile(code, "docs/scale.md", "exec")
        assert "client=client" in code
