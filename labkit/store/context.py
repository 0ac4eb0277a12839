"""What every repository of a project shares: the engine, who acts, transactions, the audit log.

A :class:`StoreContext` is one member's connection to one project. Repositories
(:mod:`~labkit.store.images`, :mod:`~labkit.store.annotations`, ...) hold one and run
their reads and writes through it:

- :meth:`StoreContext.write` runs a function in one write transaction, retried whole on
  transient lock errors; an :class:`~labkit.store.errors.AccessDenied` raised inside rolls
  it back and is then written to the audit log in a transaction of its own;
- :meth:`StoreContext.audit` adds an entry to the audit log inside the caller's transaction,
  always as the acting member;
- :meth:`StoreContext.log_access` records who read which images (the privacy report's
  "who accessed what");
- :attr:`StoreContext.policy` is the :class:`~labkit.store.policy.AccessPolicy` every
  repository asks before it reads or writes;
- :meth:`StoreContext.chain_head` is the last block of the project's hash chain
  (:mod:`labkit.store.chain`), which reports and exports record.
"""
from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa

from labkit._util.clock import utc_now
from labkit.store import chain
from labkit.store import schema as S
from labkit.store.engine import is_url, retrying, safe_location, write_transaction
from labkit.store.errors import AccessDenied
from labkit.store.policy import AccessPolicy

__all__ = ["StoreContext", "id_ranges"]

T = TypeVar("T")
_OPEN: weakref.WeakSet[StoreContext] = weakref.WeakSet()  # for opened_at()


