"""PostgreSQL: what annotations refer to (image, member, class) is checked a statement at a time.

The declared foreign keys of ``annotations`` checked each inserted row on its own (a third of
a bulk import's server time); triggers now check a statement's rows together
(``labkit_annotations_added``) and refuse deleting what annotations refer to
(``labkit_parent_deleted``), with the locks a foreign key takes, so concurrent writers
cannot leave an annotation without its image either.
"""
from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from labkit import Project

pytestmark = pytest.mark.postgres

INSERT = ("INSERT INTO annotations (image_id, annotator_id, kind, class_id, geometry, source, provenance, version, "
          "created_at, updated_at) VALUES ")


def row(image, who, cls=1, geometry="NULL", kind="label") -> str:
    return f"({image}, {who}, '{kind}', {cls}, {geometry}, 'human', '{{}}', 1, now(), now())"


@pytest.fixture
def pg(pg_url, image_files, tmp_path):
    p = Project.create(pg_url, classes=["cat", "dog"], workdir=tmp_path / "work")
    p.add_images(image_files)  # ids 1..5
    p.add_annotation(image=1, kind="label", label="cat", annotator=p.user)
    yield p, p.store.ctx.engine, int(p.annotators().loc[p.user, "id"])
    p.close()


def run(engine, sql, **params):
    with engine.begin() as conn:
        return conn.execute(sa.text(sql), params).rowcount


def count(engine, sql="SELECT count(*) FROM annotations"):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar_one()


def test_pg_references_of_inserted_annotations_must_exist(pg):
    p, engine, ana = pg
    with engine.connect() as conn:  # the triggers check them, not foreign keys of their own
        assert conn.exec_driver_sql(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'annotations'::regclass "
            "AND confrelid IN ('images'::regclass, 'annotators'::regclass, 'classes'::regclass)").scalar_one() == 0
    before = count(engine)
    for bad, said in [(row(999, ana), "image 999"), (row(2, 999), "member 999"), (row(2, ana, cls=999), "class 999")]:
        # the bad row among good ones: the whole statement is refused
        with pytest.raises(sa.exc.IntegrityError, match=f"refers to {said}, which does not exist"):
            run(engine, INSERT + ", ".join([row(2, ana), bad, row(3, ana)]))
    assert count(engine) == before
    with pytest.raises(sa.exc.IntegrityError, match="refers to class 7, which does not exist"):
        run(engine, "UPDATE annotations SET class_id = 7")
    assert run(engine, INSERT + ", ".join(row(i, ana, cls=2) for i in (2, 3, 4))) == 3
    with engine.connect() as conn:  # stamped by the row trigger, checked by the statement's
        got = conn.exec_driver_sql("SELECT image_id, version, updated_by FROM annotations WHERE class_id = 2 "
                                   "ORDER BY image_id").all()
    assert [tuple(r) for r in got] == [(2, 1, p.user), (3, 1, p.user), (4, 1, p.user)]


def test_pg_geometry_of_a_statement_is_checked_whole(pg):
    _, engine, ana = pg
    good = row(2, ana, kind="box", geometry="""'{"x0": 1, "y0": 1, "x1": 5, "y1": 5}'""")
    bad = row(3, ana, kind="box", geometry="""'{"x0": 1, "y0": 1, "x1": 500, "y1": 5}'""")
    before = count(engine)
    with pytest.raises(sa.exc.IntegrityError, match="annotation refused: the box lies outside the image"):
        run(engine, INSERT + ", ".join([good, bad, good]))
    with pytest.raises(sa.exc.IntegrityError, match="annotation refused: provenance must be a JSON object"):
        run(engine, INSERT + good.replace("'{}'", "'[]'"))
    with pytest.raises(sa.exc.IntegrityError, match="a new annotation is ordinary"):
        run(engine, INSERT.replace("updated_at)", "updated_at, state, reviewed_by, reviewed_at)")
            + good.replace("'human'", "'sam'").replace("now())", "now(), 'accepted', 'x', now())"))
    assert count(engine) == before


def test_pg_what_annotations_refer_to_cannot_be_deleted_or_renumbered(pg):
    p, engine, _ = pg
    cat = count(engine, "SELECT id FROM classes WHERE name = 'cat'")
    for sql, said in [("DELETE FROM images WHERE id IN (4, 1, 5)", "images row 1 is referred to"),
                      ("DELETE FROM classes WHERE id = :c", f"classes row {cat} is referred to"),
                      ("UPDATE images SET id = 100 WHERE id = 1", "images row 1 is referred to")]:
        with pytest.raises(sa.exc.IntegrityError, match=said):
            run(engine, sql, c=cat)
    assert count(engine, "SELECT count(*) FROM images") == 5
    assert run(engine, "DELETE FROM images WHERE id = 5") == 1  # nothing refers to it
    with pytest.raises(sa.exc.OperationalError, match="READ COMMITTED"), engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.exec_driver_sql("DELETE FROM images WHERE id = 4")
    assert count(engine, "SELECT count(*) FROM images") == 4


