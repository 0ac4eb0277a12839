"""Writes stored behind the caller, and PostgreSQL's pipeline mode for them.

:func:`writes_behind` runs a large write's batches in a worker thread while the caller
prepares the next ones; on PostgreSQL the worker sends them in psycopg's pipeline mode
through :func:`pg_execute`, so the server never waits for the next statement.
(:mod:`labkit.store.bulk` builds the batches and re-exports both.)
"""
from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

__all__ = ["pg_execute", "writes_behind"]


@contextlib.contextmanager
def writes_behind(conn: sa.Connection, depth: int = 1) -> Iterator[Callable[[Callable[[], None]], None]]:
    """Let a large write's batches be stored behind the caller, who prepares the next ones meanwhile.

    Yields ``submit(write)``. ``write()`` runs in a worker thread once the previous one
    has finished, so the database stores one batch while the caller reads and checks the
    next: the two overlap on two cores. Up to ``depth`` writes wait their turn before
    ``submit`` waits for the oldest: a caller that is sometimes slower and sometimes faster
    than the database (a slow first write, a batch that is all polygons) keeps it busy.
    The worker waits for the database without the GIL: psycopg waits for the server so,
    and SQLite stores a batch of :func:`insert_columns` in one step (``executemany``
    would take the GIL back for every row, and so wait on the caller's thread). A write's
    error is raised by the next ``submit`` or at the end of the block, the writes after
    it do not run, and the block is never left (nor its transaction ended) while a write
    is under way. The writes use ``conn`` one at a time, in order; the caller must not
    use it inside the block.
    """
    if depth < 1:
        raise ValueError(f"writes_behind(depth={depth}): at least one write must be able to wait")
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labkit-write")
    pending: collections.deque[Future[None]] = collections.deque()
    failed = threading.Event()
    if conn.dialect.name == "postgresql":  # the worker sends a statement while the server runs the previous one
        pending.append(pool.submit(_pipelined, conn))

    def guarded(write: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if failed.is_set():  # an earlier write failed: its transaction is lost, stop here
                return
            try:
                write()
            except BaseException:
                failed.set()
                raise
        return run

    def submit(write: Callable[[], None]) -> None:
        while pending and (len(pending) >= depth or pending[0].done()):
            pending.popleft().result()  # an earlier batch's error, before this one is written
        pending.append(pool.submit(guarded(write)))
    try:
        yield submit
        pending.append(pool.submit(_unpipelined, conn))  # waits for the statements' results, raises their error
        while pending:
            pending.popleft().result()
    finally:
        failed.set()  # the block is left by an error: what has not started does not start
        pool.submit(_unpipelined, conn, True)  # (on an error: out of pipeline mode, whatever the results say)
        pool.shutdown(wait=True)


_PIPELINE = "labkit.pipeline"


class _Pipeline:
    """PostgreSQL: psycopg's pipeline mode on a connection, entered by :func:`pg_execute` and left
    before any other statement (see :func:`_pipelined`)."""

    def __init__(self, driver: Any):
        self.driver = driver
        self.open: contextlib.ExitStack | None = None

    def enter(self) -> None:
        if self.open is None:
            stack = contextlib.ExitStack()
            stack.enter_context(self.driver.pipeline())
            self.open = stack

    def leave(self) -> None:
        """Wait for the results of the statements sent; raise the server's error, if any."""
        stack, self.open = self.open, None
        if stack is not None:
            stack.close()


def _pipelined(conn: sa.Connection) -> None:
    """PostgreSQL: let :func:`pg_execute` send its statements in psycopg's pipeline mode.

    A statement then goes to the server without waiting for the previous one's result:
    the worker of :func:`writes_behind` dumps and sends batch ``k + 1`` while the server
    stores batch ``k`` (on a 20,000-row batch ~60 ms the server would otherwise wait).
    Any other statement on ``conn`` (SQLAlchemy's, which reads results as it goes) first
    leaves pipeline mode, which waits for the results so far and raises their error.
    """
    conn.info[_PIPELINE] = _Pipeline(conn.connection.driver_connection)
    sa.event.listen(conn, "before_cursor_execute", _leave_pipeline)


def _leave_pipeline(conn: sa.Connection, *_: Any) -> None:
    pipeline = conn.info.get(_PIPELINE)
    if pipeline is not None:
        pipeline.leave()


def _unpipelined(conn: sa.Connection, quiet: bool = False) -> None:
    """End :func:`_pipelined`: wait for the statements sent, raise their error (unless ``quiet``)."""
    pipeline = conn.info.pop(_PIPELINE, None)
    if pipeline is None:
        return
    sa.event.remove(conn, "before_cursor_execute", _leave_pipeline)
    try:
        pipeline.leave()
    except Exception:
        if not quiet:
            raise


def pg_execute(conn: sa.Connection, sql: str, params: Sequence[Any] = ()) -> None:
    """Run ``sql`` with psycopg's own placeholders (``%b``) on ``conn``'s driver connection; its result unread.

    Inside :func:`writes_behind` the statement is sent in pipeline mode: it does not wait
    for the server (an error comes from a later statement, or the block's end).
    """
    pipeline = conn.info.get(_PIPELINE)
    if pipeline is not None:
        pipeline.enter()
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(sql, params)
    finally:
        cur.close()
