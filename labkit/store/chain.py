"""The hash chain: tamper evidence for annotations, their history, the audit log and what they name.

Every write transaction ends with a *seal* (:func:`seal`, run by
:func:`labkit.store.engine.write_transaction`, so every write path has one). The rows it
added or changed in the chained tables (:data:`~labkit.store.schema.CHAINED`: classes,
members, images, annotations, annotation history, audit log) are serialised to one line
of text each by the database, in bulk, and hashed per table: one *block* of the
``chain`` table holds, per table, the highest id, how many rows and their sha256, and
``head = sha256(previous head, block)``. A changed annotation is sealed as its new
version; the version it left is a history row, sealed with it, so every version of every
annotation stays in the block that first held it. :func:`check` (``labkit verify``)
recomputes every block from the rows as they are now:

- a row edited, deleted or added behind labkit's back no longer matches its block's
  digest, or is in no block;
- rows that another program wrote between two labkit writes are sealed by the next
  labkit write as a block of kind ``"outside"`` (:func:`begin`), which ``verify`` reports;
- a block edited, or removed from the middle, breaks the links of the heads.

Removing the *last* blocks together with their rows cannot be seen from inside the
database; every report and export records the head it saw (:func:`head`), and ``verify``
checks that each recorded head is still in the chain.

Erasure (``forget_subject``) deletes rows and scrubs audit details on purpose: the
blocks that held them are *restated*, their new digests recorded in a block of kind
``"erasure"`` along with whether they still matched their seal just before. Each block's
digests are salted by a random salt of its own (``chain_salt``), and restating a block
replaces its salt, so no digest of the erased rows is left to test a guess against.

A line is built by the database (numbers as text, text and JSON as stored, times as
``YYYY-MM-DD HH:MM:SS.ffffff`` UTC, each text prefixed with its length so no two fields
can pass for one). SQLite and PostgreSQL write the same text for labkit's rows but for
floats (SQLite: 17 significant digits; PostgreSQL: the IEEE bits in hex), so a digest is
recomputed by the backend that sealed it. PostgreSQL seals and recomputes in
``SECURITY DEFINER`` functions (members' row-level security hides rows from them) under
a transaction-scoped advisory lock taken when a write transaction begins, so concurrent
writers seal one after another, with no gaps; SQLite's ``BEGIN IMMEDIATE`` already
serialises writers. The SQL text of lines, blocks and those functions is in
:mod:`~labkit.store.chain_sql`; this module runs it and hashes.
"""
from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import operator
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from labkit._util.clock import utc_now
from labkit.store.chain_sql import (
    AT_UTC,
    CHUNK,
    HIS,
    KINDS,
    MEMBER_FUNCTIONS,
    OWN_FUNCTIONS,
    READER_FUNCTIONS,
    TABLES,
    ZERO,
    new_rows,
    pg_functions,
    sealed_lines,
)

__all__ = ["KINDS", "MEMBER_FUNCTIONS", "READER_FUNCTIONS", "TABLES", "Anchor", "ChainReport", "Head", "Problem",
           "begin", "blocks_holding", "check", "digests", "head", "install", "intact", "seal"]


_ONLY_IF_NEW = ("write", "outside", "migration")  # kinds of block made only when rows are new


# ----------------------------------------------------------------- hashing ------
def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _digest(salt: str, rows: Iterable[tuple[int, str]]) -> tuple[int, str]:
    """``(count, digest)`` of ``(k, line)`` rows sorted by ``k``: lines joined by newlines in
    chunks of ``k // CHUNK``, each chunk hashed, the chunks' hashes hashed after the salt.

    ``rows`` may be a cursor: one chunk's lines are held at a time (a seal of a million
    new rows must not hold them all). Per row only a key and a list append.
    """
    chunks, n = [], 0
    for _, group in itertools.groupby(rows, key=_chunk_of):
        lines = list(map(_LINE, group))
        n += len(lines)
        chunks.append(_sha("\n".join(lines)))
    return n, _sha(salt + "\n" + "\n".join(chunks))


_LINE = operator.itemgetter(1)


def _chunk_of(row: tuple[int, str]) -> int:
    return row[0] // CHUNK


def _body(seq: int, kind: str, at: str, his: Sequence[int], digests: str, restated: str | None) -> str:
    """What a block's head hashes (after the previous head and a newline)."""
    return f"{seq}|{kind}|{at}|{','.join(str(h) for h in his)}|{digests}|{restated or ''}"


