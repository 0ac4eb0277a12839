"""Schema 2 -> 4 and 3 -> 4 (``labkit migrate``) on SQLite and PostgreSQL: every row kept, the new rules
in force, the hash chain begun."""
from __future__ import annotations

import json
import sqlite3
import uuid

import pytest
import sqlalchemy as sa

from labkit import AccessDenied, Project, ProjectError
from labkit.services import gold_answers
from labkit.services.verify import verify_project
from labkit.store import schema as S
from labkit.store.migrate import migrate

# What schema 2 installed on PostgreSQL (labkit 0.2's pg_access): write-only policies.
V2_FUNCTIONS = """
CREATE OR REPLACE FUNCTION labkit_me() RETURNS integer LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = public AS $$ SELECT id FROM annotators WHERE db_user = session_user $$;
CREATE OR REPLACE FUNCTION labkit_role() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = public AS $$ SELECT role FROM annotators WHERE db_user = session_user $$;
CREATE OR REPLACE FUNCTION labkit_name() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = public AS $$ SELECT name FROM annotators WHERE db_user = session_user $$;
"""
_ASSIGNED = "EXISTS (SELECT 1 FROM assignments s WHERE s.image_id = {t}.image_id AND s.annotator_id = labkit_me())"
V2_POLICIES = {
    "annotations": [("lk_read", "SELECT", "true", None),
                    ("lk_insert", "INSERT", None,
                     "annotator_id = labkit_me() AND " + _ASSIGNED.format(t="annotations")),
                    ("lk_update", "UPDATE", "annotator_id = labkit_me()", "annotator_id = labkit_me()")],
    "annotation_history": [("lk_read", "SELECT", "true", None),
                           ("lk_insert", "INSERT", None, "EXISTS (SELECT 1 FROM annotations a WHERE "
                                                         "a.id = annotation_id AND a.annotator_id = labkit_me())")],
    "assignments": [("lk_read", "SELECT", "true", None),
                    ("lk_update", "UPDATE", "annotator_id = labkit_me()", "annotator_id = labkit_me()")],
    "images": [("lk_read", "SELECT", "true", None),
               ("lk_update", "UPDATE", "EXISTS (SELECT 1 FROM assignments s WHERE s.image_id = images.id "
                                       "AND s.annotator_id = labkit_me())", None)],
    "audit_log": [("lk_read", "SELECT", "true", None), ("lk_insert", "INSERT", None, "actor = labkit_name()")],
}
V2_TABLES = ("meta", "classes", "annotators", "images", "assignments", "annotations", "annotation_history",
             "audit_log", "subjects")


