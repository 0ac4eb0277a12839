"""The SQL text of the hash chain (:mod:`labkit.store.chain`): each chained table's *line*, the
rows a seal covers, each block's rows, and the PostgreSQL functions that seal and recompute.

Text only: nothing here touches a database. A line is the same text on both backends for
labkit's rows but for floats (SQLite: 17 significant digits; PostgreSQL: the IEEE bits in hex).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from labkit.store import schema as S

__all__ = ["AT_UTC", "CHUNK", "HIS", "KINDS", "MEMBER_FUNCTIONS", "OWN_FUNCTIONS", "READER_FUNCTIONS", "TABLES", "ZERO",
           "line", "new_rows", "pg_functions", "sealed_lines"]

TABLES = S.CHAINED
#: What a block is: the first; a labkit write; rows written outside labkit, found when a
#: labkit write began; an erasure, restating the blocks it changed; a schema migration.
KINDS = ("genesis", "write", "outside", "erasure", "migration")
ANALYZE_MIN = 100_000  # new rows of a table from which a PostgreSQL seal updates its statistics first
#: ... and sorts its lines with this working memory (MiB, each of its processes) instead of the
#: default 4 MiB, which sends 860,000 lines (~300 MB) to temporary files and back.
SEAL_WORK_MEM_MB = 128
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


def _utc(e: str) -> str:
    """PostgreSQL: the time ``e`` as a line writes it, in UTC to the microsecond."""
    return f"to_char({e} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"


AT_UTC = _utc("at")
HIS = ", ".join(f"{t}_hi" for t in TABLES)


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
    if pg and typ == "ts":  # 26 characters up to year 9999 (BC too: YYYY pads, has no sign): to_char once, not twice
        text = _utc(e)
        return "%s:%s", [f"CASE WHEN {e} < '10000-01-01 00:00:00+00' THEN 26 ELSE length({text}) END", text]
    if pg:
        e = f"CAST({e} AS TEXT)"
    return "%s:%s", [f"length({e})", e]


def _join(pg: bool, fields: Iterable[tuple[str, list[str]]]) -> str:
    """SQL: the fields joined by ``|``, built in one pass (``printf``/``format``, not a chain of ``||``)."""
    fmts, args = zip(*fields)
    return f"{'format' if pg else 'printf'}('{'|'.join(fmts)}', {', '.join(a for arg in args for a in arg)})"


def line(pg: bool, table: str, alias: str) -> str:
    return _join(pg, (_field(pg, typ, f"{alias}.{name}") for name, typ in _FIELDS[table]))


def _version_line(pg: bool, history: bool) -> str:
    return _join(pg, (_field(pg, typ, h if history else a) for typ, a, h in _VERSION))


def new_rows(pg: bool, table: str, lo: Mapping[str, str], hi: Mapping[str, str]) -> list[str]:
    """SQL ``(k, line)`` of the rows of ``table`` a seal covers, in queries whose results,
    each sorted by ``k`` and taken in turn, are sorted: ids in ``(lo, hi]``, and for
    annotations first the current version of those below it whose history grew."""
    if table != "annotations":
        return [f"SELECT x.id AS k, {line(pg, table, 'x')} AS line FROM {table} x "
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


def sealed_lines(pg: bool, table: str) -> str:
    """SQL CTEs ending in ``lines (seq, k, line)``: every row of ``table`` now, in the block holding it.

    Annotations: each version a block sealed, rebuilt from the current row or, once
    superseded, from its history row. A block sealed annotation ``A`` at version 1 if it
    holds ``A``'s id, or at one above the highest version of ``A``'s history rows it holds.
    """
    if table != "annotations":
        return (f"{_assigned(pg, table, 'g')}, lines AS (SELECT g.seq AS seq, x.id AS k, "
                f"{line(pg, table, 'x')} AS line FROM g JOIN {table} x ON x.id = g.id)")
    return (f"{_assigned(pg, 'annotations', 'ga')}, {_assigned(pg, 'annotation_history', 'gh')}, "
            "sv AS (SELECT aid, seq, max(v) AS v FROM (SELECT h.annotation_id AS aid, gh.seq AS seq, "
            "h.version + 1 AS v FROM gh JOIN annotation_history h ON h.id = gh.id "
            "UNION ALL SELECT ga.id, ga.seq, 1 FROM ga) u GROUP BY aid, seq), "
            f"lines AS (SELECT sv.seq AS seq, sv.aid AS k, CASE WHEN a.version = sv.v THEN {_version_line(pg, False)} "
            f"WHEN h.id IS NOT NULL THEN {_version_line(pg, True)} ELSE 'missing' END AS line FROM sv "
            "LEFT JOIN annotations a ON a.id = sv.aid "
            "LEFT JOIN annotation_history h ON h.annotation_id = sv.aid AND h.version = sv.v)")


def _pg_chunks(lines: str, where: str = "", by: str = "") -> str:
    """PostgreSQL: ``(by..., c, n, d)``, the chunks of :func:`_digest` of ``lines (k, line)``."""
    group = f"{by}, " if by else ""
    return (f"SELECT {group}l.k / {CHUNK} AS c, count(*) AS n, encode(sha256(convert_to(string_agg(l.line, "
            f"E'\\n' ORDER BY l.k), 'UTF8')), 'hex') AS d FROM {lines} l {where} GROUP BY {group}l.k / {CHUNK}")


_PG_JOIN_CHUNKS = "string_agg(q.d, E'\\n' ORDER BY q.c)"


def _pg_salted(salt: str, chunks: str) -> str:
    """PostgreSQL: the digest of :func:`_digest` from the salt and the chunks' hashes joined by newlines."""
    return f"encode(sha256(convert_to({salt} || E'\\n' || coalesce({chunks}, ''), 'UTF8')), 'hex')"


def pg_functions() -> str:
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
        f"({_pg_chunks('(' + ' UNION ALL '.join(new_rows(True, t, arg_lo, arg_hi)) + ')')}) q;"
        for k, t in enumerate(TABLES))
    # the planner's statistics of a table do not count the rows this transaction added: a seal of
    # many new rows gathers them first, or plans a parallel scan of a million rows as a small one
    # (and plans its queries for this seal's bounds: a plan cached for earlier, small seals would hash
    # a million new rows without parallel workers; small seals keep their cached plans)
    analyze = "\n".join(f"  IF hi_{t} - lo_{t} >= {ANALYZE_MIN} THEN ANALYZE {t}; "
                         "PERFORM set_config('plan_cache_mode', 'force_custom_plan', true); "
                         f"PERFORM set_config('work_mem', '{SEAL_WORK_MEM_MB}MB', true); END IF;" for t in TABLES)
    his = ", ".join(hi[t] for t in TABLES)
    tables = (f"  SELECT string_agg(x.tbl || ':' || x.n || ':' || x.d, ';' ORDER BY x.k) INTO v_digests "
              f"FROM labkit_chain_new(ARRAY[{', '.join(lo[t] for t in TABLES)}], ARRAY[{his}], v_salt) x;")
    recompute = "\n".join(
        f"  RETURN QUERY WITH {sealed_lines(True, t)}, agg AS (SELECT q.seq, sum(q.n) AS n, string_agg(q.d, "
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
  v_body := v_seq || '|' || p_kind || '|' || {_utc('v_at')} || '|'
            || concat_ws(',', {his}) || '|' || v_digests || '|' || coalesce(v_restated, '');
  INSERT INTO chain (seq, at, kind, {HIS}, digests, restated, prev, head)
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
