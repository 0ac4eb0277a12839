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
serialises writers.
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
from labkit.store import schema as S

__all__ = ["Anchor", "ChainReport", "Head", "Problem", "begin", "blocks_holding", "check", "digests", "head",
           "install", "intact", "seal"]

TABLES = S.CHAINED
#: What a block is: the first; a labkit write; rows written outside labkit, found when a
#: labkit write began; an erasure, restating the blocks it changed; a schema migration.
KINDS = ("genesis", "write", "outside", "erasure", "migration")
_ONLY_IF_NEW = ("write", "outside", "migration")  # kinds of block made only when rows are new
ANALYZE_MIN = 100_000  # new rows of a table from which a PostgreSQL seal updates its statistics first
CHUNK = 4096  # lines hashed together: a table's digest is the sha256 of its chunks' sha256s
ZERO = "0" * 64  # the head before the first block
_LOCK = 7_170_426_153  # PostgreSQL advisory lock key of the chain ("labkit chain")
_SHIFT = 4_294_967_296  # 2**32: (hi, seq) packed in one bigint when assigning rows to blocks
#: PostgreSQL functions every member executes (a write begins, seals; a report reads the head).
MEMBER_FUNCTIONS = ("labkit_chain_begin()", "labkit_chain_seal(text, integer[], text)", "labkit_chain_head()")
#: ... and those of admins and viewers, who verify.
READER_FUNCTIONS = ("labkit_chain_digests(integer[])",)
#: ... and those only the chain's own functions call.
OWN_FUNCTIONS = ("labkit_chain_new(integer[], integer[], text)",)

# ------------------------------------------------------------------ lines ------
# (field, type) of the line of each table's row; an annotation's line is one *version*.
_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "classes": (("id", "int"), ("name", "text")),
    "annotators": (("id", "int"), ("name", "text"), ("simulated", "bool"), ("created_at", "ts")),
    "images": (("id", "int"), ("path", "text"), ("sha256", "text"), ("width", "int"), ("height", "int"),
               ("added_at", "ts")),
    "annotation_history": (("id", "int"), ("annotation_id", "int"), ("version", "int"), ("class_id", "int"),
                           ("geometry", "text"), ("score", "float"), ("provenance", "text"),
                           ("deleted_at", "ts"), ("valid_from", "ts"), ("valid_to", "ts"), ("change", "text"),
                           ("changed_by", "text"), ("made_by", "text")),
    "audit_log": (("id", "int"), ("at", "ts"), ("actor", "text"), ("action", "text"), ("target", "text"),
                  ("target_id", "int"), ("details", "text")),
}
# One version of an annotation: (type, from the current row ``a``, from its history row ``h``).
_VERSION = (
    ("int", "a.id", "h.annotation_id"), ("int", "a.version", "h.version"), ("int", "a.image_id", "a.image_id"),
    ("int", "a.annotator_id", "a.annotator_id"), ("text", "a.kind", "a.kind"), ("text", "a.source", "a.source"),
    ("ts", "a.created_at", "a.created_at"), ("int", "a.class_id", "h.class_id"),
    ("text", "a.geometry", "h.geometry"), ("float", "a.score", "h.score"),
    ("text", "a.provenance", "h.provenance"), ("ts", "a.deleted_at", "h.deleted_at"),
    ("ts", "a.updated_at", "h.valid_from"), ("text", "a.updated_by", "h.made_by"),
)


def _field(pg: bool, typ: str, e: str) -> tuple[str, list[str]]:
    """One field of a line: its format and arguments. A number as text (NULL: empty); a text
    as ``length:text`` (NULL: ``:``), so no two fields can pass for one; a float exactly."""
    if typ == "float":
        return "%s", [f"coalesce(encode(float8send({e}), 'hex'), '~')" if pg
                      else f"CASE WHEN {e} IS NULL THEN '~' ELSE printf('%!.17g', {e}) END"]
    if typ == "bool":
        return "%s", [f"CASE WHEN {e} IS NULL THEN '~' WHEN {e} THEN '1' ELSE '0' END"]
    if typ == "int":
        return "%s", [e]
    if pg:
        e = f"to_char({e} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')" if typ == "ts" else f"CAST({e} AS TEXT)"
    return "%s:%s", [f"length({e})", e]