def drop_row_level_security(conn) -> None:
    """Remove every labkit policy, function and trigger of a PostgreSQL project (as before schema 2)."""
    for table, name in conn.exec_driver_sql("SELECT tablename, policyname FROM pg_policies "
                                            "WHERE schemaname = current_schema()").all():
        conn.exec_driver_sql(f'DROP POLICY "{name}" ON "{table}"')
    for (table,) in conn.exec_driver_sql("SELECT relname FROM pg_class WHERE relrowsecurity AND "
                                         "relnamespace = current_schema()::regnamespace").all():
        conn.exec_driver_sql(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')
    for (fn,) in conn.exec_driver_sql("SELECT oid::regprocedure::text FROM pg_proc WHERE proname LIKE 'labkit%%' "
                                      "AND pronamespace = current_schema()::regnamespace").all():
        conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {fn} CASCADE")


def drop_chain(conn, backend: str) -> None:
    """Remove what schema 4 added: the hash chain's tables and ``annotation_history.made_by``
    (SQLite: drop the triggers first, as they name the column)."""
    run = conn.execute if backend == "sqlite" else conn.exec_driver_sql
    if backend == "sqlite":
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
    else:
        for fn in ("labkit_chain_begin()", "labkit_chain_seal(text, integer[], text)", "labkit_chain_head()",
                   "labkit_chain_digests(integer[])", "labkit_chain_check()"):
            run(f"DROP FUNCTION IF EXISTS {fn} CASCADE")
    run("DROP TABLE chain")
    run("DROP TABLE chain_salt")
    run("ALTER TABLE annotation_history DROP COLUMN made_by")


def _downgrade_to_v2(project, logins: dict[str, str]) -> None:
    """Turn a schema-3 project into what labkit 0.2 (schema 2) wrote: gold answers in image attributes
    (one last written by annotator ana), no database checks, triggers, gold table or updated_by; on
    PostgreSQL the schema-2 policies and grants."""
    engine = project.store.ctx.engine
    with engine.begin() as conn:
        gold = conn.execute(sa.select(S.gold.c.image_id, S.classes.c.name)
                            .join(S.classes, S.gold.c.class_id == S.classes.c.id)).all()
    if project.backend == "sqlite":
        con = sqlite3.connect(engine.url.database, isolation_level=None)
        drop_chain(con, "sqlite")
        con.execute("DROP TABLE gold")
        con.execute("ALTER TABLE annotations DROP COLUMN updated_by")
        run = con.execute
    else:
        conn = engine.connect()
        drop_row_level_security(conn)
        drop_chain(conn, "postgresql")
        for check in ("annotations_kind", "annotations_source", "annotations_score"):
            conn.exec_driver_sql(f"ALTER TABLE annotations DROP CONSTRAINT {check}")
        conn.exec_driver_sql("DROP TABLE gold")
        conn.exec_driver_sql("ALTER TABLE annotations DROP COLUMN updated_by")
        conn.exec_driver_sql(V2_FUNCTIONS)
        for table, policies in V2_POLICIES.items():
            conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            conn.exec_driver_sql(f"CREATE POLICY lk_admin ON {table} FOR ALL USING (labkit_role() = 'admin') "
                                 "WITH CHECK (labkit_role() = 'admin')")
            for name, cmd, using, check in policies:
                conn.exec_driver_sql(f"CREATE POLICY {name} ON {table} FOR {cmd}" + (f" USING ({using})" if using
                                     else "") + (f" WITH CHECK ({check})" if check else ""))
        for login, role in logins.items():  # schema 2's grants
            conn.exec_driver_sql(f'REVOKE ALL PRIVILEGES ON {", ".join(V2_TABLES)} FROM "{login}"')
            readable = [t for t in V2_TABLES if t != "subjects" or role == "admin"]
            conn.exec_driver_sql(f'GRANT SELECT ON {", ".join(readable)} TO "{login}"')
            conn.exec_driver_sql(f'GRANT INSERT ON audit_log TO "{login}"')
            if role == "annotator":
                conn.exec_driver_sql(f'GRANT INSERT, UPDATE ON annotations TO "{login}"')
                conn.exec_driver_sql(f'GRANT INSERT ON annotation_history TO "{login}"')

        def run(sql, params=()):
            return conn.exec_driver_sql(sql.replace("?", "%s"), tuple(params))
    ana = run("SELECT id FROM annotators WHERE name = 'ana'").fetchall()[0][0]
    for image, label in gold:
        attrs = json.loads(run("SELECT attributes FROM images WHERE id = ?", (image,)).fetchall()[0][0]) \
            if project.backend == "sqlite" else run("SELECT attributes FROM images WHERE id = ?", (image,)).scalar()
        run("UPDATE images SET attributes = ? WHERE id = ?", (json.dumps({**attrs, "gold": label}), image))
    tampered = gold[-1][0]  # schema 2 let annotators rewrite the answer they are scored against
    run("INSERT INTO audit_log (at, actor, action, target, target_id, details) VALUES "
        "('2026-01-01 00:00:00', 'ana', 'set_image_attributes', 'images', ?, ?)",
        (tampered, json.dumps({"before": {"gold": "cat"}, "after": {"gold": "dog"}})))
    # a row schema 2 let an annotator store: it must survive the migration, and be reported
    run("INSERT INTO annotations (image_id, annotator_id, kind, class_id, geometry, score, source, provenance, "
        "version, created_at, updated_at) VALUES (1, ?, 'box', 1, '{\"x0\": \"evil\"}', NULL, 'human', '{}', 1, "
        "'2026-01-01 00:00:00', '2026-01-01 00:00:00')", (ana,))
    run("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    run("DELETE FROM meta WHERE key = 'checked_above'")  # labkit before it did not record it
    if project.backend == "sqlite":
        con.close()
    else:
        conn.commit()
        conn.close()


def _rows(project) -> dict[str, list[tuple]]:
    """Every row of the tables schema 2 had, with schema 2's columns, gold answers out of the attributes."""
    out = {}
    with project.store.ctx.engine.connect() as conn:
        for t in S.metadata.sorted_tables:
            if t.name == "gold":
                continue
            cols = [c for c in t.c if c.name not in ("updated_by", "made_by")]
            rows = conn.execute(sa.select(*cols).order_by(*t.primary_key.columns)).all()
            if t.name == "meta":  # the rows a migration changes (and adds: where the database began to check)
                rows = [r for r in rows if r[0] not in ("schema_version", "checked_above")]
            if t.name == "images":
                rows = [tuple({k: v for k, v in x.items() if k != "gold"} if c.name == "attributes" else x
                              for c, x in zip(cols, r)) for r in rows]
            out[t.name] = [tuple(r) for r in rows]
    return out


@pytest.fixture
def v2_project(location, image_files, tmp_path):
    """A schema-2 project with members (logins on PostgreSQL), images of subjects, annotations with
    history, gold answers in image attributes and one invalid row; yields (project location, logins)."""
    from labkit.services import add_gold

    pg = isinstance(location, str)
    tag = uuid.uuid4().hex[:6]
    logins = {f"ana_{tag}": "annotator", f"eve_{tag}": "viewer"} if pg else {}
    p = Project.create(location, classes=["cat", "dog"], workdir=tmp_path / "work")
    for name, role in (("ana", "annotator"), ("eve", "viewer")):
        if pg:
            p.add_annotator(name, role=role, password=f"pw-{name}-{tag}", db_user=f"{name}_{tag}")
        else:
            p.add_annotator(name, role=role)
    p.add_images(image_files, subject=["p1", "p1", "p2", "p2", "p3"], consent="given")
    p.assign([1, 2, 3], ["ana"])
    box = p.add_annotation(image=1, kind="box", label="cat", annotator="ana", geometry=[1, 1, 9, 9])
    p.update_annotation(box, label="dog")
    p.delete_annotation(box)
    p.restore_annotation(box)
    p.add_annotation(image=2, kind="label", label="dog", annotator="ana")
    add_gold(p, {2: "dog", 3: "cat"})
    _downgrade_to_v2(p, logins)
    before = _rows(p)
    p.close()
    yield location, logins, tag, before


def _url(location, login, tag):
    name = login.split("_")[0]
    return (sa.make_url(location).set(username=login, password=f"pw-{name}-{tag}")
            .render_as_string(hide_password=False))


def test_migrate_v2_keeps_every_row_and_installs_the_rules(v2_project, tmp_path):
    location, logins, tag, before = v2_project
    work = tmp_path / "work"
    with pytest.raises(ProjectError, match=r"schema version 2 is older.*migrate"):
        Project.open(location, workdir=work)
    if isinstance(location, str):
        text = "\n".join(migrate(location))
    else:  # the command line, which backs a folder project up first
        from click.testing import CliRunner

        from labkit.cli import main

        res = CliRunner().invoke(main, ["migrate", "--project", str(location)])
        assert res.exit_code == 0, res.output
        text = res.output
        assert "backed up" in text and list(location.glob("project.db.v2.*.bak"))
    assert "moved 2 gold answer(s)" in text and "check the gold answers of images [3]" in text
    assert "1 stored annotation(s) fail the new checks (ids [3])" in text
    assert ("row-level security" in text) == isinstance(location, str)
    assert migrate(location) == []  # already current
    p = Project.open(location, workdir=work)
    assert _rows(p) == before  # every row kept
    with p.store.ctx.connect() as conn:
        version = conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "schema_version")).scalar()
        assert version == S.SCHEMA_VERSION
    assert gold_answers(p).to_dict() == {2: "dog", 3: "cat"}
    assert not any("gold" in a for a in p.images()["attributes"])
    with p.store.ctx.connect() as conn:  # rows stored so far are checked again on every read
        assert conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "checked_above")).scalar() == 3
    with pytest.warns(UserWarning, match="annotation 3"):
        assert p.annotations().index.tolist() == [1, 2]
    hist = p.annotation_history(1)  # migrated history kept; new versions written by the database
    assert hist.index.tolist() == [1, 2, 3, 4]
    with p.store.ctx.connect() as conn:  # who made each superseded version, where the history knew it
        made = conn.execute(sa.select(S.annotation_history.c.made_by).where(S.annotation_history.c.annotation_id == 1)
                            .order_by(S.annotation_history.c.version)).scalars().all()
    assert made == [None, p.user, p.user]
    assert "began the hash chain: block 1 seals every row" in text
    report = verify_project(p, progress=False)  # the genesis block holds every migrated row
    assert report.attrs["chain"]["problems"] == [] and report.attrs["chain"]["blocks"] == 1
    p.update_annotation(1, label="cat")
    assert p.annotation_history(1).index.tolist() == [1, 2, 3, 4, 5]
    assert p.annotation_history(1)["changed_by"].iloc[-2] == p.user
    p.delete_annotation(3)  # the bad row can be retired
    assert p.annotations().index.tolist() == [1, 2]
    if p.backend == "sqlite":
        with pytest.raises(sqlite3.IntegrityError, match="labkit"):
            con = sqlite3.connect(p.store.ctx.engine.url.database)
            with con:
                con.execute("UPDATE audit_log SET actor = 'x'")
        p.close()
        return
    p.close()
    ana_login = next(login for login, role in logins.items() if role == "annotator")
    eng = sa.create_engine(_url(location, ana_login, tag).replace("postgresql://", "postgresql+psycopg://"))
    try:
        for sql in ("SELECT subject FROM images", "SELECT * FROM gold", "SELECT * FROM audit_log",
                    "INSERT INTO annotation_history (annotation_id, version, class_id, provenance, valid_from, "
                    "valid_to, change, changed_by) VALUES (1, 9, 1, '{}', now(), now(), 'update', 'x')"):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), eng.begin() as conn:
                conn.exec_driver_sql(sql)
    finally:
        eng.dispose()
    ana = Project.open(_url(location, ana_login, tag), workdir=work)  # the schema-2 login, regranted
    assert ana.whoami()["role"] == "annotator" and sorted(ana.images().index) == [1, 2, 3]
    ana.add_annotation(image=3, kind="label", label="cat", annotator="ana")
    with pytest.raises(AccessDenied, match="gold"):
        gold_answers(ana)
    ana.close()