def _waits(engine, pid: int, deadline: float = 30) -> None:
    """Return once backend ``pid`` waits for a lock (the other writer's), or fail."""
    end = time.monotonic() + deadline
    with engine.connect() as conn:
        while time.monotonic() < end:
            if conn.exec_driver_sql("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                                    (pid,)).scalar():
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")


def _in_thread(engine, sql: str):
    """Run ``sql`` in its own transaction in a thread; return (backend pid, thread, outcome list)."""
    ready, out = threading.Event(), []
    pid: list[int] = []

    def work():
        try:
            with engine.begin() as conn:
                pid.append(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
                ready.set()
                conn.exec_driver_sql(sql)
            out.append("done")
        except sa.exc.DBAPIError as exc:
            out.append(str(exc.orig))
        finally:
            ready.set()
    th = threading.Thread(target=work)
    th.start()
    assert ready.wait(30)
    return pid[0], th, out


def test_pg_a_delete_waits_for_an_insert_that_refers_to_its_row(pg):
    _, engine, ana = pg
    with engine.connect() as writer:
        tx = writer.begin()
        writer.exec_driver_sql(INSERT + row(4, ana))  # holds image 4 until it ends
        pid, th, out = _in_thread(engine, "DELETE FROM images WHERE id = 4")
        _waits(engine, pid)
        tx.commit()
    th.join(30)
    assert len(out) == 1 and "images row 4 is referred to by annotations" in out[0], out
    assert count(engine, "SELECT count(*) FROM annotations WHERE image_id = 4") == 1


def test_pg_an_insert_waits_for_a_delete_of_what_it_refers_to(pg):
    _, engine, ana = pg
    with engine.connect() as deleter:
        tx = deleter.begin()
        deleter.exec_driver_sql("DELETE FROM images WHERE id = 5")
        pid, th, out = _in_thread(engine, INSERT + row(5, ana))
        _waits(engine, pid)
        tx.commit()
    th.join(30)
    assert len(out) == 1 and "refers to image 5, which does not exist" in out[0], out
    assert count(engine, "SELECT count(*) FROM annotations WHERE image_id = 5") == 0


def test_pg_rows_that_skip_the_stamp_must_hold_the_databases_stamps(pg_url, image_files, tmp_path):
    """A bulk insert names its member in a setting so its rows skip the row trigger; anyone can set
    it, so the statement's check refuses rows whose stamps are not what the trigger writes."""
    from tests.store.test_access import Team, _data

    t = Team(pg_url, image_files, tmp_path / "work")
    try:
        ana = int(t.admin.annotators().loc["ana", "id"])
        eng = sa.create_engine(t.url("ana").replace("postgresql://", "postgresql+psycopg://"))

        def insert(stamped, updated_by, when="now()"):
            with eng.begin() as conn:
                if stamped:
                    conn.exec_driver_sql(f"SELECT set_config('labkit.stamped', '{stamped}', true)")
                conn.exec_driver_sql(
                    "INSERT INTO annotations (image_id, annotator_id, kind, class_id, source, provenance, version, "
                    f"created_at, updated_at, updated_by) VALUES (1, {ana}, 'label', 1, 'human', '{{}}', 1, {when}, "
                    f"{when}, '{updated_by}')")
        before = _data(t.admin)
        with pytest.raises(sa.exc.IntegrityError, match="the database stamps"):
            insert("ben", "ben")  # another member's name
        with pytest.raises(sa.exc.IntegrityError, match="the database stamps"):
            insert("ana", "ana", when="'2001-01-01 00:00:00+00'")  # an annotator's own time
        assert _data(t.admin) == before
        insert(None, "ben", when="'2001-01-01 00:00:00+00'")  # no setting: the row trigger stamps
        insert("ana", "ana")  # already the stamps: stored as they are
        with t.admin.store.ctx.engine.connect() as conn:
            got = conn.exec_driver_sql("SELECT updated_by, created_at FROM annotations "
                                       f"WHERE annotator_id = {ana}").all()
        assert len(got) == 2 and {r[0] for r in got} == {"ana"}
        assert all(r[1] > pd.Timestamp("2020-01-01", tz="UTC") for r in got)
        eng.dispose()
    finally:
        t.close()