def _is_pg(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _cursor(conn: sa.Connection) -> Any:
    """A DBAPI cursor in ``conn``'s transaction: bulk lines without a Row object each."""
    if not conn.in_transaction():
        conn.exec_driver_sql("SELECT 1")  # SQLAlchemy begins: the cursor reads one snapshot
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]




# ---------------------------------------------------------------- sealing ------
@dataclass(frozen=True)
class Head:
    """The last block of a project's chain: what a report or export records."""
    seq: int
    head: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "head": self.head}


def head(conn: sa.Connection) -> Head | None:
    """The chain's last block (``None`` before the first), as any member may read it."""
    if _is_pg(conn):
        row = conn.exec_driver_sql("SELECT seq, head FROM labkit_chain_head()").first()
    else:
        row = conn.exec_driver_sql("SELECT seq, head FROM chain ORDER BY seq DESC LIMIT 1").first()
    return None if row is None or row[0] is None else Head(int(row[0]), str(row[1]))


def begin(conn: sa.Connection) -> None:
    """At the start of a write transaction: seal rows written outside labkit since the last block.

    PostgreSQL: first takes the chain's transaction-scoped advisory lock, so writers seal
    in the order they commit (SQLite's ``BEGIN IMMEDIATE`` has already serialised them).
    """
    if _is_pg(conn):
        conn.exec_driver_sql("SELECT labkit_chain_begin()")
    else:
        seal(conn, "outside")


