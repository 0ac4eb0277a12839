"""Running labkit's heavy jobs on a Dask distributed cluster: the one runner they all share.

labkit ships no scheduler: a job given a ``distributed.Client`` submits *coarse* tasks to
it (a pool member, a batch of hundreds of images; a task costs the scheduler ~3 ms, so
never one task per row), shows progress over the completed futures with labkit's
progress bar, names the Dask dashboard when the scheduler runs one, and turns a task's
exception into an error that names what the task was working on (an image batch, a pool
member). Task functions must be importable on the workers (functions of ``labkit``, not
closures), and they never open a project's store: the client reads what a task needs
through the project's audited readers and writes the results in its own transactions.

- :func:`run_tasks`: submit one task per item (a bounded number in flight), call back on
  the client as each finishes, re-raise a failure naming its item;
- :func:`map_batches`: a plain function over a list (paths, rows) in batches, results in
  order; the shape of most bulk jobs (hashing, reading image headers);
- :func:`connect`, :func:`check_client`, :func:`dashboard_link`, :func:`cluster_threads`;
- :func:`sha256_batch`: a task function that hashes files (``None`` for a missing one);
- :func:`torch_friendly_malloc`: called by labkit's torch tasks on the worker (see there).

``distributed`` is imported only inside these functions: without it, ``import labkit``
works and only a job asked to run on a cluster raises :class:`ImportError` with the
``pip install`` to run.
"""
from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

__all__ = ["INSTALL", "TaskFailed", "check_client", "chunks", "cluster_threads", "connect", "dashboard_link",
           "distributed_module", "map_batches", "run_tasks", "sha256_batch", "torch_friendly_malloc"]

T = TypeVar("T")

#: What to run when ``distributed`` is missing.
INSTALL = 'pip install "labkit[dask]"'


class TaskFailed(ValueError):
    """A task of a Dask job failed; ``item`` names what it was working on, ``cause`` says why.

    Layers above wrap it in their own errors (``ProjectError``, ``ImageError``) through the
    ``error=`` argument of :func:`run_tasks`; this is what they get when they do not.

    Examples
    --------
    >>> str(TaskFailed("images 1-256", "OSError: disk full"))
    'images 1-256: OSError: disk full'
    """

    def __init__(self, item: str, cause: str):
        self.item, self.cause = item, cause
        super().__init__(item, cause)

    def __str__(self) -> str:
        return f"{self.item}: {self.cause}"


