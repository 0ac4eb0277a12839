"""Upgrade a project's schema in place (``labkit migrate``); a folder project is backed up first.

Each step keeps every row. Schema 1 -> 2: subjects and consent, database logins. Schema
2 -> 3: gold answers move out of the image attributes annotators can read and write into
the ``gold`` table; annotations record who changed them (``updated_by``); the database
checks annotations and writes their history itself, keeps the audit log append-only
(:mod:`labkit.store.guards`), and on PostgreSQL its policies cover reads as well as
writes and every member's login is granted its role again (:mod:`labkit.store.pg_access`).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

from labkit._util.clock import utc_now, utc_stamp
from labkit.store import guards, pg_access
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
        with write_transaction(engine) as conn:
            if version < 2:
                steps += _v1_to_v2(conn)
            if version < 3:
                steps += _v2_to_v3(conn)
            conn.execute(sa.update(S.meta).where(S.meta.c.key == "schema_version")
                         .values(value=S.SCHEMA_VERSION))
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
        pg_access.install(conn)
        logins = conn.execute(sa.select(w.c.db_user, w.c.role).where(w.c.db_user.is_not(None))).all()
        for login, role in logins:
            if pg_access.role_exists(conn, login):
                pg_access.grant(conn, login, role)
        steps.append(f"installed row-level security for reads and writes; granted {len(logins)} member "
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
