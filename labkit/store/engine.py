"""Database engines: SQLite (WAL, embedded default) and PostgreSQL, one interface.

SQLite write transactions start with ``BEGIN IMMEDIATE`` so two writers queue on the
busy timeout instead of failing when a read lock would have to be upgraded (the usual
cause of "database is locked" under WAL).

Every write transaction is sealed into the project's hash chain when it commits
(:mod:`labkit.store.chain`), whichever repository or workflow wrote.
"""
from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from labkit.store import chain

DB_FILENAME = "project.db"
BUSY_TIMEOUT_MS = 60_000
_WRITE = "labkit_write"


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and "://" in location


def make_url(location: str | Path) -> sa.URL:
    """Database URL for a project folder or a ``postgresql://`` URL."""
    if not is_url(location):
        return sa.URL.create("sqlite", database=str(Path(location) / DB_FILENAME))
    url = sa.make_url(str(location))
    if url.drivername == "postgresql":  # psycopg 3 is the driver labkit installs
        url = url.set(drivername="postgresql+psycopg")
    if not url.drivername.startswith(("postgresql", "sqlite")):
        raise ValueError(f"unsupported database URL {url.render_as_string(hide_password=True)!r}; "
                         "use a project folder path (SQLite) or a postgresql:// URL")
    return url


def safe_location(location: str | Path) -> str:
    """``location`` for display and records: a URL's password is masked."""
    if not is_url(location):
        return str(location)
    return sa.make_url(str(location)).render_as_string(hide_password=True)


def create_engine(url: sa.URL) -> sa.Engine:
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, future=True)
    engine = sa.create_engine(url, future=True, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised through every test
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def inserted_id(result: sa.CursorResult) -> int:
    """The primary key of the one row an ``INSERT`` statement added."""
    key = result.inserted_primary_key
    if key is None or key[0] is None:
        raise RuntimeError("the INSERT returned no primary key")
    return int(key[0])


def _is_transient(exc: sa.exc.OperationalError) -> bool:
    msg = str(exc.orig).lower()
    return any(s in msg for s in ("database is locked", "database is busy",
                                  "could not serialize", "deadlock detected"))


@contextlib.contextmanager
def write_transaction(engine: sa.Engine, *, sealed: bool = True,
                      foreign_keys: bool = True) -> Iterator[sa.Connection]:
    """A write transaction that lands whole or not at all, sealed into the hash chain.

    The busy timeout absorbs ordinary contention; a transient lock error that still
    escapes (checkpoint races, PostgreSQL deadlocks) is raised only after the body has
    been rolled back, and :func:`retrying` above this re-runs the whole body.

    With ``sealed`` (the default) it begins with :func:`labkit.store.chain.begin` (on
    PostgreSQL: the chain's lock; rows written outside labkit since the last block are
    sealed as such) and ends with :func:`labkit.store.chain.seal` of what the body wrote.
    Only creating and migrating a project, which build the chain, pass ``sealed=False``.

    ``foreign_keys=False`` (SQLite; a no-op on PostgreSQL): the connection does not check
    foreign keys row by row during this transaction (~1.4 us a row of ``annotations``).
    SQLite can switch that only outside a transaction, so it is done here. The caller
    must check the references it writes itself, set-wise, before the body ends (a bulk
    import does); the connection checks them again once the transaction is over.
    """
    with engine.connect() as conn:
        conn = conn.execution_options(**{_WRITE: True})
        raw = None
        if not foreign_keys and conn.dialect.name == "sqlite":
            raw = conn.connection.driver_connection
            raw.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                if sealed:
                    chain.begin(conn)
                yield conn
                if sealed:
                    chain.seal(conn)
        finally:
            if raw is not None:
                try:
                    raw.execute("PRAGMA foreign_keys=ON")
                except BaseException:
                    conn.invalidate()  # never back to the pool without its foreign keys
                    raise


def retrying(fn, *, attempts: int = 8):
    """Run ``fn()`` again after a transient lock error (the transaction was rolled back)."""
    for i in range(attempts):
        try:
            return fn()
        except sa.exc.OperationalError as exc:
            if not _is_transient(exc) or i == attempts - 1:
                raise
            time.sleep(min(2.0, 0.05 * 2 ** i) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover
