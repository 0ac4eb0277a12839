"""Letting a background image encoder yield to interactive prompts on a small CPU.

Measured on the 2-core development machine (see ``benchmarks/bench_segmenter_latency.py``):
an encoder thread competing with the interactive decoder slowed the decoder 5-10x.
Three measures together keep prompts responsive while the next images are encoded:

1. The background thread runs torch with **one intra-op thread** (``torch.set_num_threads``
   acts per thread once a thread has run torch; the Prefetcher restores the process
   default, which the call also changes for threads started later).
2. On Linux the thread **lowers its own scheduling priority** (nice 19), so the kernel
   gives the cores to the decoder whenever both want them.
3. :class:`EncoderGate` puts a **yield point** before every sub-module of the encoder's
   blocks (forward pre-hooks that act only in background threads): while a foreground
   prediction or encoding is running, the background encoder waits at its next yield
   point, and a cancelled job stops there.

One run of the benchmark (ViT-B, random weights, ONNX decoder, box prompts 150 ms apart,
other work on the machine; p50 / p95 ms): no background encoder 48 / 57; a background
encoder on all threads 122 / 141; on one thread 79 / 117; one thread + nice 19 72 / 112;
the Prefetcher (all three measures) 64 / 112. The PyTorch decoder suffered most (two
threads: 98 ms idle, 1134 ms beside the Prefetcher), so while a background job runs it
decodes on one thread (221 ms). A separate encoder process was not needed, and would
double the model's memory.
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Cancelled(Exception):
    """Raised at a yield point to abandon a background encoding."""


class EncoderGate:
    """Foreground work takes priority over background encoders at their yield points."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._tls = threading.local()
        self._hooked: set[int] = set()

    def install(self, module) -> None:
        """Add a yield point before each sub-module of ``module`` (once per module)."""
        for m in module.modules():
            if id(m) not in self._hooked:
                m.register_forward_pre_hook(self._hook)
                self._hooked.add(id(m))

    @contextmanager
    def foreground(self) -> Iterator[None]:
        """Mark interactive work: background encoders pause at their next yield point."""
        with self._cond:
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    @property
    def busy(self) -> bool:
        return self._active > 0

    @contextmanager
    def background(self, check: Callable[[], None] | None = None) -> Iterator[None]:
        """Run the body as background work; ``check()`` runs at every yield point (may raise)."""
        self._tls.check = check
        self._tls.points = 0
        self._tls.on = True
        try:
            yield
        finally:
            self._tls.on = False
            self._tls.check = None

    def points_passed(self) -> int:
        return getattr(self._tls, "points", 0)

    def _hook(self, module, args) -> None:
        if not getattr(self._tls, "on", False):
            return
        self._tls.points += 1
        if self._tls.check is not None:
            self._tls.check()
        if self._active:
            with self._cond:
                while self._active:
                    self._cond.wait(0.5)
            if self._tls.check is not None:
                self._tls.check()


def lower_priority(nice: int = 19) -> bool:
    """Lower the calling thread's CPU priority (Linux); True when it worked."""
    if not sys.platform.startswith("linux") or not nice:
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + int(nice)))
        return True
    except (OSError, AttributeError):
        return False
