"""Bulk writes and reads: many rows per statement, JSON encoded and decoded in one pass.

SQLAlchemy's typed ``insert(...).values`` processes every parameter of every row in
Python (about 15 us a row for an annotation); these helpers hand the driver rows that
are already plain tuples: JSON already text, times already in the column's storage form.
SQLite gets one ``executemany`` (or one ``INSERT ... SELECT``) per batch; PostgreSQL
(psycopg 3) one ``INSERT ... SELECT FROM unnest(...)`` per batch, columns bound as arrays.
Reads fetch plain tuples and decode a JSON column with a single ``json.loads`` over the
whole column.

Every write still runs inside the caller's transaction, so the database's checks and
triggers (:mod:`~labkit.store.guards`) see each row, and the write lands whole or not at all.
Batches stored behind their reader (:func:`writes_behind`, PostgreSQL's pipeline mode) are
in :mod:`~labkit.store.pipeline`, re-exported here.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa

from labkit._util.memory import no_gc
from labkit.store.pipeline import pg_execute, writes_behind

__all__ = ["BATCH", "CHECKED_MIN", "INDEXED_MIN", "checked_insert", "chunks", "decode_json", "deferred_indexes",
           "encode_json", "encode_many", "execute_arrays", "insert_columns", "insert_many", "large_write",
           "missing_ids", "no_gc", "parse_times", "pg_execute", "raw", "read_frame", "stored_time", "writes_behind"]

#: Rows per ``executemany``: large enough to amortise the call, small enough to bound memory.
BATCH = 20_000

_encode = json.JSONEncoder(allow_nan=False).encode
_ORJSON = orjson.OPT_NON_STR_KEYS


#: Values per ``IN (...)`` list: under SQLite's and PostgreSQL's limits on bound parameters.
IN_CHUNK = 5_000


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> list[Sequence[Any]]:
    """``values`` in slices of ``size`` (for ``IN (...)`` lists that must stay under the driver's limits).

    Examples
    --------
    >>> chunks([1, 2, 3], 2)
    [[1, 2], [3]]
    """
    return [values[i:i + size] for i in range(0, len(values), size)]


def encode_json(value: Any) -> str:
    """``value`` as the JSON text a JSON column stores (``None`` as JSON ``null``, as SQLAlchemy's JSON type does).

    orjson (10x faster than ``json.dumps``) writes compact JSON; values it does not take
    (integers beyond 64 bits) go through ``json.dumps``. Callers have checked the values
    (:func:`~labkit._util.checks.json_problems`): no NaN or infinity reaches here.

    Examples
    --------
    >>> encode_json({"x0": 1.0, "tags": ["a"]})
    '{"x0":1.0,"tags":["a"]}'
    """
    try:
        return orjson.dumps(value, option=_ORJSON).decode()
    except (TypeError, orjson.JSONEncodeError):
        return _encode(value)


def encode_many(values: Iterable[Any]) -> list[str]:
    """:func:`encode_json` of each value: one orjson call each, without a Python call around it
    (a million values: ~0.4 s less); where orjson refuses one, :func:`encode_json` does them all.

    Examples
    --------
    >>> encode_many([{"x0": 1.0}, None, 2**70])
    ['{"x0":1.0}', 'null', '1180591620717411303424']
    """
    values = values if isinstance(values, list) else list(values)
    dumps = orjson.dumps
    try:
        return [dumps(v, option=_ORJSON).decode() for v in values]
    except (TypeError, orjson.JSONEncodeError):
        return list(map(encode_json, values))


def missing_ids(conn: sa.Connection, table: sa.Table, ids: Iterable[int]) -> list[int]:
    """Those of ``ids`` that no row of ``table`` has, sorted: a foreign key checked for a whole
    write at once (one read of the table's ids), where the connection does not check it row
    by row (:func:`~labkit.store.engine.write_transaction` with ``foreign_keys=False``).

    Examples
    --------
    >>> e = sa.create_engine("sqlite://")
    >>> t = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    >>> with e.begin() as conn:
    ...     t.create(conn)
    ...     _ = conn.execute(t.insert(), [{"id": 1}, {"id": 3}])
    ...     missing_ids(conn, t, [3, 2, 1, 2, 5])
    [2, 5]
    """
    wanted = np.unique(np.fromiter(ids, dtype=np.int64))
    have = np.fromiter(conn.execute(sa.select(table.c.id)).scalars(), dtype=np.int64)
    return wanted[~np.isin(wanted, have)].tolist()


def decode_json(texts: Sequence[str | None]) -> list[Any]:
    """Decode a column of JSON texts in one ``json.loads`` (SQL NULL and JSON ``null`` give None).

    Examples
    --------
    >>> decode_json(['{"a": 1}', None, '[1.5]'])
    [{'a': 1}, None, [1.5]]
    """
    if not texts:
        return []
    if any(t is None for t in texts):
        return [None if t is None else json.loads(t) for t in texts]
    joined = "[" + ",".join(texts) + "]"  # type: ignore[arg-type]
    try:
        return orjson.loads(joined)
    except orjson.JSONDecodeError:  # what orjson refuses (integers beyond 64 bits, NaN) json reads
        return json.loads(joined)


def stored_time(conn: sa.Connection, column: sa.Column, value: datetime) -> Any:
    """``value`` in the form the driver stores in ``column`` (SQLite: SQLAlchemy's text form)."""
    bind = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return bind(value) if bind is not None else value


def insert_many(conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                *, batch: int = BATCH) -> int:
    """Insert plain tuples (values in ``columns`` order, JSON as text) in batches; return the count.

    JSON columns take text (:func:`encode_json`). SQLite: one ``executemany`` per batch.
    PostgreSQL: one ``INSERT ... SELECT * FROM unnest(...)`` per batch with each column
    bound as an array (``COPY`` would be faster still, but row-level security refuses it
    to every login but the owner's).
    """
    names = ", ".join(f'"{c}"' for c in columns)
    if conn.dialect.name == "postgresql":
        # one statement per batch, each column bound as one array: no per-row round trip
        types = [table.c[c].type.compile(dialect=conn.dialect) for c in columns]
        sql = (f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest('
               + ", ".join(f"%b::{t}[]" for t in types) + ")")

        def run(chunk: list[Sequence[Any]]) -> None:
            execute_arrays(conn, sql, chunk)
    else:
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" for _ in columns)})'

        def run(chunk: list[Sequence[Any]]) -> None:
            conn.exec_driver_sql(sql, chunk)
    n = 0
    chunk: list[Sequence[Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= batch:
            run(chunk)
            n, chunk = n + len(chunk), []
    if chunk:
        run(chunk)
        n += len(chunk)
    return n


def insert_columns(conn: sa.Connection, table: sa.Table, columns: dict[str, Sequence[Any]], *,
                   constants: dict[str, Any] | None = None, batch: int = BATCH) -> int:
    """:func:`insert_many` of rows given column by column (each a sequence of one value per row),
    with ``constants``, one value for every row; return the count.

    SQLite: one statement per batch, its rows in a few parameters, not one ``executemany``
    step per row. The integers (and where each text starts and how long it is) are one
    blob of fixed-width decimal fields, each text column one blob of UTF-8 bytes, and a
    counter over the rows reads them back with ``substr`` (constant time in a blob) and
    ``CAST``. A column whose values are all equal is one parameter. The sqlite3 module
    takes the GIL back between the rows it steps; this statement is one step, so another
    thread (:func:`writes_behind`) runs while SQLite stores the batch, and SQLite's own
    work is about half of ``executemany``'s. The rows are those ``executemany`` stores,
    value for value, in order (the counter's queue is ordered). A batch with any other
    value (a float, which text would not carry exactly; a text with a NUL; a varying
    integer column with a NULL) goes through ``executemany``.

    Examples
    --------
    >>> con = sa.create_engine("sqlite://").connect()
    >>> t = sa.Table("t", sa.MetaData(), sa.Column("a", sa.Integer), sa.Column("b", sa.Text),
    ...              sa.Column("c", sa.Text))
    >>> t.create(con)
    >>> insert_columns(con, t, {"a": [1, -2], "b": ["x", None]}, constants={"c": "k"})
    2
    >>> con.exec_driver_sql("SELECT a, b, c FROM t ORDER BY rowid").all()
    [(1, 'x', 'k'), (-2, None, 'k')]
    """
    constants = constants or {}
    names = [*columns, *constants]
    values = list(columns.values())
    n = len(values[0]) if values else 0
    if any(len(v) != n for v in values):
        raise ValueError(f"insert_columns: columns of different lengths {[len(v) for v in values]}")
    if conn.dialect.name != "sqlite":
        for lo in range(0, n, batch):
            _pg_insert_columns(conn, table, dict(zip(columns, (v[lo:lo + batch] for v in values))), constants)
        return n
    quoted = ", ".join(f'"{c}"' for c in names)
    plain = f'INSERT INTO "{table.name}" ({quoted}) VALUES ({", ".join("?" for _ in names)})'
    for lo in range(0, n, batch):
        part = [v[lo:lo + batch] for v in values]
        m = len(part[0])
        payload = _sqlite_payload(part) if m else None
        if payload is None:
            conn.exec_driver_sql(plain, list(zip(*part, *(repeat(v, m) for v in constants.values()))))
            continue
        exprs, params = payload
        exprs += [f"?{len(params) + 1 + j}" for j in range(len(constants))]
        conn.exec_driver_sql(f"WITH RECURSIVE lk_row(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM lk_row "
                             f"WHERE i < {m - 1} ORDER BY 1) INSERT INTO \"{table.name}\" ({quoted}) "
                             f"SELECT {', '.join(exprs)} FROM lk_row", (*params, *constants.values()))
    return n


def _pg_insert_columns(conn: sa.Connection, table: sa.Table, columns: dict[str, Sequence[Any]],
                       constants: dict[str, Any]) -> None:
    """PostgreSQL: one ``INSERT ... SELECT ... FROM unnest(...)`` of a batch given column by column.

    Each varying column is bound as one binary array, as it is (no transposing into rows
    and back); a constant, or a column whose values are all the same text, integer or
    NULL (equal and of one type: no float, whose -0.0 equals 0.0), is bound once as a
    scalar. psycopg dumps an array an element at a time, holding the GIL, while the
    server waits for the statement: the fewer elements, the sooner it starts.
    """
    varying: dict[str, list[Any]] = {}
    fixed = dict(constants)
    for name, values in columns.items():
        col = values if isinstance(values, list) else list(values)
        first = col[0] if col else None
        if col and type(first) in _SCALARS and col.count(first) == len(col) and set(map(type, col)) == {type(first)}:
            fixed[name] = first
        else:
            varying[name] = col
    if not varying:  # every column constant: the rows' count still comes from one array
        name = next(iter(columns))
        varying[name] = [fixed.pop(name)] * len(columns[name])

    def cast(name: str) -> str:
        return str(table.c[name].type.compile(dialect=conn.dialect))
    names = ", ".join(f'"{c}"' for c in [*varying, *fixed])
    cols = [f"u.c{j}" for j in range(len(varying))]
    sql = (f'INSERT INTO "{table.name}" ({names}) SELECT {", ".join([*cols, *(f"%b::{cast(c)}" for c in fixed)])} '
           f'FROM unnest({", ".join(f"%b::{cast(c)}[]" for c in varying)}) AS u({", ".join(c[2:] for c in cols)})')
    # placeholders in the order of the text: the scalars (SELECT list), then the arrays
    pg_execute(conn, sql, [*fixed.values(), *varying.values()])


#: Types of a column of equal values bound once as a scalar (not float: -0.0 == 0.0).
_SCALARS = (str, int, type(None))

_NONE = type(None)


def _sqlite_payload(columns: list[Sequence[Any]]) -> tuple[list[str], list[Any]] | None:
    """The SQL expression of each column over ``lk_row(i)`` and the parameters it reads (``?1`` the
    integer fields, then one blob per text column, then the equal columns' values); None where
    :func:`insert_columns` must use ``executemany``."""
    ints: list[Any] = []  # columns of the integer blob
    exprs: list[Any] = []  # an SQL expression, or ("int", field) / ("text", start field, blob, nullable)
    blobs: list[bytes] = []
    same: list[Any] = []
    for col in columns:
        kinds = set(map(type, col))
        if len(kinds) == 1 and col.count(col[0]) == len(col):  # one value (of one type): one parameter
            same.append(col[0])
            exprs.append(("same", len(same) - 1))
        elif kinds == {int}:
            ints.append(col)
            exprs.append(("int", len(ints) - 1))
        elif kinds <= {str, _NONE}:
            nullable = _NONE in kinds
            texts = [v or "" for v in col] if nullable else col
            joined = "".join(texts)
            if "\0" in joined:
                return None
            if joined.isascii():  # a character a byte: the lengths of the str are those of the bytes
                blob, lengths = joined.encode(), np.fromiter(map(len, texts), np.int64, len(texts))
            else:
                encoded = [t.encode() for t in texts]
                blob, lengths = b"".join(encoded), np.fromiter(map(len, encoded), np.int64, len(encoded))
            blob += b"."  # never read: an empty blob would be bound as NULL, and substr of NULL is NULL
            starts = np.cumsum(lengths) - lengths + 1  # substr counts from 1
            if nullable:
                lengths[[i for i, v in enumerate(col) if v is None]] = -1
            ints += [starts, lengths]
            blobs.append(blob)
            exprs.append(("text", len(ints) - 2, len(blobs), nullable))
        else:
            return None
    if not ints:
        return None
    try:
        table = np.column_stack([np.asarray(c, np.int64) for c in ints])
    except OverflowError:  # an integer beyond 64 bits
        return None
    k = table.shape[1]
    digits, width = _decimal(table)

    def field(j: int) -> str:
        return f"CAST(substr(?1, lk_row.i * {width * k} + {j * width + 1}, {width}) AS INTEGER)"
    out = []
    for e in exprs:
        if e[0] == "same":
            out.append(f"?{2 + len(blobs) + e[1]}")
        elif e[0] == "int":
            out.append(field(e[1]))
        else:
            _, at, blob, nullable = e
            text = f"CAST(substr(?{1 + blob}, {field(at)}, {field(at + 1)}) AS TEXT)"
            out.append(f"CASE WHEN {field(at + 1)} < 0 THEN NULL ELSE {text} END" if nullable else text)
    return out, [digits, *blobs, *same]


def _decimal(table: np.ndarray) -> tuple[bytes, int]:
    """An int64 array as one run of fixed-width decimal fields (sign, then zero-padded digits), and
    the width: a few numpy operations per digit (``astype("S20")`` costs ~1 us a row of 7)."""
    neg = table < 0
    mag = np.where(neg, -(table + 1), table).astype(np.uint64) + neg  # |v|, exact for the int64 minimum
    top = int(mag.max()) if mag.size else 0
    width = len(str(top)) + 1
    if top < 2**32:
        mag = mag.astype(np.uint32)  # faster division
    out = np.empty((*table.shape, width), np.uint8)
    out[..., 0] = np.where(neg, ord("-"), ord("0"))
    for k in range(width - 1, 0, -1):
        out[..., k] = mag % 10
        out[..., k] += ord("0")
        mag //= 10
    return out.tobytes(), width


#: Rows from which :func:`checked_insert` suspends SQLite's row checks (below, recreating
#: the triggers costs more than it saves).
CHECKED_MIN = 2_000


@contextlib.contextmanager
def checked_insert(conn: sa.Connection, table: sa.Table, rows: int) -> Iterator[None]:
    """Insert ``rows`` rows the caller has checked as the database would, without SQLite's per-row triggers.

    SQLite has no statement-level triggers: each ``BEFORE INSERT`` trigger costs ~10 us a
    row before its condition runs, the geometry check ~35 us more, half of a large
    import. For rows the API has already checked with the rules those triggers repeat
    (:func:`labkit.geometry.bulk.normalize_many`, which ``tests/store/test_project.py``
    holds to the triggers), the triggers are dropped inside the caller's write
    transaction and created again, from their stored SQL, before it ends. SQLite's DDL
    is transactional and the write lock is held throughout: no other connection can
    write while they are away, and a failed or killed import rolls back the drop with
    the rows. Every other writer meets the triggers. PostgreSQL keeps its triggers
    (they also stamp who and when): a no-op there.
    """
    if conn.dialect.name != "sqlite" or rows < CHECKED_MIN:
        yield
        return
    triggers = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? "
        "AND upper(sql) LIKE '% BEFORE INSERT ON %'", (table.name,)).all()
    for name, _ in triggers:
        conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
    try:
        yield
    finally:  # on an error too: the transaction may yet be committed by a caller that catches it
        for _, sql in triggers:
            conn.exec_driver_sql(sql)


#: Rows from which :func:`deferred_indexes` builds a table's indexes after the write, not row by row.
INDEXED_MIN = 20_000


#: PostgreSQL: how long :func:`deferred_indexes` waits for the table's exclusive lock (readers to
#: finish) before it leaves the indexes in place and the write goes on without.
INDEX_LOCK_TIMEOUT = "2s"
#: PostgreSQL's ``maintenance_work_mem`` while :func:`deferred_indexes` builds the indexes again, in MiB.
INDEX_BUILD_MB = 256


@contextlib.contextmanager
def deferred_indexes(conn: sa.Connection, table: sa.Table) -> Iterator[Callable[[int], None]]:
    """A large write into ``table``: its secondary indexes built once at the end, by sorting.

    Yields ``expect(n)``, to be called before each write of ``n`` rows. Once the rows
    written reach :data:`INDEXED_MIN` and the rows the table held before (rebuilding
    sorts those too), the table's plain ``CREATE INDEX`` indexes are dropped inside the
    caller's write transaction and created again, from their definitions, before it ends:
    860,000 rows go into six indexes about 2x faster that way than one by one, mostly
    at random places. Unique indexes and those behind constraints stay: no row is
    spared a check. DDL is transactional on both backends: a failed or killed write rolls
    back the drop with the rows.

    SQLite: the write lock is held throughout; other connections see the indexes.
    PostgreSQL: dropping an index locks the table against readers too, until the write
    ends. So it is done only where the connection owns the table and gets the lock within
    :data:`INDEX_LOCK_TIMEOUT` (no one is reading it then); otherwise the indexes stay and
    the rows go into them one by one, as they would without this.
    """
    dropped: list[str] = []
    sqlite = conn.dialect.name == "sqlite"
    key = next(iter(table.primary_key.columns)).name
    # the rows held (give or take deleted ones) without counting them
    held = conn.exec_driver_sql(f'SELECT coalesce(max({"rowid" if sqlite else key}), 0) FROM "{table.name}"'
                                ).scalar_one()
    written, tried = 0, False

    def expect(n: int) -> None:
        nonlocal written, tried
        written += n
        if tried or written < max(INDEXED_MIN, held):
            return
        tried = True
        if not sqlite:
            dropped.extend(_pg_drop_indexes(conn, table))
            return
        plain = {r[1] for r in conn.exec_driver_sql(f'PRAGMA index_list("{table.name}")') if r[3] == "c" and not r[2]}
        for name, sql in conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL "
                "ORDER BY name", (table.name,)).all():
            if name in plain:
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
                dropped.append(sql)

    try:
        yield expect
    finally:  # on an error too: the transaction may yet be committed by a caller that catches it
        if dropped and not sqlite:
            _pg_build_indexes(conn, dropped)
        elif dropped:
            for sql in dropped:
                conn.exec_driver_sql(sql)


def _pg_drop_indexes(conn: sa.Connection, table: sa.Table) -> list[str]:
    """PostgreSQL: drop ``table``'s plain indexes where the connection may and gets the lock in time;
    return their definitions (none dropped: ``[]``, the transaction as it was)."""
    found = conn.exec_driver_sql(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_get_indexdef(i.indexrelid) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE i.indrelid = CAST(%(t)s AS regclass) AND NOT i.indisunique AND NOT i.indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
        "AND pg_has_role(c.relowner, 'USAGE') ORDER BY c.relname", {"t": table.name}).all()
    if not found:
        return []
    savepoint = conn.begin_nested()
    try:
        with _pg_setting(conn, "lock_timeout", INDEX_LOCK_TIMEOUT):
            conn.exec_driver_sql("DROP INDEX " + ", ".join(name for name, _ in found))
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) not in ("55P03", "42501"):  # lock not available, no privilege
            raise
        savepoint.rollback()  # (the setting too)
        return []
    savepoint.commit()
    return [sql for _, sql in found]


def _pg_build_indexes(conn: sa.Connection, definitions: list[str]) -> None:
    """PostgreSQL: create the dropped indexes again, unless the transaction has failed (its
    rollback brings them back)."""
    import psycopg

    driver = conn.connection.driver_connection
    if driver is None or driver.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
        return
    with _pg_setting(conn, "maintenance_work_mem", f"{INDEX_BUILD_MB}MB"):
        for sql in definitions:
            conn.exec_driver_sql(sql)


@contextlib.contextmanager
def _pg_setting(conn: sa.Connection, name: str, value: str) -> Iterator[None]:
    """PostgreSQL: the setting ``name`` at ``value`` for the block, then as it was (transaction-local:
    on an error the transaction is lost, or rolled back to a savepoint, and the setting with it)."""
    before = conn.exec_driver_sql("SELECT current_setting(%(n)s)", {"n": name}).scalar_one()
    conn.exec_driver_sql("SELECT set_config(%(n)s, %(v)s, true)", {"n": name, "v": value})
    yield
    conn.exec_driver_sql("SELECT set_config(%(n)s, %(v)s, true)", {"n": name, "v": before})


#: SQLite's page cache during a large write, in MiB (its default is 2 MiB).
WRITE_CACHE_MB = 128
#: PostgreSQL's ``work_mem`` during a large write, in MiB (its default is 4 MiB).
WRITE_WORK_MEM_MB = 64


@contextlib.contextmanager
def large_write(conn: sa.Connection, mb: int = WRITE_CACHE_MB, work_mem_mb: int = WRITE_WORK_MEM_MB
                ) -> Iterator[None]:
    """A write of hundreds of thousands of rows: the database's working memory raised meanwhile.

    SQLite: its page cache, to ``mb`` MiB. Each new annotation also goes into six indexes,
    at a random place in the one on ``image_id``; with SQLite's default 2 MiB cache those
    index pages are evicted and read again for nearly every row (860,000 rows: ~40 s in
    ``executemany`` with the default, ~15 s with 128 MiB). The cache only grows as far as
    the write touches it and shrinks back to its previous size afterwards.

    PostgreSQL: ``work_mem``, to ``work_mem_mb`` MiB, for the rest of the block
    (transaction-local). The statement-level checks (:mod:`~labkit.store.guards`) read
    each statement's rows from its transition table, which holds a 20,000-row batch
    (~7 MB) and, with the default 4 MiB, goes to temporary files and is read back from
    them for every batch.
    """
    if conn.dialect.name == "postgresql":
        with _pg_setting(conn, "work_mem", f"{int(work_mem_mb)}MB"):
            yield
        return
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql(f"PRAGMA cache_size = {-int(mb) * 1024}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(before)}")


def execute_arrays(conn: sa.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """PostgreSQL: run ``sql`` once with each column of ``rows`` bound as one array (``%b`` placeholders).

    ``%b`` binds in binary: psycopg's text format escapes every string of an array with a
    regular expression (most of a bulk write's time). Runs inside the caller's transaction.
    """
    pg_execute(conn, sql, [list(col) for col in zip(*rows)])


def raw(conn: sa.Connection, column: sa.ColumnElement, name: str | None = None) -> sa.ColumnElement:
    """``column`` for :func:`read_frame`: JSON as its text, times (SQLite) as stored, under ``name``.

    The driver then hands back plain values with no per-row conversion; :func:`read_frame`
    decodes the JSON columns and parses the time columns in one pass each.
    """
    label = name or column.name
    if isinstance(column.type, sa.JSON):
        return sa.cast(column, sa.Text).label(label)
    if isinstance(column.type, sa.DateTime) and conn.dialect.name == "sqlite":
        return sa.type_coerce(column, sa.String).label(label)
    return column.label(label)


def parse_times(values: Sequence[str | None]) -> pd.Series:
    """SQLite's stored time texts as naive datetimes (``NaT`` for NULL), each distinct text parsed once.

    A bulk write stamps its rows with one time, so a million rows hold a few thousand
    distinct texts: parsing those and taking them by code is ~10x faster than parsing all.
    """
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    parsed = pd.to_datetime(pd.Series(uniques, dtype=object), format="ISO8601")
    if len(parsed) == 0:
        return pd.Series(pd.NaT, index=range(len(codes)), dtype=parsed.dtype)
    out = parsed.take(np.where(codes < 0, 0, codes)).reset_index(drop=True)
    out[codes < 0] = pd.NaT
    return out


def read_frame(conn: sa.Connection, stmt: sa.Select, *, json: Sequence[str] = (),
               times: Sequence[str] = ()) -> pd.DataFrame:
    """The rows of ``stmt`` (built with :func:`raw` columns) as a DataFrame, column by column.

    ``json`` columns are decoded (:func:`decode_json`), ``times`` columns parsed as
    SQLAlchemy would (SQLite's stored text to naive datetimes; PostgreSQL's come parsed).
    """
    res = conn.execute(stmt)
    names = list(res.keys())
    with no_gc():
        rows = res.cursor.fetchall()  # the driver's tuples: the columns need no conversion (raw)
        res.close()
        columns = list(zip(*rows)) if rows else [()] * len(names)
        del rows
        data: dict[str, Any] = {}
        for name, values in zip(names, columns):
            if name in json:
                data[name] = pd.Series(decode_json(list(values)), dtype=object)
            elif name in times and conn.dialect.name == "sqlite":
                data[name] = parse_times(values)
            else:
                data[name] = list(values) if values else pd.Series([], dtype=object)
        return pd.DataFrame(data, columns=names)
