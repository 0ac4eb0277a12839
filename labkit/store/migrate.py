"""Upgrade a project's schema in place (``labkit migrate``); a folder project is backed up first."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

from labkit._util.clock import utc_now, utc_stamp
from labkit.store import pg_access
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
            if version == 1:
                steps += _v1_to_v2(conn)
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
    if conn.dialect.name == "postgresql":
        pg_access.install(conn)
        login = conn.exec_driver_sql("SELECT session_user").scalar()
        conn.execute(sa.update(S.annotators).where(S.annotators.c.name == creator).values(db_user=login))
        steps.append("installed row-level security")
    return steps