def _join(pg: bool, fields: Iterable[tuple[str, list[str]]]) -> str:
    """SQL: the fields joined by ``|``, built in one pass (``printf``/``format``, not a chain of ``||``)."""
    fmts, args = zip(*fields)
    return f"{'format' if pg else 'printf'}('{'|'.join(fmts)}', {', '.join(a for arg in args for a in arg)})"


def _line(pg: bool, table: str, alias: str) -> str:
    return _join(pg, (_field(pg, typ, f"{alias}.{name}") for name, typ in _FIELDS[table]))


def _version_line(pg: bool, history: bool) -> str:
    return _join(pg, (_field(pg, typ, h if history else a) for typ, a, h in _VERSION))


def _new_rows(pg: bool, table: str, lo: Mapping[str, str], hi: Mapping[str, str]) -> list[str]:
    """SQL ``(k, line)`` of the rows of ``table`` a seal covers, in queries whose results,
    each sorted by ``k`` and taken in turn, are sorted: ids in ``(lo, hi]``, and for
    annotations first the current version of those below it whose history grew."""
    if table != "annotations":
        return [f"SELECT x.id AS k, {_line(pg, table, 'x')} AS line FROM {table} x "
                f"WHERE x.id > {lo[table]} AND x.id <= {hi[table]}"]
    h = "annotation_history"
    return [f"SELECT a.id AS k, {_version_line(pg, False)} AS line FROM annotations a "
            f"WHERE a.id <= {lo[table]} AND a.id IN (SELECT h.annotation_id FROM {h} h "
            f"WHERE h.id > {lo[h]} AND h.id <= {hi[h]})",
            f"SELECT a.id AS k, {_version_line(pg, False)} AS line FROM annotations a "
            f"WHERE a.id > {lo[table]} AND a.id <= {hi[table]}"]


def _assigned(pg: bool, table: str, name: str) -> str:
    """SQL CTEs ending in ``name (id, seq)``: each row of ``table`` and the block holding it (NULL: none).

    Block ``k`` holds the ids above the previous block's highest id, up to its own; an
    erasure that deleted a table's last rows lowers it, and a later block may then hold
    ids again below an earlier block's highest: the later block holds them (the earlier
    block's rows there were erased). Rows are assigned in one sorted pass (a window over
    rows and block ends), not one lookup per row. The windows run from the end backwards
    (``UNBOUNDED PRECEDING``): a frame whose start moves makes PostgreSQL recompute
    ``min`` for every row.
    """
    least = "least" if pg else "min"
    col = f"{table}_hi"
    return (
        f"{name}_c AS (SELECT seq, {col} AS hi, coalesce(lag({col}) OVER (ORDER BY seq), 0) AS lo FROM chain), "
        f"{name}_s AS (SELECT seq, lo, {least}(hi, coalesce(min(lo) OVER (ORDER BY seq DESC ROWS BETWEEN "
        f"UNBOUNDED PRECEDING AND 1 PRECEDING), hi)) AS hi FROM {name}_c), "
        f"{name}_e AS (SELECT id AS k, 0 AS typ, CAST(NULL AS BIGINT) AS nxt FROM {table} "
        f"UNION ALL SELECT hi, 1, hi * {_SHIFT} + seq FROM {name}_s), "
        f"{name}_w AS (SELECT k, typ, min(nxt) OVER (ORDER BY k DESC, typ DESC ROWS BETWEEN UNBOUNDED PRECEDING "
        f"AND CURRENT ROW) AS nxt FROM {name}_e), "
        f"{name} AS (SELECT w.k AS id, s.seq AS seq FROM {name}_w w LEFT JOIN {name}_s s "
        f"ON s.seq = w.nxt - (w.nxt / {_SHIFT}) * {_SHIFT} AND s.lo < w.k WHERE w.typ = 0)")


