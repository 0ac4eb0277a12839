"""Content hashes: sha256 of files (read in blocks) and of JSON-ready values."""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any

__all__ = ["sha256_file", "sha256_json", "sha256_rows"]

_BLOCK = 1 << 22


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = f.write_bytes(b"abc")
    >>> sha256_file(f)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def sha256_json(value: Any) -> str:
    """Hex sha256 of ``value`` as canonical JSON (sorted keys; non-JSON values by ``str``)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def sha256_rows(rows: Iterable[Any]) -> str:
    """Hex sha256 over rows, each as canonical JSON on its own line (order matters)."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r, default=str, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()
