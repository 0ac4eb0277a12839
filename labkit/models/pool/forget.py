"""Erasing images from a project's model pools and saved predictions (right to erasure).

:func:`forget_images` removes every trace of some image hashes under ``<project>/pool``
and ``<project>/predictions``:

- each prediction shard is rewritten without their rows (deleted when none remain);
- each pool's ``folds.npz`` is rewritten without them, and its ``pool.json`` gets the new
  ``folds_sha256`` and a record ``training["forgotten"] += [{"at", "images"}]``;
- the pool id hashes the folds, so it changes: the pool's saved predictions folder is
  renamed to the new id, and the other images' predictions are reused, not recomputed.

The members' *weights* were trained on the erased images and keep their influence until
the pool is retrained (``ModelPool.train(project, ..., overwrite=True)``);
:func:`pools_trained_on_forgotten` lists such pools. Every file is replaced atomically
(temporary file, then ``os.replace``), and running again is harmless: an interrupted run
is completed by the next one.
"""
from __future__ import annotations

import json
import os
import time
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from labkit._util.atomic import atomic_path, is_temp, write_json
from labkit._util.clock import utc_iso

from .members import PoolMember, folds_digest, pool_id

__all__ = ["forget_images", "pools_trained_on_forgotten"]

_SHA256_CHARS = frozenset("0123456789abcdef")
#: A temporary file older than this is left over from an interrupted write, not in use.
_STALE_TMP_S = 600.0
_SHARD_ARRAYS = {"sha256", "probs", "meta"}