def _sealed_lines(pg: bool, table: str) -> str:
    """SQL CTEs ending in ``lines (seq, k, line)``: every row of ``table`` now, in the block holding it.

    Annotations: each version a block sealed, rebuilt from the current row or, once
    superseded, from its history row. A block sealed annotation ``A`` at version 1 if it
    holds ``A``'s id, or at one above the highest version of ``A``'s history rows it holds.
    """
    if table != "annotations":
        return (f"{_assigned(pg, table, 'g')}, lines AS (SELECT g.seq AS seq, x.id AS k, "
                f"{_line(pg, table, 'x')} AS line FROM g JOIN {table} x ON x.id = g.id)")
    return (f"{_assigned(pg, 'annotations', 'ga')}, {_assigned(pg, 'annotation_history', 'gh')}, "
            "sv AS (SELECT aid, seq, max(v) AS v FROM (SELECT h.annotation_id AS aid, gh.seq AS seq, "
            "h.version + 1 AS v FROM gh JOIN annotation_history h ON h.id = gh.id "
            "UNION ALL SELECT ga.id, ga.seq, 1 FROM ga) u GROUP BY aid, seq), "
            f"lines AS (SELECT sv.seq AS seq, sv.aid AS k, CASE WHEN a.version = sv.v THEN {_version_line(pg, False)} "
            f"WHEN h.id IS NOT NULL THEN {_version_line(pg, True)} ELSE 'missing' END AS line FROM sv "
            "LEFT JOIN annotations a ON a.id = sv.aid "
            "LEFT JOIN annotation_history h ON h.annotation_id = sv.aid AND h.version = sv.v)")


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


def _pg_chunks(lines: str, where: str = "", by: str = "") -> str:
    """PostgreSQL: ``(by..., c, n, d)``, the chunks of :func:`_digest` of ``lines (k, line)``."""
    group = f"{by}, " if by else ""
    return (f"SELECT {group}l.k / {CHUNK} AS c, count(*) AS n, encode(sha256(convert_to(string_agg(l.line, "
            f"E'\\n' ORDER BY l.k), 'UTF8')), 'hex') AS d FROM {lines} l {where} GROUP BY {group}l.k / {CHUNK}")


_PG_JOIN_CHUNKS = "string_agg(q.d, E'\\n' ORDER BY q.c)"


def _pg_salted(salt: str, chunks: str) -> str:
    """PostgreSQL: the digest of :func:`_digest` from the salt and the chunks' hashes joined by newlines."""
    return f"encode(sha256(convert_to({salt} || E'\\n' || coalesce({chunks}, ''), 'UTF8')), 'hex')"


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


