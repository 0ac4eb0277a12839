"""Schema 4 -> 5 (proposals) on SQLite and PostgreSQL: a project made before them keeps every
annotation and its history, and afterwards holds proposals under the database's rules."""
from __future__ import annotations

import re
import sqlite3
import uuid

import pytest
import sqlalchemy as sa

from labkit import Project, ProjectError
from labkit.store import guards, pg_access
from labkit.store import schema as S
from labkit.store.migrate import migrate

NEW_COLUMNS = ("state", "reviewed_by", "reviewed_at", "replaced_by")

OLD_SOURCES = "source IN ('human', 'sam', 'grabcut', 'consensus', 'simulated') OR source LIKE 'import:_%%'"


def _old_table(sql: str) -> str:
    """SQLite's ``CREATE TABLE annotations`` of before proposals, from today's (one line per column or
    constraint, as SQLAlchemy writes it): no review columns, and the source check without 'pool'."""
    gone = [*(f"\t{c} " for c in NEW_COLUMNS), "\tFOREIGN KEY(replaced_by)",
            *(f"\tCONSTRAINT {c.name} " for c in S.annotations.constraints if c.info.get("since") == 5)]
    lines = [line for line in sql.split("\n") if not line.startswith(tuple(gone))]
    old = "\n".join(lines).replace(", 'pool')", ")")
    return re.sub(r",\s*\n\)$", "\n)", old)


def _downgrade(project) -> None:
    """Turn a project into what labkit wrote before proposals (schema 4; 3 had the same annotations)."""
    engine = project.store.ctx.engine
    if project.backend == "sqlite":
        con = sqlite3.connect(engine.url.database, isolation_level=None)
        con.execute("PRAGMA foreign_keys = OFF")  # SQLite's recipe for a change ALTER TABLE cannot make
        con.execute("BEGIN")
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            con.execute(f'DROP TRIGGER "{name}"')
        keep = [c.name for c in S.annotations.c if c.name not in NEW_COLUMNS]
        sql = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'annotations'").fetchone()[0]
        con.execute(_old_table(sql).replace("TABLE annotations", "TABLE annotations_old", 1))
        con.execute(f"INSERT INTO annotations_old SELECT {', '.join(keep)} FROM annotations")
        con.execute("DROP TABLE annotations")
        con.execute("ALTER TABLE annotations_old RENAME TO annotations")
        for idx in S.annotations.indexes:
            cols = [c.name for c in idx.columns]
            if not set(cols) & set(NEW_COLUMNS):
                con.execute(f"CREATE INDEX {idx.name} ON annotations ({', '.join(cols)})")
        con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        con.execute("DELETE FROM meta WHERE key = 'checked_above'")
        con.execute("COMMIT")
        con.close()
        with engine.begin() as conn:
            guards.install(conn)  # the triggers of before (the proposal rules need the columns: none)
        return
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS lk_proposals_check ON annotations")
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS labkit_proposals_check()")
        for col in NEW_COLUMNS:  # with the checks and policies that name them
            conn.exec_driver_sql(f"ALTER TABLE annotations DROP COLUMN {col} CASCADE")
        conn.exec_driver_sql("ALTER TABLE annotations DROP CONSTRAINT annotations_source")
        conn.exec_driver_sql(f"ALTER TABLE annotations ADD CONSTRAINT annotations_source CHECK ({OLD_SOURCES})")
        pg_access.install(conn)
        for login, role in conn.execute(sa.select(S.annotators.c.db_user, S.annotators.c.role)
                                        .where(S.annotators.c.db_user.is_not(None))).all():
            pg_access.grant(conn, login, role)
        conn.execute(sa.update(S.meta).where(S.meta.c.key == "schema_version").values(value=4))
        conn.execute(sa.delete(S.meta).where(S.meta.c.key == "checked_above"))


def _rows(project) -> dict[str, list[tuple]]:
    """Every row of every table, with the columns of before, the schema version left out."""
    out = {}
    with project.store.ctx.engine.connect() as conn:
        for t in S.metadata.sorted_tables:
            cols = [c for c in t.c if c.name not in NEW_COLUMNS] if t is S.annotations else list(t.c)
            rows = conn.execute(sa.select(*cols).order_by(*t.primary_key.columns)).all()
            if t is S.meta:  # what a migration changes and adds
                rows = [r for r in rows if r[0] not in ("schema_version", "checked_above")]
            out[t.name] = [tuple(r) for r in rows]
    return out