def forget_images(root: str | os.PathLike, sha256s: Iterable[str]) -> dict[str, Any]:
    """Remove images, by content hash, from every pool and saved prediction of a project.

    Parameters
    ----------
    root : path
        The project folder (``project.root``).
    sha256s : iterable of str
        The erased images' sha256 (64 lowercase hex digits, column ``sha256`` of
        ``project.images()``).

    Returns
    -------
    dict
        Counts of this run, and no hash: ``shards_rewritten``, ``shards_removed`` (left
        empty), ``prediction_rows_removed``, ``tmp_files_removed``, ``pools_affected``
        (pools whose folds held the images), ``fold_rows_removed``, and
        ``pools_needing_retraining``: the names of every pool whose weights were trained
        on erased images, in this erasure or an earlier one.

    Examples
    --------
    >>> import tempfile
    >>> forget_images(tempfile.mkdtemp(), ["0" * 64])["prediction_rows_removed"]
    0
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root {root} is not a folder; expected a project folder (project.root)")
    gone = _check_hashes(sha256s)
    out: dict[str, Any] = {"shards_rewritten": 0, "shards_removed": 0, "prediction_rows_removed": 0,
                           "tmp_files_removed": 0, "pools_affected": 0, "fold_rows_removed": 0}
    retrain: set[str] = set()
    if gone.size:
        # shards first: then a run interrupted anywhere has already cleared the predictions
        for folder in sorted((root / "predictions").glob("*/shards")):
            _purge_shards(folder, gone, out)
        for home in sorted((root / "pool").glob("*/folds.npz")):
            if _forget_in_pool(home.parent, root / "predictions", gone, out):
                retrain.add(home.parent.name)
    retrain.update(p["name"] for p in pools_trained_on_forgotten(root))
    out["pools_needing_retraining"] = sorted(retrain)
    return out


def pools_trained_on_forgotten(root: str | os.PathLike) -> list[dict[str, Any]]:
    """The trained pools of a project whose weights saw images erased since.

    Returns
    -------
    list of dict
        One per pool, sorted by name: ``{"name", "forgotten_images", "first_at",
        "last_at"}`` (UTC ISO times of the erasures). Retraining the pool
        (``ModelPool.train(project, name=..., overwrite=True)``) removes it from the list.
    """
    out = []
    for path in sorted(Path(root).glob("pool/*/pool.json")):
        try:
            records = (json.loads(path.read_text()).get("training") or {}).get("forgotten") or []
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a readable pool manifest ({exc}); retrain the pool "
                             f"(ModelPool.train(..., name={path.parent.name!r}, overwrite=True))") from None
        if records:
            out.append({"name": path.parent.name, "forgotten_images": sum(int(r["images"]) for r in records),
                        "first_at": min(r["at"] for r in records), "last_at": max(r["at"] for r in records)})
    return out


def _check_hashes(sha256s: Iterable[str]) -> np.ndarray:
    if isinstance(sha256s, (str, bytes)):
        raise ValueError("sha256s is a single string; pass a list of image sha256 hex digests")
    hashes = set()
    for h in sha256s:
        if not isinstance(h, str) or len(h) != 64 or not set(h) <= _SHA256_CHARS:
            raise ValueError(f"sha256s holds {h!r}; expected sha256 hex digests (64 lowercase hex "
                             "digits, the sha256 column of project.images())")
        hashes.add(h)
    return np.array(sorted(hashes), dtype="U64")


# ------------------------------------------------------------------ predictions --
def _purge_shards(folder: Path, gone: np.ndarray, out: dict) -> None:
    cutoff = time.time() - _STALE_TMP_S
    for tmp in (p for p in folder.glob(".*.npz") if is_temp(p)):  # this and older labkits' temp names
        # a fresh one may be a write in progress: removed only if it holds erased images
        try:
            if tmp.stat().st_mtime < cutoff or _holds(tmp, gone):
                tmp.unlink()
                out["tmp_files_removed"] += 1
        except FileNotFoundError:
            pass
    for path in sorted(folder.glob("[!.]*.npz")):
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            # unreadable: predict ignores it already, and it may hold erased hashes
            warnings.warn(f"removing unreadable saved predictions {path} ({exc}); they were "
                          "no longer used", RuntimeWarning, stacklevel=3)
            path.unlink(missing_ok=True)
            out["shards_removed"] += 1
            continue
        if set(arrays) != _SHARD_ARRAYS:
            raise ValueError(f"{path} holds arrays {sorted(arrays)}; expected {sorted(_SHARD_ARRAYS)} "
                             "(a prediction shard of labkit's model pool)")
        keys = arrays["sha256"]
        drop = np.isin(keys, gone)
        if not drop.any():
            continue
        out["prediction_rows_removed"] += int(drop.sum())
        if drop.all():
            path.unlink()
            out["shards_removed"] += 1
            continue
        meta = json.loads(str(arrays["meta"]))
        meta["n"] = int((~drop).sum())
        _save_npz(path, sha256=keys[~drop], probs=arrays["probs"][:, ~drop], meta=np.array(json.dumps(meta)))
        out["shards_rewritten"] += 1


def _holds(path: Path, gone: np.ndarray) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            return bool(np.isin(z["sha256"], gone).any())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return False


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub mistakes **arrays for its options


# ------------------------------------------------------------------------ pools --
def _forget_in_pool(home: Path, predictions: Path, gone: np.ndarray, out: dict) -> bool:
    """Erase ``gone`` from one pool folder; True when its folds held some of them."""

    with np.load(home / "folds.npz", allow_pickle=False) as z:
        folds = {k: z[k] for k in z.files}
    missing = {"sha256", "fold"} - set(folds)
    if missing:
        raise ValueError(f"{home / 'folds.npz'} has arrays {sorted(folds)}, missing {sorted(missing)}; "
                         "retrain the pool (ModelPool.train(..., overwrite=True))")
    keep = ~np.isin(folds["sha256"], gone)
    removed = int((~keep).sum())
    if not removed:
        return False
    (home / "decoded.npy").unlink(missing_ok=True)  # the decoded pixels of a running or killed training
    kept = {k: v[keep] for k, v in folds.items()}
    manifest = home / "pool.json"
    if manifest.exists():  # else a training run that never finished: only its folds to clean
        data = json.loads(manifest.read_text())
        order = np.argsort(kept["sha256"], kind="stable")  # as ModelPool keeps its folds
        new_digest = folds_digest(kept["sha256"][order], kept["fold"][order].astype(np.int64))
        old_digest = data["folds_sha256"]
        if old_digest != new_digest:  # else pool.json was updated by an interrupted earlier run
            training = dict(data.get("training") or {})
            training["forgotten"] = [*training.get("forgotten", []), {"at": utc_iso(), "images": removed}]
            members = [PoolMember(**{**m, "weights": tuple(m["weights"]), "sha256": tuple(m["sha256"]),
                                     "mean": tuple(m["mean"]), "std": tuple(m["std"])})
                       for m in data["members"]]
            old_id = pool_id(members, data["classes"], data["image_size"], old_digest)
            new_id = pool_id(members, data["classes"], data["image_size"], new_digest)
            changes = {"folds_sha256": new_digest, "training": training}
            _move_predictions(predictions / old_id, predictions / new_id, changes)
            write_json(manifest, {**data, **changes})
    _save_npz(home / "folds.npz", **kept)
    out["pools_affected"] += 1
    out["fold_rows_removed"] += removed
    return True


def _move_predictions(old: Path, new: Path, changes: dict) -> None:
    """Rename a pool's predictions folder to its new id (merging into one already there)."""
    if old.is_dir() and old != new:
        if not new.exists():
            os.replace(old, new)
        else:
            (new / "shards").mkdir(parents=True, exist_ok=True)
            for shard in sorted((old / "shards").glob("[!.]*.npz")):
                os.replace(shard, new / "shards" / shard.name)
            for leftover in sorted(old.rglob("*"), reverse=True):  # its pool.json, temp files of dead writes
                if leftover.is_dir():
                    leftover.rmdir()
                else:
                    leftover.unlink()
            old.rmdir()
    path = new / "pool.json"
    if path.exists():
        write_json(path, {**json.loads(path.read_text()), **changes})
