"""Training a cross-fitted pool on a project's own labels (``ModelPool.train``).

The labeled images are split into ``folds`` (stratified by label, seeded; identical
images stay together). For each fold ``f``, architecture ``a`` and fraction ``r``, a
model is trained from scratch on a stratified fraction ``r`` of the *other* folds. Member
``(a, r)`` of the pool is the set of its ``folds`` models, so every labeled image gets
probabilities from a model that never trained on it.

Files, under ``<project>/pool/<name>/``::

    train.json                   the options, the labels' hash, progress
    folds.npz                    per labeled image: sha256, image id, label, fold
    weights/<arch>@<r>/fold<f>.pt  state_dicts (torch.save), written as each finishes
    pool.json                    the manifest ModelPool.load reads (written at the end)

Training is resumable: run the same call again and finished models are kept.

On a Dask cluster (``client=``), each model is one task (:func:`fit_member`): the
workers decode the images once (in batches, each file checked against its import hash)
into one array the scheduler keeps near them, train, and write the state_dict to the
pool's folder (a shared file system), which the client re-hashes before it counts the
model; with ``ship_images=True`` the client sends the images' bytes and writes the
weights the workers return. The models are the same as the local path's (same seeds,
same arithmetic on one thread).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labkit._util.atomic import atomic_path, write_json
from labkit._util.clock import utc_iso
from labkit.store.errors import Fix, ProjectError
from labkit.store.protocol import ProjectLike

from . import _images
from .labels import assign_folds, check_labels, reference_labels, subsample
from .members import PoolMember, check_size

#: Architectures :meth:`ModelPool.train` uses by default: three that learn from scratch on
#: small inputs in a few epochs on a CPU (on 1,200 digits at 16 px, 8 epochs, held-out
#: accuracy 98.7%, 99.0% and 95.5%; mobilenetv3_small_100 and efficientnet_b0 reached
#: 51% and 36% in the same budget: they need far longer schedules from scratch).
DEFAULT_ARCHS = ("resnet18", "resnet10t", "ghostnet_100")
#: Training-set fractions: members that saw a quarter, half and all of their folds.
DEFAULT_FRACTIONS = (0.25, 0.5, 1.0)
#: Fewer optimisation steps than this for some model draws a warning.
MIN_STEPS = 100


def train_pool(cls, project: ProjectLike, *, labels: Any, archs: Sequence[str] | None,
               fractions: Sequence[float] | None, folds: int, image_size: int, epochs: int,
               batch_size: int, lr: float, seed: int, name: str, device: Any, num_workers: int,
               jobs: int, threads: int | None, progress: bool, overwrite: bool, client: Any = None,
               ship_images: bool = False):
    """:meth:`ModelPool.train` (see there); ``cls`` is the class to build."""
    from labkit._util.progress import progress_bar

    from . import _torch

    archs = [_torch.check_arch(a) for a in (DEFAULT_ARCHS if archs is None else archs)]
    fractions = [float(r) for r in (DEFAULT_FRACTIONS if fractions is None else fractions)]
    _check_options(archs, fractions, folds, epochs, batch_size, lr, seed, name, num_workers, jobs,
                   threads)
    image_size = check_size(image_size)
    if client is not None:
        from labkit._util.dask import check_client

        client = check_client(client)
    if not isinstance(ship_images, bool):
        raise ValueError(f"ship_images is {ship_images!r}; expected True or False")
    table = project.images()
    labels = reference_labels(project) if labels is None else check_labels(
        labels, table.index, project.classes())
    classes = [c for c in project.classes() if c in set(labels)]
    if len(classes) < 2:
        raise ValueError(f"the labels cover {len(classes)} class(es) ({classes}); a pool needs labeled "
                         "images of at least 2 classes (add image-level labels, or pass labels=)")
    ids = labels.index.to_numpy()
    y = np.asarray([classes.index(c) for c in labels], np.int64)
    keys = table.loc[ids, "sha256"].to_numpy().astype("U64")
    if len(np.unique(keys)) < folds:
        raise ValueError(f"{len(np.unique(keys))} distinct labeled images cannot be split into "
                         f"{folds} folds; lower folds or label more images")
    fold = assign_folds(keys, y, folds, seed)
    for a in archs:  # fail now, not after hours of training the other architectures
        _torch.check_input_size(a, len(classes), image_size)

    home = Path(project.root) / "pool" / name
    config = {"archs": archs, "fractions": fractions, "folds": folds, "image_size": image_size,
              "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "classes": classes,
              "labels_sha256": _labels_digest(keys, y)}
    _claim(home, config, overwrite)
    with atomic_path(home / "folds.npz") as tmp:
        np.savez(tmp, sha256=keys, image=ids, label=y, fold=fold)

    dev = None if client is not None else _torch.pick_device(device)  # a bad device fails before any read
    iset = _images.project_files(project, ids, purpose=f"pool training ({name})", rehash=False)
    if dev is not None:
        x = np.empty((len(ids), 3, image_size, image_size), np.uint8)
        for pos, xb in _images.batches(iset, range(len(ids)), size=image_size, batch_size=256,
                                       num_workers=num_workers):
            x[pos] = xb.numpy()  # decoded once (and hash-checked), shared by every model

    todo, paths, done_images = [], {}, 0
    for f in range(folds):
        others = np.flatnonzero(fold != f)
        for r in fractions:
            subset = subsample(others, y, r, seed=seed * 1000 + f)
            for a in archs:
                path = home / "weights" / f"{a}@{r:g}" / f"fold{f}.pt"
                paths[(a, r, f)] = path
                job = _Job(a, r, f, subset, path, zlib.crc32(f"{seed}/{f}/{a}/{r:g}".encode()))
                if path.exists():  # finished in an earlier run with the same options and labels
                    done_images += _images_seen(job, batch_size, epochs)
                else:
                    todo.append(job)
    fewest = min(todo, key=lambda j: len(j.subset), default=None)
    steps = 0 if fewest is None else len(fewest.subset) // min(batch_size, len(fewest.subset)) * epochs
    if fewest is not None and steps < MIN_STEPS:
        warnings.warn(f"{fewest.arch}@{fewest.fraction:g} trains for only {steps} steps "
                      f"({len(fewest.subset)} images, batch_size={batch_size}, epochs={epochs}); "
                      f"models trained from scratch need a few hundred. Lower batch_size or "
                      f"raise epochs", stacklevel=3)
    common = dict(num_classes=len(classes), epochs=epochs, batch_size=batch_size, lr=lr)
    total = done_images + sum(_images_seen(j, batch_size, epochs) for j in todo)
    if dev is None:
        used = _fit_on_cluster(client, todo, iset, y, common, image_size=image_size, device=device,
                               threads=threads, ship=ship_images, total=total, initial=done_images,
                               progress=progress, desc=f"training pool ({len(paths)} models, Dask)")
        device_used = used or "Dask workers (every model trained in an earlier run)"
    else:
        device_used = str(dev)
        with progress_bar(total=total, initial=done_images, unit="img", disable=not progress,
                  desc=f"training pool ({len(paths)} models, {dev.type})") as bar:
            if jobs == 1 or dev.type != "cpu" or len(todo) < 2:
                with _torch.num_threads(threads):
                    for job in todo:
                        bar.set_postfix_str(f"{job.arch}@{job.fraction:g} fold {job.fold}")
                        _fit(job, x, y, common, dev, bar)
            else:
                _fit_in_processes(todo, x, y, common, jobs, home, bar, batch_size, epochs)

    from labkit._util.hashing import sha256_file

    members = []
    for a in archs:
        mean, std = _torch.default_norm(a)
        for r in fractions:
            ws = [paths[(a, r, f)] for f in range(folds)]
            members.append(PoolMember(name=f"{a}@{r:g}", arch=a, weights=tuple(str(w) for w in ws),
                                      sha256=tuple(sha256_file(w) for w in ws), mean=mean, std=std,
                                      fraction=r))
    pool = cls(members, classes=classes, image_size=image_size, folds=(keys, fold), home=home,
               training={**config, "device": device_used, "trained_images": int(len(ids))})
    manifest = pool.manifest()
    for m in manifest["members"]:
        m["weights"] = [str(Path(w).relative_to(home)) for w in m["weights"]]
    manifest["created"] = utc_iso()
    write_json(home / "pool.json", manifest)
    return pool


@dataclass(frozen=True)
class _Job:
    """One model to train: member (arch, fraction), the fold it leaves out, its images."""
    arch: str
    fraction: float
    fold: int
    subset: np.ndarray  # positions of its training images
    path: Path  # where its state_dict goes
    seed: int


def _images_seen(job: _Job, batch_size: int, epochs: int) -> int:
    bs = min(batch_size, len(job.subset))
    return len(job.subset) // bs * bs * epochs  # train_model drops the last partial batch


def _fit(job: _Job, x: np.ndarray, y: np.ndarray, common: dict, device: Any, bar: Any = None) -> None:
    from . import _torch

    mean, std = _torch.default_norm(job.arch)
    state = _torch.train_model(job.arch, np.asarray(x[job.subset]), y[job.subset], seed=job.seed,
                               device=device, mean=mean, std=std, progress=bar, **common)
    _torch.save_state(state, job.path)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _fit_in_worker(job: _Job, x_path: str, y: np.ndarray, common: dict) -> None:
    import torch

    _fit(job, np.load(x_path, mmap_mode="r"), y, common, torch.device("cpu"))


def _fit_in_processes(todo, x, y, common, jobs, home, bar, batch_size, epochs) -> None:
    """Train ``todo`` in ``jobs`` one-thread processes; each saves its own weights."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    x_path = home / "decoded.npy"  # workers map the decoded images instead of receiving copies
    np.save(x_path, x)
    # fork on Linux: children start at once and need no `if __name__ == "__main__":` guard in
    # the caller's script; they run one thread, so no OpenMP pool is inherited mid-use
    method = "fork" if sys.platform == "linux" else "spawn"
    ex = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method),
                             initializer=_one_thread)
    try:
        longest_first = sorted(todo, key=lambda j: -len(j.subset))  # fewer idle cores at the end
        running = {ex.submit(_fit_in_worker, job, str(x_path), y, common): job for job in longest_first}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                job = running.pop(fut)
                fut.result()  # re-raise a worker's error here
                bar.update(_images_seen(job, batch_size, epochs))
                bar.set_postfix_str(f"{job.arch}@{job.fraction:g} fold {job.fold} done")
    except BaseException:
        ex.shutdown(wait=True, cancel_futures=True)  # finished models are kept: run again to resume
        raise
    finally:
        ex.shutdown(wait=True)
        x_path.unlink(missing_ok=True)


