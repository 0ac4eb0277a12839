"""Tamper evidence: re-hash every file a project depends on, recompute its hash chain, compare.

Two kinds of file are checked against the sha256 recorded when they entered the project:

- ``"image"``: every row of the ``images`` table (read directly, so no image escapes the
  check through a filter of :meth:`Project.images`), hashed at import;
- ``"pool_weights"``: the weight files of every trained model pool,
  ``<root>/pool/<name>/pool.json``, hashed when the pool was trained.

A ``pool.json`` that cannot be read is itself reported (kind ``"pool_manifest"``).

The database's own rows are checked against the project's hash chain
(:mod:`labkit.store.chain`): every block is recomputed from the rows (annotations, their
history, the audit log, images with their stored hashes, members, classes), and every
chain head recorded by a report or an export (``reports/index.jsonl``,
``exports/index.jsonl``) must still be in the chain. A break is a row of kind
``"chain"``: so an image replaced together with its stored hash, an annotation edited
with ``sqlite3`` or deleted audit entries all fail ``labkit verify``.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from labkit._util.hashing import sha256_file
from labkit.models.pool.manifest import pool_weight_files
from labkit.services.report_registry import EXPORTS, INDEX, registered, registered_exports
from labkit.store import chain
from labkit.store.protocol import StoredProject

__all__ = ["STATUSES", "anchors", "verify", "verify_project"]

#: Every status :func:`verify_project` reports, best first.
STATUSES = ("ok", "changed", "missing", "unreadable")
COLUMNS = ["kind", "image", "pool", "member", "path", "status", "expected_sha256", "actual_sha256",
           "size", "mtime", "error"]


class _Target(NamedTuple):
    kind: str
    image: int | None
    pool: str | None
    member: str | None
    path: Path
    expected: str | None


class _Found(NamedTuple):
    status: str
    actual: str | None
    size: int | None
    mtime: float | None
    error: str | None


def verify(project: StoredProject, *, progress: bool = True, client: Any = None) -> pd.DataFrame:
    """Re-hash every image file and trained model weight and recompute the hash chain.

    One row per file with its status, ``ok``, ``changed``, ``missing`` or ``unreadable``
    against the hash recorded at import, and one row per break of the chain;
    ``df.attrs["summary"]`` counts them. Admins and viewers. ``labkit verify --project
    P`` prints the problems and exits 1 if there are any. See :func:`verify_project`.
    """
    project.store.ctx.require("verify", "admin", "viewer", what="verify the project's files")
    return verify_project(project, progress=progress, client=client)


def verify_project(project: StoredProject, *, progress: bool = True, workers: int = 4, client: Any = None,
                   batch_size: int = 256) -> pd.DataFrame:
    """Re-hash every image and trained-pool weight file of ``project``, and recompute its hash chain.

    Parameters
    ----------
    project : labkit.Project
    progress : bool, default True
        Show a tqdm progress bar (for 50 files or more).
    workers : int, default 4
        Threads hashing files (hashlib releases the GIL while it hashes).
    client : distributed.Client, optional
        Hash on this Dask cluster instead, ``batch_size`` files per task
        (:func:`check_files`); the workers must see the files at the same paths. The
        report is the same as the local one (``workers`` is then unused).
    batch_size : int, default 256
        Files per Dask task.

    Returns
    -------
    pandas.DataFrame
        One row per file, images first (by id), then pool weights (by pool, member,
        fold), then one row per break of the hash chain, with columns:

        - ``kind``: ``"image"``, ``"pool_weights"``, ``"pool_manifest"`` or ``"chain"``;
        - ``image``: the image id (``<NA>`` for pool files);
        - ``pool``, ``member``: the pool's folder name and member name (``None`` for images);
        - ``path``: the absolute path checked (``"chain"``: the table and block, or the
          registry that recorded a head);
        - ``status``: ``"ok"`` (same bytes), ``"changed"`` (other bytes), ``"missing"``
          (no file) or ``"unreadable"`` (a file that cannot be read, not a regular
          file, or a ``pool.json`` that cannot be parsed);
        - ``expected_sha256``, ``actual_sha256``: recorded and current hashes (actual is
          ``None`` unless the file was read);
        - ``size`` (bytes) and ``mtime`` (UTC) of the file as found, ``<NA>``/``NaT`` if missing;
        - ``error``: why a file is unreadable, or what broke the chain and what to do, else ``None``.

        Text columns are ``object`` dtype, with ``None`` where there is no value.

        ``df.attrs["summary"]`` counts the rows per status (every status, zeros included);
        ``df.attrs["chain"]`` says what the chain check covered: ``blocks``, its ``head``
        (``{"seq", "head"}``), how many recorded heads (``anchors``) were found in it,
        whether it was ``checked`` (not for annotators, who cannot read every row) and
        its ``problems``. Nothing in the project is changed.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from labkit import Project
    >>> tmp = Path(tempfile.mkdtemp())
    >>> for name in ("a", "b"):
    ...     Image.fromarray(np.full((8, 8, 3), ord(name), np.uint8)).save(tmp / f"{name}.png")
    >>> p = Project.create(tmp / "proj", classes=["cat", "dog"])
    >>> p.add_images([tmp / "a.png", tmp / "b.png"], progress=False)
    [1, 2]
    >>> (tmp / "b.png").unlink()
    >>> report = verify_project(p, progress=False)
    >>> report[["kind", "image", "status"]]
        kind  image   status
    0  image      1       ok
    1  image      2  missing
    >>> report.attrs["summary"]
    {'ok': 1, 'changed': 0, 'missing': 1, 'unreadable': 0}
    >>> p.close()
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers is {workers!r}; expected a positive integer (threads hashing files)")
    if not hasattr(project, "store") or not hasattr(project.store, "images"):
        raise TypeError(f"project is a {type(project).__name__}; expected a labkit.Project "
                        "(Project.open(location))")
    targets = _image_targets(project)
    pool_targets, manifest_rows = _pool_targets(Path(project.root))
    targets += pool_targets
    chain_rows, chain_info = _chain_rows(project)
    if client is None:
        found = _check_all(targets, progress=progress, workers=workers)
    else:
        found = _check_on_cluster(client, targets, progress=progress, batch_size=batch_size)
    rows = [(t.kind, t.image, t.pool, t.member, str(t.path), f.status, t.expected, f.actual, f.size,
             f.mtime, f.error) for t, f in zip(targets, found)]
    # object columns, so "no value" is None in text columns (pandas' str dtype would make it NaN)
    df = pd.DataFrame(rows + manifest_rows + chain_rows, columns=COLUMNS, dtype=object)
    df["image"] = df["image"].astype("Int64")
    df["size"] = df["size"].astype("Int64")
    df["mtime"] = pd.to_datetime(df["mtime"].astype("float64"), unit="s", utc=True)
    counts = df["status"].value_counts()
    df.attrs["summary"] = {s: int(counts.get(s, 0)) for s in STATUSES}
    df.attrs["chain"] = chain_info
    return df


