"""What a report records about itself: labkit's version, the parameters, the time and
the hashes of the data it read (the project database, the images' content hashes and the
head of the project's hash chain, which ``labkit verify`` checks is still in the chain)."""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from labkit._util.hashing import sha256_file, sha256_rows
from labkit._util.versions import package_versions


def data_fingerprint(location: str | Path) -> dict[str, Any]:
    """Hashes of a project's data, read without changing anything.

    - ``files``: sha256 of ``project.db`` (and its ``-wal`` journal when present) of a
      folder project;
    - ``images``: how many, and a sha256 over the sorted (id, path, sha256) rows: the
      image content hashes pinned at import (the audit re-hashes the files themselves);
    - ``annotations``: how many live ones, and a sha256 over (id, version, deleted);
    - ``chain``: the last block of the project's hash chain (``{"seq", "head"}``), so a
      later ``labkit verify`` can tell whether blocks were removed or rewritten since.
    """
    from labkit.services.project import Project
    from labkit.store.engine import is_url, safe_location

    out: dict[str, Any] = {"project": safe_location(location)}
    if not is_url(location):
        root = Path(location)
        out["files"] = {p.name: sha256_file(p) for p in (root / "project.db", root / "project.db-wal")
                        if p.is_file()}
    p = Project.open(location)
    try:
        images = p.images()
        ann = p.annotations(include_deleted=True)
        head = p.store.ctx.chain_head()
    finally:
        p.close()
    out["images"] = {"count": int(len(images)),
                     "sha256_of_hashes": sha256_rows(zip(images.index.tolist(), images["path"], images["sha256"]))}
    out["annotations"] = {"count": int((~ann["deleted"]).sum()),
                          "sha256_of_versions": sha256_rows(zip(ann.index.tolist(), ann["version"],
                                                                 ann["deleted"]))}
    out["chain"] = head.to_dict() if head is not None else None
    return out


def environment() -> dict[str, Any]:
    versions = package_versions("papermill", "nbconvert", "pandas", "numpy")
    return {"labkit": versions.pop("labkit"), "python": platform.python_version(), **versions}