def fit_member(job: _Job, x: np.ndarray, y: np.ndarray, common: dict, device: Any, threads: int | None,
               ship: bool) -> tuple[str, bytes | None, str]:
    """A Dask task: train one model; ``(sha256 of its weight file, the file's bytes or None, device)``.

    Without ``ship`` the worker writes the file to ``job.path`` (atomically; the client
    re-hashes it), with ``ship`` it returns the bytes for the client to write.
    """
    import tempfile

    from labkit._util.dask import torch_friendly_malloc
    from labkit._util.hashing import sha256_file

    from . import _torch

    torch_friendly_malloc()
    dev = _torch.pick_device(device)
    with _torch.num_threads(threads):
        mean, std = _torch.default_norm(job.arch)
        state = _torch.train_model(job.arch, np.asarray(x[job.subset]), y[job.subset], seed=job.seed,
                                   device=dev, mean=mean, std=std, **common)
    if not ship:
        _torch.save_state(state, job.path)
        return sha256_file(job.path), None, str(dev)
    with tempfile.TemporaryDirectory(prefix="labkit-member-") as tmp:
        local = Path(tmp) / job.path.name
        _torch.save_state(state, local)  # the same bytes the local path writes
        data = local.read_bytes()
    return hashlib.sha256(data).hexdigest(), data, str(dev)


