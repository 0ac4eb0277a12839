"""Reading trained pools' manifests (``<project>/pool/<name>/pool.json``) without building them.

For checks that need only what a manifest records, such as ``labkit verify``: which
weight files each member has, and the sha256 each had when the pool was trained.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = ["ManifestError", "WeightFile", "pool_weight_files"]


class WeightFile(NamedTuple):
    """One weight file of a trained pool, with the hash recorded at training."""
    pool: str
    member: str
    path: Path
    sha256: str


class ManifestError(NamedTuple):
    """A ``pool.json`` that cannot be read, and why."""
    pool: str
    manifest: Path
    error: str


def pool_weight_files(root: str | os.PathLike) -> tuple[list[WeightFile], list[ManifestError]]:
    """The weight files of every trained pool under ``<root>/pool``, and the unreadable manifests.

    Examples
    --------
    >>> import tempfile
    >>> pool_weight_files(tempfile.mkdtemp())
    ([], [])
    """
    files: list[WeightFile] = []
    bad: list[ManifestError] = []
    for manifest in sorted((Path(root) / "pool").glob("*/pool.json")):
        home = manifest.parent
        try:
            members = _members(manifest)
        except (OSError, ValueError) as exc:
            bad.append(ManifestError(home.name, manifest, str(exc)))
            continue
        for name, weights, digests in members:
            files += [WeightFile(home.name, name, home / w, d) for w, d in zip(weights, digests)]
    return files, bad


def _members(manifest: Path) -> list[tuple[str, Sequence[str], Sequence[str]]]:
    """``(name, weights, sha256)`` per member of a pool.json (the format ModelPool.load reads)."""
    data = json.loads(manifest.read_text(encoding="utf-8"))
    members = data.get("members") if isinstance(data, dict) else None
    if not isinstance(members, list):
        raise ValueError(f"{manifest} has no 'members' list; it is not a labkit pool manifest")
    out = []
    for i, m in enumerate(members):
        ok = isinstance(m, dict) and isinstance(m.get("weights"), list) and isinstance(m.get("sha256"), list) \
            and len(m["weights"]) == len(m["sha256"]) \
            and all(isinstance(v, str) for v in m["weights"] + m["sha256"])
        if not ok:
            raise ValueError(f"{manifest}: member {i} needs 'weights' and 'sha256', two lists of "
                             f"strings of the same length; found {str(m)[:200]}")
        out.append((str(m.get("name", i)), m["weights"], m["sha256"]))
    return out
