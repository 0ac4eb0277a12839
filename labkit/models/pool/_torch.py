"""The torch side of the pool: device choice, timm models, checkpoints, training, inference.

CPU or CUDA is chosen at run time (``device=None``: CUDA when available), with no code
change: models and inputs are ``channels_last``; on CUDA, forward passes run under
``torch.autocast("cuda")`` (float16, with a gradient scaler when training).
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from labkit._util.atomic import write_bytes


def pick_device(device: Any = None):
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for but CUDA is not available here; "
                         "pass device=None to use the CPU")
    return dev


@contextmanager
def num_threads(n: int | None):
    """Run the block with ``torch.set_num_threads(n)`` (``None``: leave torch's setting)."""
    import torch

    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads is {n!r}; expected a positive integer or None")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def autocast(device):
    import torch

    return torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext()


def check_arch(arch: str) -> str:
    """``arch`` if timm knows it, else a ValueError with close matches."""
    import timm

    if not isinstance(arch, str) or not timm.is_model(arch):
        names = timm.list_models()
        close = difflib.get_close_matches(str(arch), names, n=5, cutoff=0.6)
        hint = f"; did you mean {close}?" if close else ""
        raise ValueError(f"unknown timm architecture {arch!r}{hint} (timm.list_models() lists "
                         f"all {len(names)}; e.g. resnet18, mobilenetv3_small_100, efficientnet_b0)")
    return arch


def create(arch: str, num_classes: int):
    """A randomly initialised timm classifier (never downloads weights).

    The initialisation draws from torch's global generator, which is restored afterwards:
    building a pool never changes the caller's random stream.
    """
    import timm
    import torch

    with torch.random.fork_rng(devices=[]):
        return timm.create_model(check_arch(arch), pretrained=False, num_classes=num_classes)


def check_input_size(arch: str, num_classes: int, size: int) -> None:
    """Raise ValueError unless ``arch`` runs on ``size`` x ``size`` inputs (a 2-image forward pass)."""
    import torch

    model = create(arch, num_classes).eval()
    try:
        with torch.inference_mode():
            model(torch.zeros(2, 3, size, size))
    except RuntimeError as exc:
        raise ValueError(f"{arch} does not accept {size} x {size} inputs ({str(exc).splitlines()[0]}); "
                         "use a larger image_size or another architecture") from None


def default_norm(arch: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """timm's mean and std for ``arch`` (ImageNet's for most models)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(arch) if hasattr(timm.models, "get_pretrained_cfg") else None
    mean = tuple(getattr(cfg, "mean", None) or (0.485, 0.456, 0.406))
    std = tuple(getattr(cfg, "std", None) or (0.229, 0.224, 0.225))
    return mean, std


def load_weights(model, path: Path, *, what: str) -> None:
    """Load a state_dict (or a dict holding one under ``state_dict``/``model``) into ``model``.

    Read with ``weights_only=True``: a file that references other Python objects raises
    :class:`labkit.models._weights.UnsafeCheckpointError` and nothing in it runs.
    """
    import torch

    from labkit.models._weights import load_torch_weights

    state = load_torch_weights(path, what=f"weights of {what}")
    if isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        for key in ("state_dict", "model", "state_dict_ema"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ValueError(f"{what}: {path} holds a {type(state).__name__}, not a state_dict; save "
                         "weights with torch.save(model.state_dict(), path)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise ValueError(f"{what}: the weights in {path} do not fit the architecture (wrong arch or "
                         f"number of classes?): {' '.join(first)}") from None


def prepare(model, device):
    import torch

    return model.to(device=device, memory_format=torch.channels_last).eval()


def normalizer(mean: Sequence[float], std: Sequence[float], device):
    """``uint8 (B, 3, S, S)`` -> normalised float32, channels_last, on ``device``."""
    import torch

    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1) * 255
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1) * 255

    def norm(x):
        x = x.to(device, non_blocking=True).float()
        return ((x - m) / s).contiguous(memory_format=torch.channels_last)
    return norm


def softmax_probs(model, x, device) -> np.ndarray:
    """``(B, K)`` float32 probabilities of ``model`` for the normalised batch ``x``."""
    import torch

    with torch.inference_mode(), autocast(device):
        logits = model(x)
    return torch.softmax(logits.float(), dim=1).cpu().numpy()


def _shift(x, pad: int, gen):
    """Random translation by up to ``pad`` pixels per image (zero fill)."""
    import torch

    if pad <= 0:
        return x
    B, _, H, W = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (B,), generator=gen).tolist()
    dy = torch.randint(0, 2 * pad + 1, (B,), generator=gen).tolist()
    return torch.stack([padded[b, :, dy[b]:dy[b] + H, dx[b]:dx[b] + W] for b in range(B)])


def train_model(arch: str, x: np.ndarray, y: np.ndarray, *, num_classes: int, epochs: int,
                batch_size: int, lr: float, seed: int, device, mean, std, augment: bool = True,
                progress=None) -> dict:
    """Train a fresh ``arch`` on uint8 images ``x (n, 3, S, S)`` with labels ``y``; return its state_dict.

    AdamW with a one-cycle learning-rate schedule, label smoothing 0.1, and random
    translations of up to S/8 pixels. Deterministic for a seed on the CPU.
    """
    import torch

    n = len(y)
    if n < 2:
        raise ValueError(f"cannot train {arch} on {n} image(s); give the pool more labeled images "
                         "or larger fractions")
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        return _train(arch, x, y, num_classes, epochs, batch_size, lr, seed, device, mean, std,
                      augment, progress)


def _train(arch, x, y, num_classes, epochs, batch_size, lr, seed, device, mean, std, augment,
           progress) -> dict:
    import torch

    n = len(y)
    gen = torch.Generator().manual_seed(seed)
    model = create(arch, num_classes).to(device=device, memory_format=torch.channels_last)
    model.train()
    norm = normalizer(mean, std, device)
    bs = min(batch_size, n)
    steps_per_epoch = max(1, n // bs)  # drop the last partial batch: BatchNorm needs > 1 sample
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.25)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    xt = torch.from_numpy(np.ascontiguousarray(x))
    yt = torch.from_numpy(np.asarray(y, np.int64))
    pad = max(1, x.shape[-1] // 8) if augment else 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for s in range(steps_per_epoch):
            idx = order[s * bs:(s + 1) * bs]
            xb = norm(_shift(xt[idx], pad, gen))
            yb = yt[idx].to(device, non_blocking=True)
            with autocast(device):
                loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            sched.step()
            if progress is not None:
                progress.update(len(idx))
        last = float(loss.detach())  # once per epoch: a per-step check would sync CUDA every step
        if not math.isfinite(last):
            raise FloatingPointError(f"training {arch} diverged (loss {last}); lower lr")
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def save_state(state: dict, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a checkpoint.

    Serialised in memory first: torch names the archive inside the file after the file, so
    equal weights saved under different temporary names would hash differently.
    """
    import io

    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes(path, buf.getvalue())