def _chain_rows(project: StoredProject) -> tuple[list[tuple], dict[str, Any]]:
    """The breaks of the hash chain as report rows, and what the check covered."""
    ctx = project.store.ctx
    with ctx.connect() as conn:
        if ctx.policy.actor(conn).role == "annotator":
            return [], {"checked": False, "blocks": None, "head": None, "anchors": 0, "problems": [],
                        "why": "annotators cannot read every row; an admin or a viewer verifies the chain"}
        report = chain.check(conn, anchors(Path(project.root)))
    rows = [("chain", None, None, None, _where(p), p.status, p.expected, p.actual, None, None, p.message)
            for p in report.problems]
    return rows, {"checked": True, "blocks": report.blocks, "head": report.head.to_dict() if report.head else None,
                  "anchors": report.anchors, "problems": [p.message for p in report.problems]}


def anchors(root: Path) -> list[chain.Anchor]:
    """The chain heads that the project's reports and exports recorded (their registries)."""
    out = []
    for index, entries, what in ((root / INDEX, registered(root), "report {name!r} run at {created_at}"),
                                 (root / EXPORTS, registered_exports(root), "the {format} export of {created_at}")):
        for e in entries:
            head = e.get("chain")
            if isinstance(head, dict) and isinstance(head.get("seq"), int) and isinstance(head.get("head"), str):
                where = what.format(name=e.get("name"), created_at=e.get("created_at"), format=e.get("format"))
                out.append(chain.Anchor(f"{where} ({index})", head["seq"], head["head"]))
    return out


def _where(problem: chain.Problem) -> str:
    where = problem.table or "chain"
    return f"{where} (block {problem.block})" if problem.block is not None else where


def _image_targets(project: StoredProject) -> list[_Target]:
    with project.store.ctx.connect() as conn:
        rows = project.store.images.all_files(conn)
    return [_Target("image", image, None, None, path, sha256) for image, path, sha256 in rows]


def _pool_targets(root: Path) -> tuple[list[_Target], list[tuple]]:
    """Weight files listed by every ``pool/*/pool.json``; unreadable manifests as finished rows."""
    files, bad = pool_weight_files(root)
    targets = [_Target("pool_weights", None, f.pool, f.member, f.path, f.sha256) for f in files]
    rows = [("pool_manifest", None, b.pool, None, str(b.manifest), "unreadable", None, None, None, None, b.error)
            for b in bad]
    return targets, rows


def _check_all(targets: list[_Target], *, progress: bool, workers: int) -> list[_Found]:
    from labkit._util.progress import progress_bar

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(progress_bar(pool.map(_check, targets), total=len(targets), desc="verifying files",
                         unit="file", disable=not progress or len(targets) < 50))


def check_files(targets: list[_Target]) -> list[_Found]:
    """A Dask task: the status of each file (as :func:`verify_project` reports it)."""
    return [_check(t) for t in targets]


def _check_on_cluster(client: Any, targets: list[_Target], *, progress: bool, batch_size: int) -> list[_Found]:
    from labkit._util.dask import map_batches
    from labkit.store.errors import ProjectError

    def name(batch: Sequence[_Target]) -> str:
        return f"{len(batch)} files from {batch[0].path} to {batch[-1].path}"

    def error(batch: Sequence[_Target], exc: BaseException) -> BaseException:
        return ProjectError(f"verifying {name(batch)} failed on the Dask cluster: {type(exc).__name__}: {exc}")

    if not targets:
        return []
    return map_batches(client, check_files, targets, batch_size=batch_size, desc="verifying files (Dask)",
                       unit="file", progress=progress and len(targets) >= 50, name=name, error=error)


def _check(target: _Target) -> _Found:
    try:
        st = os.stat(target.path)
    except (FileNotFoundError, NotADirectoryError):
        return _Found("missing", None, None, None, None)
    except OSError as exc:
        return _Found("unreadable", None, None, None, f"{type(exc).__name__}: {exc.strerror or exc}")
    if not stat.S_ISREG(st.st_mode):
        return _Found("unreadable", None, None, st.st_mtime, "not a regular file")
    try:
        actual = sha256_file(target.path)
    except (FileNotFoundError, NotADirectoryError):  # deleted since the stat
        return _Found("missing", None, None, None, None)
    except OSError as exc:
        return _Found("unreadable", None, st.st_size, st.st_mtime, f"{type(exc).__name__}: {exc.strerror or exc}")
    return _Found("ok" if actual == target.expected else "changed", actual, st.st_size, st.st_mtime, None)
