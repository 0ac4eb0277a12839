"""``Prefetcher``: encode the next images of a labeling queue in the background.

The worker is a daemon thread in the labeling kernel, sharing the segmenter (and so its
model weights and cache). It yields to interactive prompts as described in
:mod:`labkit.models._background`: one torch thread, the lowest CPU priority (Linux), and
a pause at the next encoder sub-block whenever the segmenter is serving a prompt or
encoding an image in the foreground. Measured figures are in
``benchmarks/bench_segmenter_latency.py``.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from labkit.models._background import Cancelled, lower_priority
from labkit.store.protocol import ProjectLike

log = logging.getLogger(__name__)


class Prefetcher:
    """Fill a segmenter's embedding cache for the images of a queue, in order, in a thread.

    Parameters
    ----------
    segmenter : Segmenter
        Usually a :class:`~labkit.models.SamSegmenter`; one without embeddings (GrabCut)
        makes every image count as skipped.
    project : labkit.Project
    queue_ids : iterable of int
        Image ids, in the order they will be labeled. Replace them with :meth:`set_queue`.
    threads : int
        torch intra-op threads for the background encoder (1 leaves a core to prompts).
    nice : int
        How much to lower the worker thread's priority on Linux (0 = not at all).

    Attributes
    ----------
    done : list of int
        Ids encoded by this prefetcher.
    skipped : list of int
        Ids already cached (or taken over by a foreground ``set_image``).
    failed : dict of int to str
        Ids that could not be read or encoded, with the reason.

    Examples
    --------
    ::

        seg = load_segmenter("sam_vit_b", checkpoint=ckpt, cache_dir=project_cache_dir(project))
        with Prefetcher(seg, project, queue[1:]):  # started here, stopped on exit
            image, key = project_image(project, queue[0])
            seg.set_image(image, key=key)      # later images come from the cache
    """

    def __init__(self, segmenter: Any, project: ProjectLike, queue_ids: Iterable[int] = (), *, threads: int = 1,
                 nice: int = 19):
        self.segmenter = segmenter
        self.project = project
        self.threads = max(1, int(threads))
        self.nice = int(nice)
        self._cond = threading.Condition()
        self._queue: deque[int] = deque()
        self._hashes: dict[int, str] = {}
        self._stop = False
        self._paused = False
        self._held = False
        self._thread: threading.Thread | None = None
        self.current: int | None = None
        self.done: list[int] = []
        self.skipped: list[int] = []
        self.failed: dict[int, str] = {}
        self.set_queue(queue_ids)

    # ------------------------------------------------------------------ control --
    def set_queue(self, queue_ids: Iterable[int]) -> None:
        """Replace the pending images (the one being encoded finishes first)."""
        ids = [int(i) for i in queue_ids]
        table = self.project.images()
        missing = [i for i in ids if i not in table.index]
        if missing:
            raise ValueError(f"image ids not in the project: {missing[:20]}; see project.images()")
        with self._cond:
            self._hashes.update({i: str(table.at[i, "sha256"]) for i in ids})
            self._queue = deque(ids)
            self._cond.notify_all()

    def start(self) -> Prefetcher:
        """Start the worker thread (once)."""
        if self._thread is not None:
            return self
        before = self._torch_threads()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="labkit-prefetch", daemon=True)
        self._thread.start()
        ready.wait()
        if before is not None:
            # torch.set_num_threads in the worker also changed the default of threads started
            # later; restore it (this leaves the worker's own setting alone).
            import torch

            torch.set_num_threads(before)
        return self

    def pause(self) -> None:
        """Hold the worker at its next yield point until :meth:`resume`."""
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the worker (an encoding in progress is abandoned at its next yield point)."""
        with self._cond:
            self._stop = True
            self._paused = False
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the queue is empty and nothing is being encoded; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: (not self._queue and self.current is None) or self._stop,
                                       timeout)

    def wait_held(self, timeout: float | None = None) -> bool:
        """Block until the worker holds for a :meth:`pause`; False on timeout (or once stopped).

        Held means it waits either at a yield point of the image it is encoding or, with
        images pending, before taking the next one. Until :meth:`resume` it then encodes
        nothing, so a caller (or a test) knows that the pause took effect, e.g. before
        inspecting :attr:`pending` or changing the queue.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._held or self._stop, timeout)
            return self._held and not self._stop

    @property
    def pending(self) -> list[int]:
        with self._cond:
            return list(self._queue)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Prefetcher:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"Prefetcher(done={len(self.done)}, skipped={len(self.skipped)}, failed={len(self.failed)}, "
                f"pending={len(self.pending)}, current={self.current})")

    # ------------------------------------------------------------------- worker --
    def _torch_threads(self) -> int | None:
        if not getattr(self.segmenter, "has_embeddings", False):
            return None
        import torch

        return torch.get_num_threads()

    def _set_held(self, held: bool) -> None:
        """Record (under ``_cond``) whether the worker is holding for a pause, for :meth:`wait_held`."""
        if held != self._held:
            self._held = held
            self._cond.notify_all()

    def _may_take(self) -> bool:
        """The worker's wait condition (under ``_cond``): stop, or an image to take and no pause."""
        go = bool(self._stop or (self._queue and not self._paused))
        self._set_held(not go and bool(self._queue))
        return go

    def _check(self) -> None:
        """Runs at each yield point of the encoder: honour pause and stop.

        A pause does not hold an image that the foreground is waiting for.
        """
        if self._paused and not self._stop:
            key = self._hashes.get(self.current) if self.current is not None else None
            awaited = getattr(self.segmenter, "is_awaited", lambda k: False)
            with self._cond:
                while self._paused and not self._stop and not (key and awaited(key)):
                    self._set_held(True)
                    self._cond.wait(0.05)
                self._set_held(False)
        if self._stop:
            raise Cancelled("prefetcher stopped")

    def _run(self, ready: threading.Event) -> None:
        try:
            if self._torch_threads() is not None:
                import torch

                torch.set_num_threads(self.threads)
            lower_priority(self.nice)
        finally:
            ready.set()
        while True:
            with self._cond:
                self._cond.wait_for(self._may_take)
                if self._stop:
                    self.current = None
                    self._cond.notify_all()
                    return
                image_id = self._queue.popleft()
                key = self._hashes[image_id]
                self.current = image_id
            try:
                worked = False
                if not self.segmenter.is_cached(key):
                    image = self.project.read_image(image_id)
                    worked = self.segmenter.precompute(image, key=key, background=True, check=self._check)
                (self.done if worked else self.skipped).append(image_id)
            except Cancelled:
                pass
            except Exception as exc:  # a bad file must not stop the queue
                self.failed[image_id] = f"{type(exc).__name__}: {exc}"
                log.warning("prefetch of image %s failed: %s", image_id, exc)
            finally:
                with self._cond:
                    self.current = None
                    self._cond.notify_all()
