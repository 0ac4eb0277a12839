"""The segmenter registry: ``load_segmenter(name, ...)``, ``list_segmenters()``, ``default_segmenter()``.

Like timm's ``create_model``/``list_models`` and segment-anything's ``sam_model_registry``:
each name maps to a factory ``factory(*, checkpoint, device, cache_dir, **options)``.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.models.segmenters.base import Segmenter


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Segmenter]
    description: str
    needs_checkpoint: bool


_REGISTRY: dict[str, _Entry] = {}


def register_segmenter(name: str, factory: Callable[..., Segmenter], *, description: str = "",
                       needs_checkpoint: bool = False, overwrite: bool = False) -> None:
    """Add a segmenter under ``name``.

    ``factory(*, checkpoint=None, device=None, cache_dir=None, **options)`` returns a
    :class:`~labkit.models.segmenters.base.Segmenter`. Registering an existing name is
    an error unless ``overwrite=True``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a segmenter name must be a non-empty string, got {name!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"a segmenter named {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = _Entry(factory, description, needs_checkpoint)


def list_segmenters() -> list[str]:
    """Names accepted by :func:`load_segmenter`, sorted.

    Examples
    --------
    >>> list_segmenters()
    ['grabcut', 'sam_vit_b', 'sam_vit_h', 'sam_vit_l']
    """
    return sorted(_REGISTRY)


def describe_segmenters() -> dict[str, str]:
    """One line per registered segmenter."""
    return {n: _REGISTRY[n].description for n in list_segmenters()}


def load_segmenter(name: str, *, checkpoint: str | os.PathLike | None = None, device: Any = None,
                   cache_dir: str | os.PathLike | None = None, **options: Any) -> Segmenter:
    """Create a registered segmenter.

    Parameters
    ----------
    name : str
        One of :func:`list_segmenters`: ``grabcut`` (OpenCV, no weights), ``sam_vit_b``,
        ``sam_vit_l``, ``sam_vit_h`` (segment-anything; need a checkpoint).
    checkpoint : path, optional
        SAM weights (default ``$LABKIT_SAM_CHECKPOINT``). The official files are listed at
        https://github.com/facebookresearch/segment-anything#model-checkpoints.
    device : str, optional
        ``cuda`` when available, else ``cpu``.
    cache_dir : path, optional
        Embedding cache (default :func:`~labkit.models.embeddings.default_cache_dir`); use
        :func:`~labkit.models.embeddings.project_cache_dir` to share a project's cache.
    **options
        Passed to the segmenter: for SAM ``decoder`` (``"auto"``, ``"torch"``, ``"onnx"``),
        ``onnx_threads``, ``memory_items``, ``build_options`` (architecture overrides, for
        tests); for GrabCut ``iterations``, ``work_size``, ``margin``, ``seed_radius``.

    Examples
    --------
    >>> load_segmenter("grabcut").name
    'grabcut'
    >>> load_segmenter("grabcat")
    Traceback (most recent call last):
    ...
    ValueError: unknown segmenter 'grabcat'; did you mean 'grabcut'? Registered: grabcut, sam_vit_b, ...
    """
    entry = _REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise ValueError(f"unknown segmenter {name!r}; {hint}Registered: {', '.join(list_segmenters())}")
    return entry.factory(checkpoint=checkpoint, device=device,
                         cache_dir=Path(cache_dir) if cache_dir is not None else None, **options)


def default_segmenter(**kwargs: Any) -> Segmenter:
    """SAM when ``$LABKIT_SAM_CHECKPOINT`` names a checkpoint file, else GrabCut.

    The SAM size (ViT-B/L/H) is read from the checkpoint. A variable that names a missing
    file is an error rather than a silent switch to GrabCut. ``kwargs`` go to
    :func:`load_segmenter` (``device``, ``cache_dir``, options).
    """
    from labkit.models.segmenters.sam_build import (
        CHECKPOINT_ENV,
        MissingCheckpointError,
        infer_arch,
        load_state_dict,
    )

    path = os.environ.get(CHECKPOINT_ENV)
    if not path:
        return load_segmenter("grabcut", **kwargs)
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingCheckpointError(f"${CHECKPOINT_ENV} is {path!r}, which is not a file; fix or unset it "
                                     "(unset, labkit uses GrabCut)")
    sd = load_state_dict(p)
    return load_segmenter(infer_arch(sd), checkpoint=p, _state_dict=sd, **kwargs)


# ------------------------------------------------------------------ built-ins --
def _grabcut(*, checkpoint=None, device=None, cache_dir=None, **options) -> Segmenter:
    from labkit.models.segmenters.grabcut import GrabCutSegmenter

    if checkpoint is not None:
        raise ValueError("grabcut takes no checkpoint (it has no weights); drop checkpoint=")
    return GrabCutSegmenter(**options)


def _sam_factory(arch: str) -> Callable[..., Segmenter]:
    def factory(*, checkpoint=None, device=None, cache_dir=None, build_options: dict | None = None,
                _state_dict: dict | None = None, **options) -> Segmenter:
        from labkit.models.embeddings import default_cache_dir
        from labkit.models.segmenters import sam_build as B
        from labkit.models.segmenters.sam import SamSegmenter

        path = B.resolve_checkpoint(arch, checkpoint)
        build_options = dict(build_options or {})
        sam = B.build_sam(arch, **build_options)
        sd = _state_dict if _state_dict is not None else B.load_state_dict(path)
        B.load_weights(sam, sd, name=arch, path=path)
        del sd
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        tag = f"+{B.options_tag(build_options)}" if build_options else ""
        model_id = f"{arch}{tag}-{B.file_sha256(path, memo_dir=cache)[:16]}"
        return SamSegmenter(sam, model_id=model_id, name=arch, device=device, cache_dir=cache, **options)

    factory.__name__ = f"load_{arch}"
    return factory


register_segmenter("grabcut", _grabcut, description="OpenCV GrabCut on the box; no weights (the default)")
for _arch, _size in [("sam_vit_b", "ViT-B, 375 MB"), ("sam_vit_l", "ViT-L, 1.2 GB"), ("sam_vit_h", "ViT-H, 2.6 GB")]:
    register_segmenter(_arch, _sam_factory(_arch), needs_checkpoint=True,
                       description=f"Segment Anything {_size} checkpoint")