@pytest.fixture
def v3_project(location, image_files, tmp_path):
    """A schema-3 project: members, images of subjects, annotations with history, an audit log; no hash
    chain and no ``annotation_history.made_by``. Yields its location."""
    p = Project.create(location, classes=["cat", "dog"], workdir=tmp_path / "work")
    p.add_annotator("ana")
    p.add_images(image_files, subject=["p1", "p1", "p2", "p2", "p3"], consent="given")
    box = p.add_annotation(image=1, kind="box", label="cat", annotator="ana", geometry=[1, 1, 9, 9], score=0.75)
    p.update_annotation(box, label="dog")
    p.update_annotation(box, geometry=[2, 2, 9, 9])
    p.add_annotation(image=4, kind="label", label="dog", annotator="ana")
    engine = p.store.ctx.engine
    if p.backend == "sqlite":
        con = sqlite3.connect(engine.url.database, isolation_level=None)
        drop_chain(con, "sqlite")
        con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        con.execute("DELETE FROM meta WHERE key = 'checked_above'")
        con.close()
    else:
        with engine.begin() as conn:
            drop_chain(conn, "postgresql")
            conn.exec_driver_sql("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
            conn.exec_driver_sql("DELETE FROM meta WHERE key = 'checked_above'")
    before = _rows(p)
    p.close()
    yield location, before


def test_migrate_v3_begins_the_hash_chain(v3_project, tmp_path):
    """Schema 3 -> 4: every row kept, who made each superseded version filled in where the history knows
    it, and a genesis block sealing every row, so verify checks the migrated rows from then on."""
    location, before = v3_project
    work = tmp_path / "work"
    with pytest.raises(ProjectError, match=r"schema version 3 is older"):
        Project.open(location, workdir=work)
    text = "\n".join(migrate(location, backup=False))
    assert "recorded who made 1 earlier annotation version(s)" in text
    assert "began the hash chain: block 1 seals every row (2 classes, 2 annotators, 5 images, 2 annotations, " \
           "2 annotation_history" in text
    assert migrate(location) == []
    p = Project.open(location, workdir=work)
    assert _rows(p) == before
    report = verify_project(p, progress=False)
    assert report.attrs["chain"]["problems"] == [] and report.attrs["chain"]["blocks"] == 1
    p.update_annotation(1, label="cat")  # sealed from now on, and the history knows who made each version
    assert p.annotation_history(1).index.tolist() == [1, 2, 3, 4]
    p.forget_subject("p2", by=p.user)  # erasure restates the genesis block
    assert verify_project(p, progress=False).attrs["chain"]["problems"] == []
    # a row the migration sealed, edited behind labkit's back
    if p.backend == "sqlite":
        con = sqlite3.connect(p.store.ctx.engine.url.database, isolation_level=None)
        con.execute("DROP TRIGGER lk_audit_update")
        con.execute("UPDATE audit_log SET actor = 'nobody' WHERE id = 1")
        con.close()
    else:
        with p.store.ctx.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
            conn.exec_driver_sql("UPDATE audit_log SET actor = 'nobody' WHERE id = 1")
    [problem] = verify_project(p, progress=False).attrs["chain"]["problems"]
    assert problem.startswith("audit_log: rows of block 1 ")
    p.close()


def test_migrate_adds_the_read_indexes(v2_project, tmp_path):
    """Projects made before get the per-class and current-rows indexes that new ones have."""
    location, _, _, _ = v2_project
    from labkit.store.engine import create_engine, make_url

    engine = create_engine(make_url(location))
    with engine.begin() as conn:  # the fixture's tables come from today's metadata: drop what v2 lacked
        for name in ("ix_annotations_class_id", "ix_annotations_current"):
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
    engine.dispose()
    migrate(location, backup=False)
    p = Project.open(location, workdir=tmp_path / "work")
    try:
        with p.store.ctx.connect() as conn:
            names = {ix["name"] for ix in sa.inspect(conn).get_indexes("annotations")}
    finally:
        p.close()
    assert {"ix_annotations_class_id", "ix_annotations_current"} <= names