def _member(job: _Job) -> str:
    return f"pool member {job.arch}@{job.fraction:g}, fold {job.fold}"


def _fit_on_cluster(client: Any, todo: list[_Job], iset: _images.ImageSet, y: np.ndarray, common: dict, *,
                    image_size: int, device: Any, threads: int | None, ship: bool, total: int, initial: int,
                    progress: bool, desc: str) -> str:
    """Train ``todo`` as Dask tasks, longest first; write or check each model's file; return the devices."""
    import uuid

    from labkit._util.atomic import write_bytes
    from labkit._util.dask import run_tasks
    from labkit._util.hashing import sha256_file
    from labkit.store.errors import FixableError

    if not todo:
        return ""
    tag = uuid.uuid4().hex[:8]
    parts = [client.submit(_images.decode_batch, _images.sources(iset, pos, ship=ship), iset.keys[pos].tolist(),
                           [_images.describe(iset, int(i)) for i in pos], image_size,
                           key=f"labkit-decode-{tag}-{b}", pure=False)
             for b, pos in enumerate(np.arange(i, min(i + 256, len(iset))) for i in range(0, len(iset), 256))]
    # one array on the cluster, recomputed from the decode tasks if the worker holding it dies
    x = client.submit(_images.stack, parts, key=f"labkit-decoded-{tag}", pure=False)
    labels = client.submit(np.asarray, y, key=f"labkit-labels-{tag}", pure=False)
    del parts
    devices: set[str] = set()

    def done(job: _Job, result: tuple[str, bytes | None, str]) -> str:
        digest, data, dev = result
        if data is not None:
            if hashlib.sha256(data).hexdigest() != digest:
                raise ProjectError(f"{_member(job)}: the weights a Dask worker sent arrived damaged "
                                   "(sha256 differs); run again (finished models are kept)")
            write_bytes(job.path, data)
        else:
            here = sha256_file(job.path) if job.path.is_file() else None
            if here != digest:
                seen = "is not there" if here is None else "holds other bytes"
                raise ProjectError(f"{_member(job)}: a Dask worker wrote {job.path}, which {seen} on this "
                                   "machine: the workers do not share the project's folder", fix=_SHIP)
        devices.add(dev)
        return digest

    def error(job: _Job, exc: BaseException) -> BaseException:
        if isinstance(exc, FixableError):  # an image the workers could not use: it names the image
            return exc
        return ProjectError(f"{_member(job)} failed on the Dask cluster: {type(exc).__name__}: {exc}; "
                            "the models that finished are kept: run again to resume")

    longest_first = sorted(todo, key=lambda j: -len(j.subset))  # fewer idle workers at the end
    bs, epochs = common["batch_size"], common["epochs"]
    run_tasks(client, fit_member, longest_first,
              args=lambda job: (job, x, labels, common, device, threads, ship), name=_member,
              on_result=done, error=error, weight=lambda j: _images_seen(j, bs, epochs), desc=desc,
              unit="img", total=total, initial=initial, progress=progress)
    return ",".join(sorted(devices))