def distributed_module() -> Any:
    """The ``distributed`` package, or an ImportError that says how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"running labkit on a Dask cluster needs dask.distributed, which is not "
                          f"installed here: {INSTALL}") from exc
    return distributed


def check_client(client: Any) -> Any:
    """``client`` if it is a ``distributed.Client``, else a TypeError saying how to make one."""
    distributed = distributed_module()
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client is a {type(client).__name__}; expected a distributed.Client, e.g. "
                        "distributed.Client('tcp://scheduler:8786') or Client(cluster) (None: run here)")
    if client.status not in ("running", "connecting"):
        raise ValueError(f"the Dask client is {client.status}; open a new one (distributed.Client(address))")
    return client


def connect(address: str, *, timeout: float | None = None) -> Any:
    """A ``distributed.Client`` connected to the scheduler at ``address`` (``tcp://host:8786``).

    ``timeout`` in seconds (default: Dask's ``distributed.comm.timeouts.connect``, 30 s).
    """
    distributed = distributed_module()
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"scheduler address is {address!r}; expected e.g. 'tcp://10.0.0.5:8786'")
    if timeout is None:
        import dask
        from dask.utils import parse_timedelta

        timeout = float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s"))
    try:
        return distributed.Client(address.strip(), timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise OSError(f"cannot reach the Dask scheduler at {address.strip()!r} within {timeout:g} s ({exc}); "
                      "check the address and that the scheduler is running") from exc


def dashboard_link(client: Any) -> str | None:
    """The Dask dashboard's URL when the scheduler announces one, else None.

    (The page needs ``bokeh`` on the scheduler; without it the scheduler may still
    announce the service.)
    """
    try:
        link = client.dashboard_link
    except Exception:  # no dashboard service, or a scheduler that cannot be asked
        return None
    return str(link) if link else None


def cluster_threads(client: Any) -> int:
    """Threads over all the cluster's workers now (at least 1)."""
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:
        return 1


def chunks(values: Sequence[T], size: int) -> list[Sequence[T]]:
    """``values`` cut into consecutive slices of ``size`` (the last may be shorter).

    Examples
    --------
    >>> chunks(list(range(5)), 2)
    [[0, 1], [2, 3], [4]]
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch size is {size!r}; expected a positive integer")
    return [values[i:i + size] for i in range(0, len(values), size)]


def run_tasks(client: Any, fn: Callable[..., Any], items: Sequence[T], *, args: Callable[[T], tuple],
              name: Callable[[T], str], on_result: Callable[[T, Any], Any] | None = None,
              error: Callable[[T, BaseException], BaseException] | None = None,
              weight: Callable[[T], int] | None = None, desc: str = "dask", unit: str = "task",
              total: int | None = None, initial: int = 0, progress: bool = True,
              max_in_flight: int | None = None) -> list[Any]:
    """Run ``fn(*args(item))`` on the cluster for every item; results in the order of ``items``.

    Parameters
    ----------
    client : distributed.Client
    fn : callable
        A function importable on the workers (a module-level function of labkit).
    items : sequence
        One per task: small descriptions (a batch's positions, a member); ``args`` turns
        one into the task's arguments when it is submitted (so bytes read for it are
        read only then), and ``name`` into the words an error uses (``"images 1-256"``).
    on_result : callable, optional
        ``on_result(item, result)`` runs on the client as each task finishes, in the
        order they finish (write the result there, so a client that dies keeps what it
        wrote); its return value replaces the result in the list returned.
    error : callable, optional
        ``error(item, exc)`` gives the exception to raise when a task fails (return
        ``exc`` itself to raise it as it is). Default: :class:`TaskFailed` naming the item.
    weight : callable, optional
        Progress units an item is worth (default 1); ``total`` and ``initial`` as tqdm's.
    desc, unit, progress : the progress bar's description, unit, and whether to show it.
    max_in_flight : int, optional
        Tasks submitted but not finished, at most (default: 4 per worker thread, at least
        8): a job of 10,000 batches does not hold them all on the scheduler at once.

    When a task fails, the tasks not yet finished are cancelled and nothing more is
    submitted; results already passed to ``on_result`` stay written. A worker that dies
    is Dask's to handle: the scheduler reruns its tasks elsewhere (a task that kills
    ``distributed.scheduler.allowed-failures`` workers fails with ``KilledWorker``).
    """
    from labkit._util.progress import progress_bar

    distributed = distributed_module()
    client = check_client(client)
    items = list(items)
    if max_in_flight is None:
        max_in_flight = max(8, 4 * cluster_threads(client))
    tag = f"labkit-{getattr(fn, '__name__', 'task')}-{uuid.uuid4().hex[:8]}"
    out: list[Any] = [None] * len(items)
    if total is None:
        total = initial + sum(weight(i) for i in items) if weight is not None else initial + len(items)
    bar = progress_bar(total=total, initial=initial, desc=desc, unit=unit, disable=not progress)
    link = dashboard_link(client)
    if link and progress:
        bar.write(f"{desc}: Dask dashboard at {link}", file=sys.stderr)
    running: dict[str, int] = {}
    queue = distributed.as_completed()
    todo: Iterator[int] = iter(range(len(items)))

    def submit_next() -> bool:
        i = next(todo, None)
        if i is None:
            return False
        fut = client.submit(fn, *args(items[i]), key=f"{tag}-{i}", pure=False)
        running[fut.key] = i
        queue.add(fut)
        return True

    try:
        for _ in range(max_in_flight):
            if not submit_next():
                break
        for fut in queue:
            i = running.pop(fut.key)
            if fut.status != "finished":
                exc = fut.exception() if fut.status == "error" else distributed.CancelledError(fut.key)
                raise _wrapped(items[i], exc, name, error) from exc
            result = fut.result()
            fut.release()
            out[i] = on_result(items[i], result) if on_result is not None else result
            bar.update(weight(items[i]) if weight is not None else 1)
            submit_next()
    except BaseException:
        left = list(queue.futures) if hasattr(queue, "futures") else []
        if left:
            client.cancel(left)
        raise
    finally:
        bar.close()
    return out


def _wrapped(item: Any, exc: BaseException, name: Callable[[Any], str],
             error: Callable[[Any, BaseException], BaseException] | None) -> BaseException:
    if error is not None:
        return error(item, exc)
    return TaskFailed(name(item), f"{type(exc).__name__}: {exc}")


def map_batches(client: Any, fn: Callable[[list], list], values: Sequence[Any], *, batch_size: int = 256,
                desc: str = "dask", unit: str = "item", progress: bool = True,
                name: Callable[[Sequence[Any]], str] | None = None,
                error: Callable[[Sequence[Any], BaseException], BaseException] | None = None) -> list[Any]:
    """``fn`` over ``values`` in batches of ``batch_size`` on the cluster: one result per value, in order.

    ``fn(batch: list) -> list`` (same length) must be importable on the workers, e.g.
    :func:`sha256_batch` over file paths. The store layer's bulk readers can hand it a
    plain function over a list of paths. ``name(batch)`` words a failed batch for the error
    (default: its first and last value).
    """
    batches = chunks(list(values), batch_size)
    if name is None:
        def name(batch: Sequence[Any]) -> str:
            return f"{len(batch)} items from {batch[0]!s} to {batch[-1]!s}"

    def check(batch: Sequence[Any], result: Any) -> list:
        if not isinstance(result, list) or len(result) != len(batch):
            raise TaskFailed(name(batch), f"{getattr(fn, '__name__', fn)} returned "
                                          f"{type(result).__name__} of length {len(result)}, "
                                          f"expected a list of {len(batch)}")
        return result

    results = run_tasks(client, fn, batches, args=lambda b: (list(b),), name=name, on_result=check,
                        error=error, weight=len, desc=desc, unit=unit, progress=progress)
    return [r for batch in results for r in batch]


def sha256_batch(paths: list) -> list[str | None]:
    """sha256 (hex) of each file, ``None`` for one that does not exist: a task for :func:`map_batches`.

    Examples
    --------
    >>> sha256_batch(["/no/such/file"])
    [None]
    """
    from labkit._util.hashing import sha256_file

    out: list[str | None] = []
    for p in paths:
        try:
            out.append(sha256_file(p))
        except FileNotFoundError:
            out.append(None)
    return out


_MALLOC_SET = False


def torch_friendly_malloc() -> bool:
    """On a Dask worker that runs under Dask's ``MALLOC_TRIM_THRESHOLD_``, give glibc its usual thresholds.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (config
    ``distributed.nanny.pre-spawn-environ``) so they hand freed memory back to the system.
    Setting it also freezes glibc's mmap threshold at 128 KiB, so every torch tensor larger
    than that is a fresh ``mmap`` whose pages fault in zeroed: training a small CNN on the
    CPU ran 1.7x slower here (``docs/scale.md``). labkit's torch tasks call this first: on
    Linux, in a Dask worker process where that variable is set, it sets the mmap threshold
    to 32 MiB and the trim threshold to 64 MiB, where glibc's own heuristic settles without
    the variable. Once per process; True when it changed them.
    """
    global _MALLOC_SET
    if _MALLOC_SET or not sys.platform.startswith("linux") or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return False
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):  # not in a worker: leave the caller's process alone
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl): nothing to do
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    _MALLOC_SET = bool(libc.mallopt(m_mmap_threshold, 32 << 20)) & bool(libc.mallopt(m_trim_threshold, 64 << 20))
    return _MALLOC_SET
