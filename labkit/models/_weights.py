"""Reading torch weight files without running code stored in them.

``torch.load`` unpickles: a file can name any Python callable, which unpickling calls.
Every checkpoint labkit reads goes through :func:`load_torch_weights`, which loads with
``weights_only=True`` (tensors, containers and numbers only) and turns torch's refusal
into a message that does not suggest ``weights_only=False``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any


class UnsafeCheckpointError(ValueError):
    """A weight file references Python objects besides tensors; it was refused unread."""


def load_torch_weights(path: str | Path, *, what: str) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with actionable errors.

    Parameters
    ----------
    path : path
        The file; a missing file raises ``FileNotFoundError`` as ``open`` does.
    what : str
        What the file is, for messages: ``"SAM checkpoint"``, ``"weights of member 'r18'"``.

    Raises
    ------
    UnsafeCheckpointError
        The file references a Python object (a class or function) that loading would
        call; nothing in it was run.
    ValueError
        Any other file torch cannot read as weights.
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError or others by format
        text = str(exc)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            raise UnsafeCheckpointError(
                f"{what} {path} was refused: besides tensors it references the Python object "
                f"{found.group(1)}, which loading would call (code can hide in such files). labkit "
                "loads only plain weights; save them with torch.save(model.state_dict(), path), "
                "from a copy of the file you trust") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", text, re.S)
        first = detail.group(1) if detail else (text.strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"cannot read {what} {path}: {first.strip()} (expected a file written "
                         "by torch.save(model.state_dict(), path))") from None
