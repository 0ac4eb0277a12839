"""Upgrade a project's schema in place (``labkit migrate``); a folder project is backed up first.

Each step keeps every row. Schema 1 -> 2: subjects and consent, database logins. Schema
2 -> 3: gold answers move out of the image attributes annotators can read and write into
the ``gold`` table; annotations record who changed them (``updated_by``); the database
checks annotations and writes their history itself, keeps the audit log append-only
(:mod:`labkit.store.guards`), and on PostgreSQL its policies cover reads as well as
writes and every member's login is granted its role again (:mod:`labkit.store.pg_access`).
Schema 3 -> 4: a history row records who made the version it holds (``made_by``, filled
in from the history where it is known), and the hash chain (:mod:`labkit.store.chain`)
begins with a genesis block sealing every row the project holds; every later write is
sealed into it.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

from labkit._util.clock import utc_now, utc_stamp
from labkit.store import chain, guards, pg_access
from labkit.store import schema as S
from labkit.store.engine import create_engine, is_url, make_url, write_transaction


def migrate(location: str | Path, *, backup: bool = True) -> list[str]:
    """Bring the project at ``location`` to :data:`~labkit.store.schema.SCHEMA_VERSION`.

    Returns the steps taken (empty when it is already current). A folder project's
    ``project.db`` is first copied (SQLite's online backup) to
    ``project.db.v<old>.<time>.bak``; the upgrade itself is one transaction.
    """
    url = make_url(location)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "schema_version")).scalar()
        if version == S.SCHEMA_VERSION:
            return []
        if not isinstance(version, int) or version > S.SCHEMA_VERSION:
            raise ValueError(f"cannot migrate schema version {version!r} to {S.SCHEMA_VERSION}")
        steps = []
        if backup and not is_url(location):
            steps.append(f"backed up to {_backup(Path(location) / 'project.db', version)}")
        with write_transaction(engine, sealed=False) as conn:  # it builds the chain
            if version < 4:
                _v4_tables(conn)  # what the rules installed from schema 3 on refer to
            if version < 2:
                steps += _v1_to_v2(conn)
            if version < 3:
                steps += _v2_to_v3(conn)
            if version < 4:
                steps += _v3_to_v4(conn)
            if version < 5:  # works whether or not the 3 -> 4 step ran before
                steps += _v4_to_v5(conn)
            conn.execute(sa.update(S.meta).where(S.meta.c.key == "schema_version")
                         .values(value=S.SCHEMA_VERSION))
            if conn.execute(sa.select(S.meta.c.key).where(S.meta.c.key == "checked_above")).first() is None:
                # rows stored so far may predate the database's checks: annotations() checks them again
                conn.execute(sa.insert(S.meta).values(key="checked_above", value=conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(S.annotations.c.id), 0))).scalar_one()))
            chain.seal(conn, "migration")  # what later steps changed after the genesis block
        return steps
    finally:
        engine.dispose()


def _backup(db: Path, version: int) -> Path:
    stamp = utc_stamp()
    out = db.with_name(f"{db.name}.v{version}.{stamp}.bak")
    src, dst = sqlite3.connect(db), sqlite3.connect(out)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return out


def _v1_to_v2(conn) -> list[str]:
    """Subjects and consent; database logins; the creator becomes an admin member."""
    conn.exec_driver_sql("ALTER TABLE annotators ADD COLUMN db_user VARCHAR(63)")
    conn.exec_driver_sql("CREATE UNIQUE INDEX ix_annotators_db_user ON annotators (db_user)")
    conn.exec_driver_sql("ALTER TABLE images ADD COLUMN consent VARCHAR(16)")
    conn.exec_driver_sql("CREATE INDEX ix_images_consent ON images (consent)")
    S.subjects.create(conn)
    t = utc_now()
    names = [s for s in conn.execute(sa.select(S.images.c.subject).distinct()).scalars() if s is not None]
    if names:
        conn.execute(sa.insert(S.subjects), [{"subject": s, "consent": "unknown", "created_at": t} for s in names])
        conn.execute(sa.update(S.images).where(S.images.c.subject.is_not(None)).values(consent="unknown"))
    steps = ["added annotators.db_user, images.consent and the subjects table",
             f"registered {len(names)} subject(s) with consent 'unknown'"]
    creator = conn.execute(sa.select(S.audit_log.c.actor).where(S.audit_log.c.action == "create_project")
                           .order_by(S.audit_log.c.id)).scalar()
    known = conn.execute(sa.select(S.annotators.c.role).where(S.annotators.c.name == creator)).scalar()
    if creator and known is None:
        conn.execute(sa.insert(S.annotators).values(name=creator, role="admin", simulated=False, created_at=t))
        steps.append(f"made the project's creator {creator!r} an admin member")
    if conn.dialect.name == "postgresql":  # row-level security comes with schema 3
        login = conn.exec_driver_sql("SELECT session_user").scalar()
        conn.execute(sa.update(S.annotators).where(S.annotators.c.name == creator).values(db_user=login))
    return steps


def _v4_tables(conn: sa.Connection) -> None:
    """The chain's tables and functions and ``annotation_history.made_by`` (before any rule refers to them)."""
    if "made_by" not in {c["name"] for c in sa.inspect(conn).get_columns("annotation_history")}:
        conn.exec_driver_sql("ALTER TABLE annotation_history ADD COLUMN made_by VARCHAR(256)")
    S.chain_metadata.create_all(conn)
    chain.install(conn)


def _v3_to_v4(conn: sa.Connection) -> list[str]:
    """Who made each version in the history; the hash chain, from a genesis block of every row."""
    guards.uninstall(conn)  # the history is append-only: made_by is filled in first
    h = S.annotation_history
    prior = h.alias("prior")
    maker = sa.select(prior.c.changed_by).where(prior.c.annotation_id == h.c.annotation_id,
                                                prior.c.version == h.c.version - 1).scalar_subquery()
    filled = conn.execute(sa.update(h).where(h.c.made_by.is_(None), h.c.version > 1).values(made_by=maker)).rowcount
    guards.install(conn)
    chain.install(conn)
    if conn.dialect.name == "postgresql":
        _regrant(conn)
    seq = chain.seal(conn, "genesis")
    digests = conn.execute(sa.select(S.chain.c.digests).where(S.chain.c.seq == seq)).scalar_one()
    held = ", ".join(f"{n} {t}" for t, n, _ in (part.split(":") for part in digests.split(";")))
    return [f"recorded who made {filled} earlier annotation version(s) in the history (who made a first "
            "version was not kept before schema 4)",
            f"began the hash chain: block {seq} seals every row ({held}); `labkit verify` checks it from now on"]


def _v2_to_v3(conn: sa.Connection) -> list[str]:
    """Gold answers in their own table; database-side checks, history and audit rules; read policies."""
    pg = conn.dialect.name == "postgresql"
    guards.uninstall(conn)  # the data changes below must not fire earlier triggers
    steps = []
    if "updated_by" not in {c["name"] for c in sa.inspect(conn).get_columns("annotations")}:
        conn.exec_driver_sql("ALTER TABLE annotations ADD COLUMN updated_by VARCHAR(256)")
    a, w = S.annotations, S.annotators
    conn.execute(sa.update(a).where(a.c.updated_by.is_(None)).values(
        updated_by=sa.select(w.c.name).where(w.c.id == a.c.annotator_id).scalar_subquery()))
    S.gold.create(conn, checkfirst=True)
    steps += _move_gold(conn)
    if pg:
        for check in S.annotations.constraints:
            if check.info.get("since", 3) > 3:  # a later step adds it, with its columns
                continue
            if isinstance(check, sa.CheckConstraint) and not conn.exec_driver_sql(
                    "SELECT 1 FROM pg_constraint WHERE conname = %s AND conrelid = 'annotations'::regclass",
                    (check.name,)).first():
                # NOT VALID: rows stored before are kept (and reported below); new ones are checked
                sql = f"ALTER TABLE annotations ADD CONSTRAINT {check.name} CHECK ({check.sqltext}) NOT VALID"
                conn.exec_driver_sql(sql.replace("%", "%%"))  # psycopg reads % as a placeholder
    guards.install(conn)
    steps.append("annotations are checked by the database, which writes their history; the audit log is "
                 "append-only")
    if pg:
        steps.append(f"installed row-level security for reads and writes; granted {_regrant(conn)} member "
                     "login(s) their role again")
    bad = guards.invalid_annotations(conn)
    if bad:
        steps.append(f"{len(bad)} stored annotation(s) fail the new checks (ids {bad[:20]}); annotations() "
                     "and exports skip them with a warning until an admin deletes or repairs them")
    return steps


def _move_gold(conn: sa.Connection) -> list[str]:
    """Move ``attributes["gold"]`` of every image into the ``gold`` table (answers that are classes)."""
    im, log, w = S.images, S.audit_log, S.annotators
    classes = dict(conn.execute(sa.select(S.classes.c.name, S.classes.c.id)).all())
    admins = set(conn.execute(sa.select(w.c.name).where(w.c.role == "admin")).scalars())
    # Who last wrote each image's "gold" attribute: before schema 3 annotators could.
    last: dict[int, str] = {}
    for target_id, actor, details in conn.execute(sa.select(log.c.target_id, log.c.actor, log.c.details).where(
            log.c.action == "set_image_attributes").order_by(log.c.id)):
        if target_id is not None and isinstance(details, dict) and "gold" in (details.get("after") or {}):
            last[int(target_id)] = actor
    moved, kept, suspect = 0, [], []
    t = utc_now()
    for image_id, attributes in conn.execute(sa.select(im.c.id, im.c.attributes)).all():
        if not isinstance(attributes, dict) or "gold" not in attributes:
            continue
        label = attributes["gold"]
        if label not in classes:
            kept.append(image_id)
            continue
        conn.execute(sa.insert(S.gold).values(image_id=image_id, class_id=classes[label],
                                              set_by=last.get(image_id, "migration"), set_at=t))
        conn.execute(sa.update(im).where(im.c.id == image_id).values(
            attributes={k: v for k, v in attributes.items() if k != "gold"}))
        moved += 1
        if image_id in last and last[image_id] not in admins:
            suspect.append(image_id)
    steps = [f"moved {moved} gold answer(s) out of image attributes into the gold table"] if moved else []
    if suspect:
        steps.append(f"check the gold answers of images {suspect[:20]}: a non-admin last wrote them")
    if kept:
        steps.append(f"left the 'gold' attribute of images {kept[:20]}: not a class of the project")
    return steps


# --------------------------------------------------------------- 4 -> 5 --
_PROPOSAL_COLUMNS = ("state", "reviewed_by", "reviewed_at", "replaced_by")


def _v4_to_v5(conn: sa.Connection) -> list[str]:
    """Proposals: review state columns and the source 'pool', checked by the database."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("annotations")}
    guards.uninstall(conn)
    for name in _PROPOSAL_COLUMNS:
        if name not in have:
            col = S.annotations.c[name]
            refs = "".join(f" REFERENCES {fk.column.table.name} ({fk.column.name})" for fk in col.foreign_keys)
            conn.exec_driver_sql(f"ALTER TABLE annotations ADD COLUMN {name} "
                                 f"{col.type.compile(dialect=conn.dialect)}{refs}")
    S.ensure_indexes(conn)  # per class; an image's current rows; proposals by state
    checks = [c for c in S.annotations.constraints if isinstance(c, sa.CheckConstraint)
              and (c.info.get("since") == 5 or c.name == "annotations_source")]
    if conn.dialect.name == "sqlite":
        _sqlite_set_checks(conn, checks)
    else:
        for check in checks:
            # NOT VALID: rows stored before keep their place; new and changed ones are checked
            conn.exec_driver_sql(f"ALTER TABLE annotations DROP CONSTRAINT IF EXISTS {check.name}")
            sql = f"ALTER TABLE annotations ADD CONSTRAINT {check.name} CHECK ({check.sqltext}) NOT VALID"
            conn.exec_driver_sql(sql.replace("%", "%%"))  # psycopg reads % as a placeholder
    guards.install(conn)
    steps = ["annotations can be proposals (state, reviewed_by, reviewed_at, replaced_by) of models and "
             "vendors, and the model pool ('pool') is a source; the database checks their review"]
    if conn.dialect.name == "postgresql":
        _regrant(conn)
        steps.append("annotators may read and review the proposals of their images (row-level security)")
    return steps


def _regrant(conn: sa.Connection) -> int:
    """PostgreSQL: install the access rules again and grant every member's login its role; return how many."""
    pg_access.install(conn)
    w = S.annotators
    logins = conn.execute(sa.select(w.c.db_user, w.c.role).where(w.c.db_user.is_not(None))).all()
    for login, role in logins:
        if pg_access.role_exists(conn, login):
            pg_access.grant(conn, login, role)
    return len(logins)


def _sqlite_set_checks(conn: sa.Connection, checks: list[sa.CheckConstraint]) -> None:
    """Replace (or add) named CHECK constraints of SQLite's ``annotations`` in place.

    SQLite keeps CHECK constraints in the table's ``CREATE TABLE`` text and cannot alter
    them; its documented way is to edit that text (``PRAGMA writable_schema``, then a new
    ``schema_version``). Safe here because every stored row satisfies the new checks:
    the source check only admits one more source, and the others constrain columns that
    are NULL in every row stored before. Rows are not rewritten.
    """
    sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'annotations'"
                               ).scalar_one()
    for check in checks:
        sql = _without_check(sql, str(check.name))
        sql = sql.rstrip().removesuffix(")").rstrip() + f", CONSTRAINT {check.name} CHECK ({check.sqltext}))"
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        conn.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'annotations'",
                             (sql,))
        conn.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.exec_driver_sql("PRAGMA writable_schema = OFF")


def _without_check(sql: str, name: str) -> str:
    """``CREATE TABLE`` text without its constraint ``CONSTRAINT <name> CHECK (...)``, if it has one."""
    at = sql.find(f"CONSTRAINT {name} CHECK (")
    if at < 0:
        return sql
    depth, quote, end = 0, "", -1
    for k in range(sql.index("(", at), len(sql)):
        ch = sql[k]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                end = k + 1
                break
    if end < 0:
        raise ValueError(f"cannot read the CHECK constraint {name} of the annotations table: {sql!r}")
    return sql[:sql.rindex(",", 0, at)] + sql[end:]
