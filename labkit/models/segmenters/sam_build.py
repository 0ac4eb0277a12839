"""Building SAM models: architectures, checkpoints and model ids.

:func:`build_sam` assembles ``segment_anything.modeling.Sam`` from its own modules with
the hyper-parameters of ``segment_anything.build_sam`` (ViT-B/L/H), and lets tests shrink
any dimension through ``build_options`` so the real loading path runs on a tiny model.
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import partial
from pathlib import Path
from typing import Any

from labkit._util.atomic import write_json
from labkit._util.hashing import sha256_file

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "sam_vit_b": dict(encoder_embed_dim=768, encoder_depth=12, encoder_num_heads=12,
                      encoder_global_attn_indexes=(2, 5, 8, 11)),
    "sam_vit_l": dict(encoder_embed_dim=1024, encoder_depth=24, encoder_num_heads=16,
                      encoder_global_attn_indexes=(5, 11, 17, 23)),
    "sam_vit_h": dict(encoder_embed_dim=1280, encoder_depth=32, encoder_num_heads=16,
                      encoder_global_attn_indexes=(7, 15, 23, 31)),
}

# What segment_anything.build_sam fixes for every size; any of these can be overridden.
COMMON: dict[str, Any] = dict(image_size=1024, patch_size=16, prompt_embed_dim=256, window_size=14,
                              mlp_ratio=4.0, mask_in_chans=16, decoder_depth=2, decoder_mlp_dim=2048,
                              decoder_num_heads=8, iou_head_depth=3, iou_head_hidden_dim=256)

# A ViT-B-shaped SAM shrunk to 64 px input, 8 x 8 embedding and width 32: encodes in
# milliseconds with random weights, so tests run the real code paths (not for labeling).
TINY_OPTIONS: dict[str, Any] = dict(
    image_size=64, patch_size=8, encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2,
    encoder_global_attn_indexes=(1,), window_size=4, prompt_embed_dim=32, mlp_ratio=2.0, mask_in_chans=4,
    decoder_mlp_dim=64, decoder_num_heads=2, iou_head_hidden_dim=32)

CHECKPOINTS = {  # the official files (https://github.com/facebookresearch/segment-anything#model-checkpoints)
    "sam_vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
    "sam_vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "sam_vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
}

CHECKPOINT_ENV = "LABKIT_SAM_CHECKPOINT"


class MissingCheckpointError(FileNotFoundError):
    """A SAM segmenter was asked for without a usable checkpoint file; the message says where to get one."""

    def __str__(self) -> str:  # FileNotFoundError's default formatting drops a single message
        return str(self.args[0]) if self.args else ""


def build_sam(arch: str, **build_options: Any):
    """A randomly initialised ``segment_anything`` ``Sam`` of architecture ``arch``.

    Parameters
    ----------
    arch : {"sam_vit_b", "sam_vit_l", "sam_vit_h"}
    **build_options
        Overrides of :data:`ARCHITECTURES` and :data:`COMMON` (e.g. ``encoder_depth=2,
        image_size=64``), for tests; with none, the model is exactly
        ``segment_anything.sam_model_registry[arch[4:]]``'s.
    """
    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown SAM architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    o = {**COMMON, **ARCHITECTURES[arch]}
    unknown = sorted(set(build_options) - set(o))
    if unknown:
        raise ValueError(f"unknown build_options {unknown}; valid: {sorted(o)}")
    o.update(build_options)
    emb = o["image_size"] // o["patch_size"]
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=o["encoder_depth"], embed_dim=o["encoder_embed_dim"], img_size=o["image_size"],
            mlp_ratio=o["mlp_ratio"], norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=o["encoder_num_heads"], patch_size=o["patch_size"], qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=tuple(o["encoder_global_attn_indexes"]), window_size=o["window_size"],
            out_chans=o["prompt_embed_dim"]),
        prompt_encoder=PromptEncoder(
            embed_dim=o["prompt_embed_dim"], image_embedding_size=(emb, emb),
            input_image_size=(o["image_size"], o["image_size"]), mask_in_chans=o["mask_in_chans"]),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=o["decoder_depth"], embedding_dim=o["prompt_embed_dim"],
                                          mlp_dim=o["decoder_mlp_dim"], num_heads=o["decoder_num_heads"]),
            transformer_dim=o["prompt_embed_dim"], iou_head_depth=o["iou_head_depth"],
            iou_head_hidden_dim=o["iou_head_hidden_dim"]),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def build_tiny_sam(seed: int = 0):
    """A tiny random SAM (:data:`TINY_OPTIONS`, fixed seed) for tests of code that needs one.

    Examples
    --------
    >>> sam = build_tiny_sam()
    >>> sam.image_encoder.img_size, tuple(sam.prompt_encoder.image_embedding_size)
    (64, (8, 8))
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_sam("sam_vit_b", **TINY_OPTIONS)