class StoreContext:
    """One member's connection to one project: engine, location, folder and acting user.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        SQLite (a folder's ``project.db``) or PostgreSQL.
    location : str or Path
        The folder or URL the project was opened from (a URL may carry a password;
        :attr:`safe_location` masks it).
    root : Path
        The project's local folder: caches, predictions, pools and reports.
    user : str
        The member acting (a registered annotator's name).
    """

    def __init__(self, engine: sa.Engine, location: str | Path, root: Path, user: str):
        self.engine = engine
        self.location = location
        self.root = Path(root)
        self.user = user
        self.policy = AccessPolicy(user)
        self._reads_logged: set[tuple[str, int]] = set()
        _OPEN.add(self)

    @classmethod
    def opened_at(cls, root: str | Path) -> StoreContext | None:
        """An open context (in this process) of the project whose local folder is ``root``."""
        want = Path(root).resolve()
        for ctx in list(_OPEN):
            if ctx.root.resolve() == want:
                return ctx
        return None

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @property
    def safe_location(self) -> str:
        """The location for display and records: a URL's password is masked."""
        return safe_location(self.location)

    def dispose(self) -> None:
        _OPEN.discard(self)
        self.engine.dispose()

    def chain_head(self) -> chain.Head | None:
        """The last block of the project's hash chain: what a report or export records."""
        with self.connect() as conn:
            return chain.head(conn)

    # ------------------------------------------------------------ transactions --
    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A read connection (no transaction is kept open after the block)."""
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[sa.Connection]:
        """A read connection whose queries all see one snapshot of the database (batched reads).

        SQLite: the read transaction the connection begins (WAL keeps its snapshot);
        PostgreSQL: ``REPEATABLE READ``.
        """
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn

    def write(self, fn: Callable[[sa.Connection], T], *, foreign_keys: bool = True) -> T:
        """Run ``fn(conn)`` in one write transaction, retried whole on transient locks.

        An :class:`AccessDenied` raised inside rolls the transaction back and is then
        recorded in the audit log, in a transaction of its own. ``foreign_keys=False``:
        ``fn`` checks the references it writes itself (see
        :func:`~labkit.store.engine.write_transaction`).
        """
        def attempt() -> T:
            with write_transaction(self.engine, foreign_keys=foreign_keys) as conn:
                return fn(conn)
        return self.guard(lambda: retrying(attempt))

    def guard(self, fn: Callable[[], T]) -> T:
        """Call ``fn()``; log an AccessDenied it raises, then re-raise it."""
        try:
            return fn()
        except AccessDenied as exc:
            self.log_denied(exc)
            raise

    def require(self, action: str, *roles: str, what: str | None = None) -> Any:
        """The actor's row if its role is one of ``roles`` (on a connection of its own); else
        :class:`AccessDenied`, logged."""
        def check() -> Any:
            with self.connect() as conn:
                return self.policy.require(conn, action, *roles, what=what)
        return self.guard(check)

    def read_frame(self, stmt: Any, conn: sa.Connection | None = None) -> pd.DataFrame:
        """The rows of ``stmt`` as a DataFrame with the statement's column names."""
        if conn is None:
            with self.engine.connect() as conn:
                return self.read_frame(stmt, conn)
        res = conn.execute(stmt)
        return pd.DataFrame(res.fetchall(), columns=list(res.keys()))

    # ------------------------------------------------------------------- audit --
    def audit(self, conn: sa.Connection, action: str, *, target: str | None = None,
              target_id: int | None = None, on_behalf_of: str | None = None, **details: Any) -> None:
        """Add one audit-log entry inside the caller's transaction.

        The entry's actor is always the acting member (:attr:`user`; on PostgreSQL the
        database stamps it from the login). ``on_behalf_of`` is a note: whom the change
        was made for, recorded in ``details`` when it names someone else. (``actor=``,
        its name before, is read the same way: it never sets the actor.)
        """
        legacy = details.pop("actor", None)
        note = on_behalf_of if on_behalf_of is not None else legacy
        if note is not None and note != self.user:
            details["on_behalf_of"] = note
        conn.execute(sa.insert(S.audit_log).values(
            at=utc_now(), actor=self.user, action=action, target=target, target_id=target_id, details=details))

    def log_access(self, action: str, image_id: int) -> None:
        """Record the first ``action`` on each image by this connection (who read what)."""
        key = (action, int(image_id))
        if key in self._reads_logged:
            return
        self._reads_logged.add(key)
        self.write(lambda conn: self.audit(conn, action, target="images", target_id=int(image_id)))

    def log_bulk_access(self, action: str, image_ids: Sequence[int], *, purpose: str) -> None:
        """Record that a program read ``image_ids`` for ``purpose`` (one entry, ids as ranges)."""
        ids = sorted({int(i) for i in image_ids})
        self.write(lambda conn: self.audit(conn, action, target="images", purpose=purpose, count=len(ids),
                                           images=id_ranges(ids)))

    def log_denied(self, exc: AccessDenied) -> None:
        """Record a refused attempt (``denied``), in its own transaction."""
        try:
            with write_transaction(self.engine) as conn:
                self.audit(conn, "denied", target=exc.action, reason=str(exc),
                           **json.loads(json.dumps(exc.details, default=str)))
        except sa.exc.DBAPIError:  # a login without even INSERT on the log: the error still surfaces
            pass

    def audit_log(self) -> pd.DataFrame:
        """Every recorded action (who, what, when, and denied attempts), oldest first.

        Admins and viewers read it; annotators do not (it shows everyone's work).
        """
        def fn() -> pd.DataFrame:
            with self.connect() as conn:
                self.policy.require(conn, "read_audit_log", "admin", "viewer", what="read the audit log")
                return self.read_frame(sa.select(S.audit_log).order_by(S.audit_log.c.id), conn).set_index("id")
        return self.guard(fn)

    # ------------------------------------------------------------------- paths --
    def stored_path(self, path: str | Path) -> str:
        """How an image path is stored: relative to a folder project's root when inside it."""
        p = Path(path).resolve()
        if not is_url(self.location):
            try:
                return p.relative_to(self.root.resolve()).as_posix()
            except ValueError:
                pass
        return p.as_posix()

    def resolve(self, stored: str) -> Path:
        """The absolute path of a stored image path."""
        p = Path(stored)
        return p if p.is_absolute() else self.root / p


def id_ranges(ids: Sequence[int]) -> list[list[int]]:
    """Sorted distinct ids as inclusive ``[first, last]`` runs (compact audit details).

    Examples
    --------
    >>> id_ranges([1, 2, 3, 7, 9, 10])
    [[1, 3], [7, 7], [9, 10]]
    """
    out: list[list[int]] = []
    for i in sorted({int(i) for i in ids}):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out