_SHIP = Fix("pass ship_images=True (the client then sends the images and writes the weights), or run "
            "the workers where the project's folder is mounted at the same path", None)


def _labels_digest(keys: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.sha256()
    for k, c in sorted(zip(keys.tolist(), y.tolist())):
        h.update(f"{k}:{c}\n".encode())
    return h.hexdigest()


_REPLACE = Fix("pass overwrite=True to replace it, or choose another name",
               "pass --overwrite to replace it, or choose another --name")


def _claim(home: Path, config: dict, overwrite: bool) -> None:
    """Make ``home`` this training run's folder: new, a resumable earlier run, or overwritten."""
    path = home / "train.json"
    if path.exists():
        old = json.loads(path.read_text()).get("config")
        if old != config:
            if not overwrite:
                diff = {k: (old.get(k) if old else None, v) for k, v in config.items()
                        if not old or old.get(k) != v}
                shown = {k: ("changed" if k == "labels_sha256" else f"{a} -> {b}")
                         for k, (a, b) in diff.items()}
                raise ProjectError(f"a pool named {home.name!r} was trained in {home} with other "
                                   f"options or labels ({shown})", fix=_REPLACE)
            shutil.rmtree(home)
    elif home.exists() and any(home.iterdir()):
        if not overwrite:
            raise ProjectError(f"{home} exists but holds no pool training record", fix=_REPLACE)
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        write_json(path, {"config": config, "started": utc_iso()})
    (home / "pool.json").unlink(missing_ok=True)  # rewritten when every model is done


def _check_options(archs, fractions, folds, epochs, batch_size, lr, seed, name, num_workers,
                   jobs, threads) -> None:
    def whole(v, lo, what):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{what} is {v!r}; expected an integer >= {lo}")

    if not archs:
        raise ValueError("archs is empty; expected at least one timm architecture")
    if len(set(archs)) != len(archs):
        raise ValueError(f"archs has repeats: {archs}")
    if not fractions or any(not 0 < r <= 1 for r in fractions) or len(set(fractions)) != len(fractions):
        raise ValueError(f"fractions is {fractions}; expected distinct numbers in (0, 1]")
    whole(folds, 2, "folds")
    whole(epochs, 1, "epochs")
    whole(batch_size, 2, "batch_size")
    whole(num_workers, 0, "num_workers")
    whole(jobs, 1, "jobs")
    if threads is not None:
        whole(threads, 1, "threads")
    whole(seed, 0, "seed")
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr is {lr!r}; expected a positive learning rate")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(f"name is {name!r}; expected a folder name such as 'default'")