def resolve_checkpoint(name: str, checkpoint: str | os.PathLike | None) -> Path:
    """The checkpoint path to use: the argument, else ``$LABKIT_SAM_CHECKPOINT``; must be a file."""
    src = "checkpoint"
    if checkpoint is None:
        checkpoint, src = os.environ.get(CHECKPOINT_ENV) or None, f"${CHECKPOINT_ENV}"
    url = CHECKPOINTS.get(name, CHECKPOINTS["sam_vit_b"])
    how = (f"Download the official weights ({url}, listed at https://github.com/facebookresearch/"
           f"segment-anything#model-checkpoints) and pass checkpoint=PATH (CLI: --checkpoint PATH) or set "
           f"{CHECKPOINT_ENV}=PATH. Without a checkpoint, load_segmenter('grabcut') works out of the box.")
    if checkpoint is None:
        raise MissingCheckpointError(f"{name} needs a checkpoint file and none was given. {how}")
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise MissingCheckpointError(f"{name}: {src} {str(path)!r} is not a file. {how}")
    return path


def load_state_dict(path: Path) -> dict:
    """Read a SAM checkpoint safely (``weights_only``) onto the CPU.

    A file that references Python objects besides tensors raises
    :class:`labkit.models._weights.UnsafeCheckpointError` and nothing in it runs.
    """
    from labkit.models._weights import load_torch_weights

    sd = load_torch_weights(path, what="SAM checkpoint")
    if not isinstance(sd, dict) or "image_encoder.patch_embed.proj.weight" not in sd:
        keys = list(sd)[:5] if isinstance(sd, dict) else type(sd).__name__
        raise ValueError(f"{path} is not a segment-anything checkpoint (no image_encoder.patch_embed weights; "
                         f"found {keys})")
    return sd


def infer_arch(state_dict: dict) -> str:
    """``sam_vit_b``/``l``/``h`` from a state dict's encoder width and depth."""
    width = int(state_dict["image_encoder.patch_embed.proj.weight"].shape[0])
    depth = len({k.split(".")[2] for k in state_dict if k.startswith("image_encoder.blocks.")})
    for name, a in ARCHITECTURES.items():
        if a["encoder_embed_dim"] == width and a["encoder_depth"] == depth:
            return name
    raise ValueError(f"the checkpoint's image encoder (width {width}, depth {depth}) is none of "
                     f"{sorted(ARCHITECTURES)}")


def load_weights(sam, state_dict: dict, *, name: str, path: Path) -> None:
    """``load_state_dict(strict=True)`` with a message that says which model the file is for."""
    try:
        sam.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        try:
            hint = f" It looks like a {infer_arch(state_dict)} checkpoint; load that name instead."
        except (ValueError, KeyError):
            hint = ""
        raise ValueError(f"checkpoint {path} does not fit {name}.{hint} ({str(exc).splitlines()[0]})") from None


def file_sha256(path: Path, *, memo_dir: Path | None = None) -> str:
    """sha256 of a (large) file, remembered in ``memo_dir`` by path, size and mtime."""
    st = path.stat()
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    memo = memo_dir / "checkpoint_sha256.json" if memo_dir is not None else None
    known: dict[str, str] = {}
    if memo is not None and memo.is_file():
        try:
            known = json.loads(memo.read_text())
        except (OSError, ValueError):
            known = {}
        if ident in known:
            return known[ident]
    digest = sha256_file(path)
    if memo is not None:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            known[ident] = digest
            write_json(memo, known, indent=0, sort_keys=False)
        except OSError:
            pass  # the memo only saves time
    return digest


def module_sha256(module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes and values): its weights' identity."""
    import torch

    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        t = v.detach().to("cpu").contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def options_tag(build_options: dict[str, Any]) -> str:
    """Short hash of non-default architecture options, for model ids."""
    return hashlib.sha256(json.dumps(build_options, sort_keys=True, default=list).encode()).hexdigest()[:8]