def seal(conn: sa.Connection, kind: str = "write", *, restate: Sequence[int] = (),
         intact: Mapping[tuple[int, str], bool] | None = None) -> int | None:
    """Append a block sealing the rows added or changed since the last one; return its number.

    ``"write"``, ``"outside"`` and ``"migration"`` blocks are only made when there is something to seal.
    ``restate`` (an erasure, admins only): blocks whose rows were legitimately deleted or
    scrubbed in this transaction; they get new salts and their new digests are recorded,
    with ``intact`` saying whether each ``(block, table)`` matched its seal just before
    (:func:`intact`).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown block kind {kind!r}; expected one of {KINDS}")
    restate = sorted({int(s) for s in restate})
    flags = json.dumps({f"{s}:{t}": bool(v) for (s, t), v in sorted((intact or {}).items())}, sort_keys=True)
    if _is_pg(conn):
        return conn.execute(sa.text("SELECT labkit_chain_seal(:kind, CAST(:restate AS integer[]), :intact)"),
                            {"kind": kind, "restate": restate or None, "intact": flags}).scalar()
    return _seal_sqlite(conn, kind, restate, flags)


def _seal_sqlite(conn: sa.Connection, kind: str, restate: list[int], flags: str) -> int | None:
    cur = _cursor(conn)
    tip = cur.execute(f"SELECT seq, head, {HIS} FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    his = tuple(cur.execute("SELECT " + ", ".join(f"(SELECT coalesce(max(id), 0) FROM {t})" for t in TABLES))
                .fetchone())
    los = tuple(tip[2:]) if tip else (0,) * len(TABLES)
    if kind in _ONLY_IF_NEW and not restate and his == los:
        return None
    seq, prev = (tip[0] + 1, tip[1]) if tip else (1, ZERO)
    salt = secrets.token_hex(16)
    params = {f"lo_{t}": lo for t, lo in zip(TABLES, los)} | {f"hi_{t}": hi for t, hi in zip(TABLES, his)}
    lo, hi = {t: f":lo_{t}" for t in TABLES}, {t: f":hi_{t}" for t in TABLES}
    parts = []
    for t in TABLES:  # each query's rows are sorted and above the previous one's: read them in turn
        cursors = [_cursor(conn).execute(f"{q} ORDER BY k", params) for q in new_rows(False, t, lo, hi)]
        n, d = _digest(salt, itertools.chain.from_iterable(cursors))
        parts.append(f"{t}:{n}:{d}")
    restated = None
    if restate:
        for s in restate:
            cur.execute("UPDATE chain_salt SET salt = ? WHERE seq = ?", (secrets.token_hex(16), s))
        restated = _restatement(digests(conn, restate)[0], json.loads(flags))
    at = utc_now().strftime("%Y-%m-%d %H:%M:%S.%f")
    digest_text = ";".join(parts)
    new_head = _sha(prev + "\n" + _body(seq, kind, at, his, digest_text, restated))
    cur.execute(f"INSERT INTO chain (seq, at, kind, {HIS}, digests, restated, prev, head) VALUES "
                f"(?, ?, ?, {', '.join('?' * len(TABLES))}, ?, ?, ?, ?)",
                (seq, at, kind, *his, digest_text, restated, prev, new_head))
    cur.execute("INSERT INTO chain_salt (seq, salt) VALUES (?, ?)", (seq, salt))
    return seq


def _restatement(now: Mapping[tuple[int, str], tuple[int, str | None]], flags: Mapping[str, bool]) -> str:
    """The ``restated`` text of an erasure block: ``{block: {table: [rows, digest, intact]}}``."""
    out: dict[str, dict[str, list[Any]]] = {}
    for (s, t), (n, d) in sorted(now.items()):
        out.setdefault(str(s), {})[t] = [n, d, bool(flags.get(f"{s}:{t}", False))]
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


# ------------------------------------------------------------ recomputing ------
def digests(conn: sa.Connection, seqs: Sequence[int] | None = None
            ) -> tuple[dict[tuple[int, str], tuple[int, str | None]], dict[str, tuple[int, list[int]]]]:
    """Recompute blocks' digests from the rows as they are now.

    Returns ``{(block, table): (rows, digest)}`` for every block (or those in ``seqs``)
    and table (digest ``None`` when the block's salt is gone), and
    ``{table: (rows, first ids)}`` of rows that no block holds.
    """
    if _is_pg(conn):
        found: dict[tuple[int, str], tuple[int, str | None]] = {}
        loose: dict[str, tuple[int, list[int]]] = {}
        for tbl, seq, n, d, ids in conn.execute(sa.text("SELECT tbl, seq, n, digest, ids FROM "
                                                        "labkit_chain_digests(CAST(:seqs AS integer[]))"),
                                                {"seqs": list(seqs) if seqs is not None else None}):
            if seq is None:
                loose[tbl] = (int(n), [int(i) for i in ids.split(",")] if ids else [])
            else:
                found[(int(seq), tbl)] = (int(n), d)
        return found, loose
    return _digests_sqlite(conn, seqs)


def _digests_sqlite(conn: sa.Connection, seqs: Sequence[int] | None):
    cur = _cursor(conn)
    salts = dict(cur.execute("SELECT seq, salt FROM chain_salt").fetchall())
    blocks = [s for (s,) in cur.execute("SELECT seq FROM chain ORDER BY seq").fetchall()]
    wanted = set(blocks) if seqs is None else {int(s) for s in seqs} & set(blocks)
    found: dict[tuple[int, str], tuple[int, str | None]] = {}
    loose: dict[str, tuple[int, list[int]]] = {}
    for t in TABLES:
        rows = cur.execute(f"WITH {sealed_lines(False, t)} SELECT seq, k, line FROM lines ORDER BY seq, k")
        done: set[int] = set()
        for seq, group in _by_block(rows):
            if seq is None:
                ids = [k for k, _ in group]
                loose[t] = (len(ids), ids[:20])
            elif seq in wanted:
                done.add(seq)
                salt = salts.get(seq)
                n, d = _digest(salt or "", group)
                found[(seq, t)] = (n, d if salt is not None else None)
        for seq in wanted - done:
            salt = salts.get(seq)
            found[(seq, t)] = (0, _sha(salt + "\n") if salt is not None else None)
    return found, loose


def _by_block(rows: Iterable[tuple[Any, int, str]]) -> Iterator[tuple[Any, list[tuple[int, str]]]]:
    """Group ``(seq, k, line)`` rows sorted by ``seq`` into ``(seq, [(k, line), ...])``."""
    for seq, group in itertools.groupby(rows, key=operator.itemgetter(0)):
        yield seq, [(k, line) for _, k, line in group]


@dataclass(frozen=True)
class _Block:
    seq: int
    kind: str
    at: str
    his: tuple[int, ...]
    digests: str
    restated: str | None
    prev: str
    head: str

    def recorded(self) -> dict[str, tuple[int, str]]:
        out = {}
        for part in self.digests.split(";"):
            t, n, d = part.split(":")
            out[t] = (int(n), d)
        return out


def _blocks(conn: sa.Connection) -> list[_Block]:
    at = AT_UTC if _is_pg(conn) else "at"
    rows = conn.exec_driver_sql(f"SELECT seq, kind, {at}, {HIS}, digests, restated, prev, head FROM chain "
                                "ORDER BY seq").all()
    n = len(TABLES)
    return [_Block(int(r[0]), r[1], str(r[2]), tuple(int(h) for h in r[3:3 + n]), r[3 + n], r[4 + n], r[5 + n],
                   r[6 + n]) for r in rows]


def _expected(blocks: Sequence[_Block]) -> tuple[dict[tuple[int, str], tuple[int, str]], dict[tuple[int, str], int]]:
    """What each ``(block, table)`` must digest to now (its seal, or its last restatement), and
    the ``(block, table)`` an erasure restated although they no longer matched (-> the erasure)."""
    expected: dict[tuple[int, str], tuple[int, str]] = {}
    broken: dict[tuple[int, str], int] = {}
    for b in blocks:
        for t, v in b.recorded().items():
            expected[(b.seq, t)] = v
        if b.restated:
            for s, tables in json.loads(b.restated).items():
                for t, (n, d, ok) in tables.items():
                    expected[(int(s), t)] = (int(n), d)
                    if not ok:
                        broken.setdefault((int(s), t), b.seq)
    return expected, broken


def intact(conn: sa.Connection, seqs: Sequence[int]) -> dict[tuple[int, str], bool]:
    """Whether each table of blocks ``seqs`` matches what the chain says it holds (before an erasure)."""
    expected, broken = _expected(_blocks(conn))
    now, _ = digests(conn, seqs)
    return {k: now[k] == expected.get(k) and k not in broken for k in now}


def blocks_holding(conn: sa.Connection, ids: Mapping[str, Iterable[int]]) -> list[int]:
    """The blocks that hold these rows (``{table: ids}``), e.g. the ones an erasure changes.

    Give an annotation's history rows too: each version of it is in the block of the
    history row that superseded it.
    """
    blocks = _blocks(conn)
    out: set[int] = set()
    for t, wanted in ids.items():
        col = TABLES.index(t)
        his = [b.his[col] for b in blocks]
        los = [0, *his[:-1]]
        ends, later = [0] * len(blocks), None  # effective ends, as _assigned computes them
        for i in range(len(blocks) - 1, -1, -1):
            ends[i] = his[i] if later is None else min(his[i], later)
            later = los[i] if later is None else min(later, los[i])
        for k in wanted:
            i = bisect.bisect_left(ends, int(k))
            if i < len(ends) and los[i] < int(k):
                out.add(blocks[i].seq)
    return sorted(out)


# ------------------------------------------------------------------ verify ------
@dataclass(frozen=True)
class Anchor:
    """A head recorded outside the database: by a report or an export."""
    where: str
    seq: int
    head: str


@dataclass(frozen=True)
class Problem:
    """One break of the chain: which table and block, what was expected and found, and what to do."""
    table: str | None
    block: int | None
    status: str  # "changed" or "missing", as verify's file statuses
    expected: str | None
    actual: str | None
    message: str


@dataclass(frozen=True)
class ChainReport:
    blocks: int
    head: Head | None
    anchors: int
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


_RESTORE = ("Find out who changed the database outside labkit, and restore the rows from a backup made before "
            "then (a folder project's project.db.*.bak, or your PostgreSQL backups); project.audit_log() shows "
            "what labkit itself did at that time")


def check(conn: sa.Connection, anchors: Iterable[Anchor] = ()) -> ChainReport:
    """Recompute the whole chain from the rows; every break, with the table, block and what to do."""
    anchors = list(anchors)
    blocks = _blocks(conn)
    problems: list[Problem] = []
    if not blocks:
        problems.append(Problem(None, None, "missing", None, None,
                                "the hash chain is empty: its blocks were deleted. " + _RESTORE))
    by_seq = {b.seq: b for b in blocks}
    prev = ZERO
    for i, b in enumerate(blocks, start=1):
        if b.seq != i:
            problems.append(Problem(None, b.seq, "missing", str(i), str(b.seq),
                                    f"blocks {i} to {b.seq - 1} of the hash chain are missing: they were deleted "
                                    "from the chain table. " + _RESTORE))
        body = _body(b.seq, b.kind, b.at, b.his, b.digests, b.restated)
        if b.prev != prev or _sha(b.prev + "\n" + body) != b.head:
            problems.append(Problem(None, b.seq, "changed", prev, b.prev,
                                    f"block {b.seq} of the hash chain (sealed {b.at} UTC) was edited: its head no "
                                    "longer follows from its contents and the block before. " + _RESTORE))
        prev = b.head
    expected, broken = _expected(blocks)
    now, loose = digests(conn)
    for (s, t), (n, d) in sorted(now.items()):
        want = expected.get((s, t))
        if want is None or (n, d) == want:
            continue
        b = by_seq[s]
        what = (f"it held {want[0]} row(s), {n} are left" if n != want[0]
                else f"its {n} row(s) are all there but some changed")
        salt = "" if d is not None else " (and its salt was deleted)"
        problems.append(Problem(t, s, "changed", want[1], d,
                                f"{t}: rows of block {s} (sealed {b.at} UTC) no longer match the hash chain: "
                                f"{what}{salt}; they were edited or deleted outside labkit. " + _RESTORE))
    for (s, t), r in sorted(broken.items()):
        problems.append(Problem(t, s, "changed", None, None,
                                f"{t}: rows of block {s} had already been changed outside labkit when the erasure "
                                f"of block {r} (sealed {by_seq[r].at} UTC) restated it. " + _RESTORE))
    for before, b in zip([None, *blocks], blocks):
        if b.kind != "outside":
            continue
        counts = {t: n for t, (n, _) in b.recorded().items() if n}
        cut = [t for i, t in enumerate(TABLES) if before is not None and b.his[i] < before.his[i]]
        done = [f"{n} row(s) of {t} written" for t, n in counts.items()] + [f"the last rows of {t} deleted"
                                                                          for t in cut]
        problems.append(Problem(",".join([*counts, *cut]) or None, b.seq, "changed", None, None,
                                f"block {b.seq} (sealed {b.at} UTC) records {', '.join(done)} outside labkit, "
                                "found when the next labkit write began. " + _RESTORE))
    for t, (n, ids) in sorted(loose.items()):
        problems.append(Problem(t, None, "changed", None, None,
                                f"{t}: {n} row(s) (ids {ids}) are in no block of the hash chain: they were written "
                                f"outside labkit after block {blocks[-1].seq if blocks else 0}. " + _RESTORE))
    for a in anchors:
        there = by_seq.get(a.seq)
        if there is not None and there.head == a.head:
            continue
        found = f"block {a.seq} now has head {there.head[:12]}" if there else f"the chain ends at block {len(blocks)}"
        problems.append(Problem(None, a.seq, "missing", a.head, there.head if there else None,
                                f"{a.where} recorded the hash chain at block {a.seq} (head {a.head[:12]}), but "
                                f"{found}: blocks were removed or rewritten since, with their rows (the database "
                                "was rolled back or rebuilt). Restore it from a backup made after that, or find "
                                "out who replaced it"))
    last = Head(blocks[-1].seq, blocks[-1].head) if blocks else None
    return ChainReport(blocks=len(blocks), head=last, anchors=len(anchors), problems=tuple(problems))


# ------------------------------------------------------------- the database ------
def install(conn: sa.Connection) -> None:
    """Create (or replace) the chain's triggers (append-only) and, on PostgreSQL, its functions."""
    if not _is_pg(conn):
        for what in ("UPDATE", "DELETE"):
            name = f"lk_chain_{what.lower()}"
            conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS "{name}"')
            conn.exec_driver_sql(f"CREATE TRIGGER {name} BEFORE {what} ON chain BEGIN "
                                 "SELECT RAISE(ABORT, 'labkit: the hash chain is append-only'); END")
        return
    schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    sql = pg_functions().replace("{schema}", '"' + schema.replace('"', '""') + '"')
    conn.exec_driver_sql(sql.replace("%", "%%"))  # psycopg reads % as a placeholder
    for fn in (*MEMBER_FUNCTIONS, *READER_FUNCTIONS, *OWN_FUNCTIONS):
        conn.exec_driver_sql(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
    conn.exec_driver_sql("DROP TRIGGER IF EXISTS lk_chain_check ON chain")
    conn.exec_driver_sql("CREATE TRIGGER lk_chain_check BEFORE UPDATE OR DELETE ON chain "
                         "FOR EACH ROW EXECUTE FUNCTION labkit_chain_check()")
    conn.exec_driver_sql("DROP TRIGGER IF EXISTS lk_chain_truncate ON chain")
    conn.exec_driver_sql("CREATE TRIGGER lk_chain_truncate BEFORE TRUNCATE ON chain "
                         "FOR EACH STATEMENT EXECUTE FUNCTION labkit_chain_check()")