_AT = "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
_HIS = ", ".join(f"{t}_hi" for t in TABLES)


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
    tip = cur.execute(f"SELECT seq, head, {_HIS} FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
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
        cursors = [_cursor(conn).execute(f"{q} ORDER BY k", params) for q in _new_rows(False, t, lo, hi)]
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
    cur.execute(f"INSERT INTO chain (seq, at, kind, {_HIS}, digests, restated, prev, head) VALUES "
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
        rows = cur.execute(f"WITH {_sealed_lines(False, t)} SELECT seq, k, line FROM lines ORDER BY seq, k")
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
    at = _AT if _is_pg(conn) else "at"
    rows = conn.exec_driver_sql(f"SELECT seq, kind, {at}, {_HIS}, digests, restated, prev, head FROM chain "
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
    sql = _pg_functions().replace("{schema}", '"' + schema.replace('"', '""') + '"')
    conn.exec_driver_sql(sql.replace("%", "%%"))  # psycopg reads % as a placeholder
    for fn in (*MEMBER_FUNCTIONS, *READER_FUNCTIONS, *OWN_FUNCTIONS):
        conn.exec_driver_sql(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
    conn.exec_driver_sql("DROP TRIGGER IF EXISTS lk_chain_check ON chain")
    conn.exec_driver_sql("CREATE TRIGGER lk_chain_check BEFORE UPDATE OR DELETE ON chain "
                         "FOR EACH ROW EXECUTE FUNCTION labkit_chain_check()")
    conn.exec_driver_sql("DROP TRIGGER IF EXISTS lk_chain_truncate ON chain")
    conn.exec_driver_sql("CREATE TRIGGER lk_chain_truncate BEFORE TRUNCATE ON chain "
                         "FOR EACH STATEMENT EXECUTE FUNCTION labkit_chain_check()")


def _pg_functions() -> str:
    lo = {t: f"lo_{t}" for t in TABLES}
    hi = {t: f"hi_{t}" for t in TABLES}
    declare = "\n".join(f"  lo_{t} integer; hi_{t} integer;" for t in TABLES)
    bounds = "\n".join(f"  lo_{t} := coalesce(tip.{t}_hi, 0); SELECT coalesce(max(id), 0) INTO hi_{t} FROM {t};"
                       for t in TABLES)
    same = " AND ".join(f"hi_{t} = lo_{t}" for t in TABLES)
    # the new rows' digests, each table's in one query a RETURN QUERY runs (which PostgreSQL may
    # run in parallel: a SELECT INTO never is), with the table's bounds as the k-th array element
    arg_lo = {t: f"p_lo[{k + 1}]" for k, t in enumerate(TABLES)}
    arg_hi = {t: f"p_hi[{k + 1}]" for k, t in enumerate(TABLES)}
    new_digests = "\n".join(
        f"  RETURN QUERY SELECT {k + 1}, '{t}'::text, coalesce(sum(q.n), 0)::bigint, "
        f"{_pg_salted('p_salt', _PG_JOIN_CHUNKS)} FROM "
        f"({_pg_chunks('(' + ' UNION ALL '.join(_new_rows(True, t, arg_lo, arg_hi)) + ')')}) q;"
        for k, t in enumerate(TABLES))
    # the planner's statistics of a table do not count the rows this transaction added: a seal of
    # many new rows gathers them first, or plans a parallel scan of a million rows as a small one
    # (and plans its queries for this seal's bounds: a plan cached for earlier, small seals would hash
    # a million new rows without parallel workers; small seals keep their cached plans)
    analyze = "\n".join(f"  IF hi_{t} - lo_{t} >= {ANALYZE_MIN} THEN ANALYZE {t}; "
                         "PERFORM set_config('plan_cache_mode', 'force_custom_plan', true); END IF;" for t in TABLES)
    his = ", ".join(hi[t] for t in TABLES)
    tables = (f"  SELECT string_agg(x.tbl || ':' || x.n || ':' || x.d, ';' ORDER BY x.k) INTO v_digests "
              f"FROM labkit_chain_new(ARRAY[{', '.join(lo[t] for t in TABLES)}], ARRAY[{his}], v_salt) x;")
    recompute = "\n".join(
        f"  RETURN QUERY WITH {_sealed_lines(True, t)}, agg AS (SELECT q.seq, sum(q.n) AS n, string_agg(q.d, "
        f"E'\\n' ORDER BY q.c) AS chunks FROM ({_pg_chunks('lines', 'WHERE l.seq IS NOT NULL', 'l.seq')}) q "
        f"GROUP BY q.seq) SELECT '{t}'::text, c.seq, coalesce(agg.n, 0)::bigint, CASE WHEN s.salt IS NULL THEN "
        f"NULL ELSE {_pg_salted('s.salt', 'agg.chunks')} END, NULL::text "
        "FROM chain c LEFT JOIN chain_salt s ON s.seq = c.seq LEFT JOIN agg ON agg.seq = c.seq "
        "WHERE p_seqs IS NULL OR c.seq = ANY(p_seqs) "
        f"UNION ALL SELECT '{t}'::text, NULL::integer, count(*)::bigint, NULL::text, (SELECT string_agg(z.k::text, "
        "',' ORDER BY z.k) FROM (SELECT l2.k FROM lines l2 WHERE l2.seq IS NULL ORDER BY l2.k LIMIT 20) z) "
        "FROM lines l WHERE l.seq IS NULL HAVING count(*) > 0;"
        for t in TABLES)
    return f"""
CREATE OR REPLACE FUNCTION labkit_chain_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'labkit: the hash chain is append-only' USING ERRCODE = 'check_violation';
END $$;

CREATE OR REPLACE FUNCTION labkit_chain_head() RETURNS TABLE (seq integer, head text) LANGUAGE plpgsql
  SECURITY DEFINER SET search_path = {{schema}} AS $$
BEGIN
  RETURN QUERY SELECT c.seq, c.head::text FROM chain c ORDER BY c.seq DESC LIMIT 1;
END $$;

CREATE OR REPLACE FUNCTION labkit_chain_digests(p_seqs integer[])
  RETURNS TABLE (tbl text, seq integer, n bigint, digest text, ids text) LANGUAGE plpgsql
  SECURITY DEFINER SET search_path = {{schema}} AS $$
#variable_conflict use_column
BEGIN
{recompute}
END $$;

-- The digests of each table's rows with ids in (p_lo[k], p_hi[k]] (annotations: also those whose history
-- grew), salted with p_salt. Invoker's rights: labkit_chain_seal calls it as the owner; anyone else who
-- could call it would hash only the rows they may read.
CREATE OR REPLACE FUNCTION labkit_chain_new(p_lo integer[], p_hi integer[], p_salt text)
  RETURNS TABLE (k integer, tbl text, n bigint, d text) LANGUAGE plpgsql SET search_path = {{schema}} AS $$
#variable_conflict use_column
BEGIN
{new_digests}
END $$;

CREATE OR REPLACE FUNCTION labkit_chain_seal(p_kind text, p_restate integer[], p_intact text) RETURNS integer
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = {{schema}} AS $$
DECLARE
  tip record; v_seq integer; v_prev text; v_salt text := replace(gen_random_uuid()::text, '-', '');
  v_at timestamptz := clock_timestamp(); v_digests text; v_restated text;
  v_body text; v_k integer;
{declare}
BEGIN
  PERFORM pg_advisory_xact_lock({_LOCK});
  IF p_kind NOT IN ({", ".join(f"'{k}'" for k in KINDS)}) THEN
    RAISE EXCEPTION 'labkit: unknown block kind %', p_kind USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_kind NOT IN ('write', 'outside') AND coalesce(labkit_role(), '') <> 'admin'
     AND NOT EXISTS (SELECT 1 FROM pg_tables WHERE tablename = 'chain' AND schemaname = current_schema()
                     AND tableowner = session_user) THEN
    RAISE EXCEPTION 'labkit: only an admin seals a % block', p_kind USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_restate IS NOT NULL AND p_kind <> 'erasure' THEN
    RAISE EXCEPTION 'labkit: only an erasure restates blocks' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO tip FROM chain ORDER BY chain.seq DESC LIMIT 1;
{bounds}
  IF p_kind IN ('write', 'outside', 'migration') AND p_restate IS NULL AND {same} THEN
    RETURN NULL;
  END IF;
  v_seq := coalesce(tip.seq, 0) + 1;
  v_prev := coalesce(tip.head, '{ZERO}');
{analyze}
{tables}
  IF p_restate IS NOT NULL THEN
    FOREACH v_k IN ARRAY p_restate LOOP
      UPDATE chain_salt SET salt = replace(gen_random_uuid()::text, '-', '') WHERE chain_salt.seq = v_k;
    END LOOP;
    SELECT json_object_agg(b.seq::text, b.o ORDER BY b.seq)::text INTO v_restated FROM (
      SELECT d.seq, json_object_agg(d.tbl, json_build_array(d.n, d.digest,
             coalesce((p_intact::json ->> (d.seq::text || ':' || d.tbl))::boolean, false)) ORDER BY d.tbl) AS o
      FROM labkit_chain_digests(p_restate) d WHERE d.seq IS NOT NULL GROUP BY d.seq) b;
  END IF;
  v_body := v_seq || '|' || p_kind || '|' || to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '|'
            || concat_ws(',', {his}) || '|' || v_digests || '|' || coalesce(v_restated, '');
  INSERT INTO chain (seq, at, kind, {_HIS}, digests, restated, prev, head)
  VALUES (v_seq, v_at, p_kind, {his}, v_digests, v_restated, v_prev,
          encode(sha256(convert_to(v_prev || E'\\n' || v_body, 'UTF8')), 'hex'));
  INSERT INTO chain_salt (seq, salt) VALUES (v_seq, v_salt);
  RETURN v_seq;
END $$;

CREATE OR REPLACE FUNCTION labkit_chain_begin() RETURNS integer LANGUAGE plpgsql
  SECURITY DEFINER SET search_path = {{schema}} AS $$
DECLARE v_timeout text := current_setting('lock_timeout');
BEGIN
  PERFORM set_config('lock_timeout', '60s', true);  -- as long as SQLite's busy timeout
  PERFORM pg_advisory_xact_lock({_LOCK});
  PERFORM set_config('lock_timeout', v_timeout, true);
  RETURN labkit_chain_seal('outside', NULL, NULL);
END $$;
"""
