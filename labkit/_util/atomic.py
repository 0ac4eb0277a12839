"""Atomic file writes: a reader sees the old file or the new one, never a partial write.

Every writer in labkit goes through here, so temporary files have one name scheme,
``.<name>.<pid>-<random>.tmp<suffix>`` beside the target (hidden, on the same file
system so the final ``os.replace`` is atomic, and ending in the target's own suffix so
writers that append one, such as ``np.save`` and ``np.savez``, keep the name).
:func:`temp_glob` matches them, for cleaning up after interrupted writes.
"""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "is_temp", "temp_glob", "temp_name", "write_bytes", "write_json", "write_text"]


def temp_name(path: str | os.PathLike) -> Path:
    """A fresh temporary name for writing ``path``: ``.<name>.<pid>-<random>.tmp<suffix>``."""
    p = Path(path)
    return p.with_name(f".{p.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{p.suffix}")


def temp_glob(name: str = "*") -> str:
    """Glob pattern of the temporary files of writes to ``name`` (default: any file)."""
    return f".{name}.*.tmp*"


def is_temp(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary file of an (unfinished) atomic write."""
    name = Path(path).name
    return name.startswith(".") and ".tmp" in name


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mkdir: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    For writers that take a file name (``np.save``, ``torch.onnx.export``). On an
    exception nothing is replaced and the temporary file is removed.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> target = Path(tempfile.mkdtemp()) / "a.npy"
    >>> with atomic_path(target) as tmp:
    ...     np.save(tmp, np.arange(3))
    >>> np.load(target).tolist(), sorted(p.name for p in target.parent.iterdir())
    ([0, 1, 2], ['a.npy'])
    """
    target = Path(path)
    if mkdir:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; return the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 1, sort_keys: bool = True) -> Path:
    """Write ``data`` as JSON to ``path`` atomically; return the path."""
    return write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys))