@pytest.fixture
def old_project(location, image_files, tmp_path):
    """A project of before proposals: annotations of several sources and kinds, with history; an annotator
    login on PostgreSQL. Yields (location, workdir, rows before, annotator login or None)."""
    pg = isinstance(location, str)
    tag = uuid.uuid4().hex[:6]
    work = tmp_path / "work"
    p = Project.create(location, classes=["cat", "dog"], workdir=work)
    if pg:
        p.add_annotator("ana", password=f"pw-{tag}", db_user=f"ana_{tag}")
    else:
        p.add_annotator("ana")
    p.add_annotator("sim", simulated=True)
    p.add_images(image_files)
    p.assign([1, 2, 3], ["ana"])
    box = p.add_annotation(image=1, kind="box", label="cat", annotator="ana", geometry=[1, 1, 9, 9])
    p.update_annotation(box, label="dog")
    p.delete_annotation(box)
    p.restore_annotation(box)
    p.add_annotation(image=2, kind="mask", label="cat", annotator="ana", source="grabcut", score=0.8,
                     geometry={"size": [30, 40], "counts": "e7:d0000000000000000000000cb0"},
                     provenance={"segmenter": "grabcut"})
    p.add_annotations([dict(image=i, kind="label", label="cat", annotator="sim", source="simulated")
                       for i in (1, 2, 3)])
    p.add_annotation(image=3, kind="label", label="dog", annotator=p.user, source="import:coco")
    _downgrade(p)
    before = _rows(p)  # annotation_history's rows too
    p.close()
    yield location, work, before, (f"ana_{tag}", f"pw-{tag}") if pg else None


def _state_indexes(conn: sa.Connection) -> dict[str, str]:
    """The indexes of ``annotations`` on ``state``: name -> their WHERE clause (as SQLite writes it)."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                    "AND tbl_name = 'annotations' AND sql LIKE '%(state)%'").all()
    else:
        rows = conn.exec_driver_sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'annotations' "
                                    "AND indexdef LIKE '%%(state)%%'").all()
    return {name: re.sub(r"[()]", "", sql[sql.find(" WHERE "):]).strip() if " WHERE " in sql else ""
            for name, sql in rows}


def test_a_new_project_indexes_review_states_of_proposals_only(location):
    p = Project.create(location, classes=["cat"])
    with p.store.ctx.connect() as conn:
        assert _state_indexes(conn) == {"ix_annotations_proposal_state": "WHERE state IS NOT NULL"}
    p.close()


def test_migrate_keeps_every_annotation_and_its_history(old_project):
    location, work, before, login = old_project
    with pytest.raises(ProjectError, match=r"schema version 4 is older"):
        Project.open(location, workdir=work)
    if isinstance(location, str):
        steps = migrate(location)
    else:  # the command line backs a folder project up first
        from click.testing import CliRunner

        from labkit.cli import main

        res = CliRunner().invoke(main, ["migrate", "--project", str(location)])
        assert res.exit_code == 0, res.output
        steps = res.output.splitlines()
        assert list(location.glob("project.db.v4.*.bak"))
    assert any("proposals (state, reviewed_by, reviewed_at, replaced_by)" in s for s in steps)
    assert migrate(location) == []
    p = Project.open(location, workdir=work)
    assert _rows(p) == before  # every row kept, ids and all
    history = p.annotation_history(1)
    assert history.index.tolist() == [1, 2, 3, 4] and history["label"].tolist() == ["cat", "dog", "dog", "dog"]
    assert history["deleted"].tolist() == [False, False, True, False]
    with p.store.ctx.connect() as conn:
        assert conn.execute(sa.select(S.meta.c.value).where(S.meta.c.key == "schema_version")).scalar() == 5
        assert conn.execute(sa.select(sa.func.count()).select_from(S.annotations)
                            .where(S.annotations.c.state.is_not(None))).scalar() == 0
        # review states are indexed for proposals only: ordinary rows (state NULL) stay out of the index
        assert _state_indexes(conn) == {"ix_annotations_proposal_state": "WHERE state IS NOT NULL"}
    assert p.proposals(None).empty
    # the database still writes history, and now takes proposals under its rules
    p.update_annotation(1, label="cat")
    assert p.annotation_history(1).index.tolist() == [1, 2, 3, 4, 5]
    ids = p.add_proposals([dict(image=i, kind="label", label="dog", annotator=p.user, source="pool", score=0.7)
                           for i in (1, 2)])
    assert p.review(ids[0], "accept", by="ana") == ids[0]
    if p.backend == "sqlite":
        con = sqlite3.connect(p.store.ctx.engine.url.database)
        for sql, match in [("UPDATE annotations SET state = 'proposed', reviewed_by = NULL, reviewed_at = NULL, "
                            f"version = version + 1 WHERE id = {ids[0]}", "goes proposed -> accepted"),
                           ("UPDATE annotations SET state = 'rejected', reviewed_by = 'sim', reviewed_at = 'x', "
                            f"version = version + 1 WHERE id = {ids[1]}", "reviewed by an admin"),
                           ("INSERT INTO annotations (image_id, annotator_id, kind, class_id, source, provenance, "
                            "version, created_at, updated_at) VALUES (1, 1, 'label', 1, 'pool', '{}', 1, 'x', 'x')",
                            "annotations_pool_proposal")]:
            with pytest.raises(sqlite3.IntegrityError, match=match), con:
                con.execute(sql)
        con.close()
    else:  # ana's login of before reviews the proposals of her images
        url = sa.make_url(location).set(username=login[0], password=login[1]).render_as_string(hide_password=False)
        ana = Project.open(url, workdir=work)
        assert ana.proposals().index.tolist() == [ids[1]]
        assert ana.review(ids[1], "reject", by="ana") is None
        ana.close()
    p.close()
