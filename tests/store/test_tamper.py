"""Issue 14 item 19: what is changed behind labkit's back fails ``labkit verify`` (the hash chain).

Each tamper is done as whoever owns the database (SQLite: anyone who can write the
folder; PostgreSQL: the tables' owner, who can also switch the triggers off), on both
backends. Without the chain every one of these projects verified (exit 0).
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from PIL import Image

from labkit import AccessDenied, Project
from labkit.cli.verify import verify as verify_cli
from labkit.services.report_registry import registered_exports
from labkit.services.verify import verify_project
from labkit.store import chain, chain_sql
from labkit.store import schema as S


# ---------------------------------------------------------------------------- helpers --
def raw(project, *sql: str, params: dict | None = None) -> None:
    """Run SQL on the project's database as its owner, outside labkit (no seal)."""
    if project.backend == "sqlite":
        con = sqlite3.connect(project.store.ctx.engine.url.database, isolation_level=None)
        try:
            for s in sql:
                con.execute(s, params or {})
        finally:
            con.close()
        return
    eng = sa.create_engine(sa.make_url(str(project.location)).set(drivername="postgresql+psycopg"))
    try:
        with eng.begin() as conn:
            for s in sql:
                conn.execute(sa.text(s), params or {})
    finally:
        eng.dispose()


def no_triggers(project, table: str) -> str:
    """SQL that switches ``table``'s rules off (SQLite: drops its triggers), as a tamperer would."""
    if project.backend == "postgresql":
        return f"ALTER TABLE {table} DISABLE TRIGGER USER"
    con = sqlite3.connect(project.store.ctx.engine.url.database)
    names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
                                       (table,))]
    con.close()
    return "; ".join(f'DROP TRIGGER "{n}"' for n in names) or "SELECT 1"


def raw_script(project, script: str) -> None:
    raw(project, *[s for s in script.split("; ") if s])


def breaks(project) -> list[str]:
    report = verify_project(project, progress=False)
    return report.attrs["chain"]["problems"]


def cli(project):
    return CliRunner().invoke(verify_cli, ["--project", str(project.location)])


def block_of(project, table: str, row_id: int) -> int:
    with project.store.ctx.connect() as conn:
        return chain.blocks_holding(conn, {table: [row_id]})[0]


@pytest.fixture
def worked(project):
    """The conftest project with labkit work of every kind: annotations changed, deleted and
    restored, a replace, assignments, a role change, a denied attempt, subjects' consent."""
    p = project
    box = p.add_annotation(image=1, kind="box", label="cat", annotator="ana", geometry=[1, 1, 9, 9], score=0.1 + 0.2)
    p.update_annotation(box, label="dog", geometry=[2, 2, 8, 8])
    p.delete_annotation(box)
    p.restore_annotation(box)
    p.add_annotations([{"image": i, "kind": "label", "label": "bird", "annotator": "ben"} for i in (2, 3, 4)])
    p.replace_annotations([box], [dict(image=1, kind="ellipse", label="cat", annotator="cy",
                                       geometry={"cx": 10, "cy": 10, "rx": 3, "ry": 2, "angle": 0.5},
                                       provenance={"note": "ünïcode ✓", "nested": {"b": 1, "a": [1.5, None]}})])
    p.assign([1, 2], ["ana"])
    p.set_role("eve", "annotator")
    p.set_role("eve", "viewer")
    viewer = Project.open(p.location, user="eve", workdir=p.root) if p.backend == "sqlite" else None
    if viewer is not None:
        with pytest.raises(AccessDenied):
            viewer.add_annotation(image=1, kind="label", label="cat", annotator="eve")
        viewer.close()
    return p


# ------------------------------------------------------------------------- the items --
def test_labkit_writes_of_every_kind_verify(worked):
    report = verify_project(worked, progress=False)
    info = report.attrs["chain"]
    assert info["checked"] and info["problems"] == [] and (report["kind"] != "chain").all()
    with worked.store.ctx.connect() as conn:
        kinds = conn.execute(sa.select(S.chain.c.kind).order_by(S.chain.c.seq)).scalars().all()
    assert kinds[0] == "genesis" and set(kinds[1:]) == {"write"} and info["blocks"] == len(kinds)
    assert cli(worked).exit_code == 0


def test_annotation_edited_in_place_behind_labkits_back(worked):
    """Item 19a: the rules switched off and the class changed with no new version: the block that
    sealed the annotation's current version no longer matches."""
    aid = int(worked.annotations().index[-1])
    block = block_of(worked, "annotations", aid)
    raw_script(worked, no_triggers(worked, "annotations") + f"; UPDATE annotations SET class_id = 2 WHERE id = {aid}")
    problems = breaks(worked)
    assert len(problems) == 1
    assert problems[0].startswith(f"annotations: rows of block {block} (sealed ")
    assert "row(s) are all there but some changed" in problems[0] and "restore the rows" in problems[0]
    r = cli(worked)
    assert r.exit_code == 1
    assert f"CHAIN BROKEN: annotations: rows of block {block}" in r.output
    assert "FAILED: the hash chain is broken in 1 place(s)" in r.output


def test_annotation_history_rewritten_behind_labkits_back(worked):
    """An older version (a history row) edited: its block breaks, for the history and the annotation."""
    raw_script(worked, no_triggers(worked, "annotation_history") + "; UPDATE annotation_history SET class_id = 3 "
               "WHERE id = 1")
    problems = breaks(worked)
    superseded = block_of(worked, "annotation_history", 1)  # the update that wrote the history row
    made = block_of(worked, "annotations", 1)  # the version it holds was sealed when it was added
    assert sorted(p.split(" (sealed")[0] for p in problems) == [
        f"annotation_history: rows of block {superseded}", f"annotations: rows of block {made}"]


def test_annotation_changed_with_the_rules_on_is_not_laundered_by_the_next_write(worked):
    """With the triggers in force a change needs a new version, so the database writes history: rows
    that no block holds. The next labkit write seals them, as written outside labkit."""
    aid = int(worked.annotations().index[0])
    raw(worked, "UPDATE annotations SET class_id = 3, version = version + 1 WHERE id = :a", params={"a": aid})
    problems = breaks(worked)
    assert [p.split(":")[0] for p in problems] == ["annotation_history", "annotations"]
    assert all("1 row(s) (ids [" in p and "are in no block" in p for p in problems)
    worked.add_annotation(image=5, kind="label", label="cat", annotator="cy")  # a labkit write seals them...
    [problem] = breaks(worked)  # ...as rows written outside labkit
    assert ("records 1 row(s) of annotations written, 1 row(s) of annotation_history written outside labkit"
            in problem)
    assert cli(worked).exit_code == 1


def test_deleted_audit_entries(worked):
    """Item 19b: audit rows deleted (the append-only rule switched off): their block breaks."""
    log = worked.audit_log()
    gone = int(log.index[len(log) // 2])
    block = block_of(worked, "audit_log", gone)
    raw_script(worked, no_triggers(worked, "audit_log") + f"; DELETE FROM audit_log WHERE id = {gone}")
    [problem] = breaks(worked)
    assert problem.startswith(f"audit_log: rows of block {block} ") and "it held 1 row(s), 0 are left" in problem
    assert cli(worked).exit_code == 1


def test_last_audit_entry_deleted_then_labkit_writes(worked):
    """The newest audit entry deleted, then labkit writes again (SQLite reuses the id): the block that
    held it breaks, and the next write records that the table shrank outside labkit."""
    last = int(worked.audit_log().index[-1])
    block = block_of(worked, "audit_log", last)
    raw_script(worked, no_triggers(worked, "audit_log") + f"; DELETE FROM audit_log WHERE id = {last}")
    worked.add_annotation(image=5, kind="label", label="cat", annotator="cy")
    problems = breaks(worked)
    assert any(p.startswith(f"audit_log: rows of block {block} ") and "it held 1 row(s), 0 are left" in p
               for p in problems)
    assert any("records the last rows of audit_log deleted outside labkit" in p for p in problems)


def test_image_replaced_together_with_its_stored_hash(worked, image_files):
    """Item 19c: another picture under the same name, and its hash written into the table: every
    file matches its recorded sha256, but the images' block does not."""
    import hashlib

    from tests.conftest import write_image

    write_image(image_files[2], seed=99)
    new = hashlib.sha256(image_files[2].read_bytes()).hexdigest()
    raw(worked, "UPDATE images SET sha256 = :h WHERE id = 3", params={"h": new})
    report = verify_project(worked, progress=False)
    assert report.attrs["summary"]["ok"] == 5 and (report[report["kind"] == "image"]["status"] == "ok").all()
    [problem] = report.attrs["chain"]["problems"]
    assert problem.startswith(f"images: rows of block {block_of(worked, 'images', 3)} ")
    chain_row = report[report["kind"] == "chain"].iloc[0]
    assert chain_row["status"] == "changed" and chain_row["path"].startswith("images (block ")
    assert cli(worked).exit_code == 1


def test_rows_added_behind_labkits_back(worked):
    raw(worked, "INSERT INTO audit_log (at, actor, action, details) VALUES ('2030-01-01 00:00:00', 'boss', "
                "'export', '{}')")
    [problem] = breaks(worked)
    assert problem.startswith("audit_log: 1 row(s) (ids [") and "in no block of the hash chain" in problem


def test_chain_block_edited_or_removed(worked):
    """The chain's own table: a block rewritten, or one removed from the middle, breaks the links."""
    raw_script(worked, no_triggers(worked, "chain") + "; UPDATE chain SET kind = 'genesis' WHERE seq = 3")
    assert any(p.startswith("block 3 of the hash chain") and "was edited" in p for p in breaks(worked))
    raw(worked, "DELETE FROM chain WHERE seq = 4")
    problems = breaks(worked)
    assert any("blocks 4 to 4 of the hash chain are missing" in p for p in problems)


def test_last_blocks_removed_with_their_rows_are_caught_by_the_recorded_heads(worked, tmp_path):
    """Item 19, the recorded head: the export registry keeps the head the export saw. Removing the
    last blocks together with the rows they sealed leaves a consistent database, but not that head."""
    worked.add_annotation(image=5, kind="label", label="dog", annotator="cy")
    last = int(worked.annotations().index[-1])
    worked.export(tmp_path / "out.json", format="coco")
    [entry] = registered_exports(worked.root)
    head = worked.store.ctx.chain_head()
    assert entry["chain"]["seq"] == head.seq - 1  # the export's own audit entry came after
    assert breaks(worked) == []
    cut = block_of(worked, "annotations", last)
    with worked.store.ctx.connect() as conn:  # what the chain held before the last annotation
        his = conn.execute(sa.select(*(S.chain.c[f"{t}_hi"] for t in chain.TABLES))
                           .where(S.chain.c.seq == cut - 1)).one()
    deletes = "; ".join(f"DELETE FROM {t} WHERE id > {hi}" for t, hi in zip(chain.TABLES, his))
    raw_script(worked, "; ".join([no_triggers(worked, "chain"), no_triggers(worked, "audit_log"),
                                  no_triggers(worked, "annotations")]) +
               f"; DELETE FROM chain WHERE seq >= {cut}; DELETE FROM chain_salt WHERE seq >= {cut}; {deletes}")
    with worked.store.ctx.connect() as conn:
        assert chain.check(conn).ok  # consistent inside the database...
    [problem] = breaks(worked)  # ...but not with what the export recorded
    assert problem.startswith(f"the coco export of {entry['created_at']} (")
    assert f"recorded the hash chain at block {entry['chain']['seq']}" in problem
    assert "blocks were removed or rewritten since" in problem
    if worked.backend == "sqlite":  # PostgreSQL: the command reads the registries of the default working folder
        r = cli(worked)
        assert r.exit_code == 1 and "FAILED: the hash chain is broken in 1 place(s)" in r.output


def test_reports_record_the_head(worked):
    from labkit.reports.provenance import data_fingerprint

    head = worked.store.ctx.chain_head()
    assert data_fingerprint(worked.location)["chain"] == head.to_dict()


def test_a_report_run_registers_the_head(tmp_path, image_files):
    """``run_report`` puts the head its data fingerprint saw into the report registry (SQLite: one
    kernel start is enough for the whole path)."""
    import nbformat

    from labkit.reports import registered, run_report
    from labkit.services.verify import anchors

    p = Project.create(tmp_path / "proj", classes=["cat"])
    p.add_images(image_files)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('project = ""', metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("print(project)")])
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    head = p.store.ctx.chain_head()
    run_report(tmp_path / "tiny.ipynb", project=tmp_path / "proj", out_dir=tmp_path / "out")
    [entry] = registered(p.root)
    assert entry["chain"] == head.to_dict()
    assert [(a.seq, a.head) for a in anchors(p.root)] == [(head.seq, head.head)]
    assert breaks(p) == []
    p.close()


def test_forget_subject_is_a_legitimate_change(location, image_files, tmp_path):
    """Erasure deletes rows and scrubs audit details on purpose: the chain records it (a block of kind
    "erasure") and verify passes, also after images are added again (SQLite reuses the erased ids)."""
    p = Project.create(location, classes=["cat", "dog"], workdir=tmp_path / "work")
    p.add_annotator("ana")
    p.add_images(image_files, subject=["p1", "p2", "p2", "p3", "p3"])
    p.assign([1, 2, 3, 4, 5], ["ana"])
    for i in (1, 2, 4, 5):
        a = p.add_annotation(image=i, kind="box", label="cat", annotator="ana", geometry=[1, 1, 9, 9])
        p.update_annotation(a, label="dog")
    p.set_image_attributes(5, {"note": "shows p3"})
    p.export(tmp_path / "exp.json", format="coco")
    p.forget_subject("p3", by=p.user)  # the last images, annotations and history rows
    with p.store.ctx.connect() as conn:
        kinds = conn.execute(sa.select(S.chain.c.kind).order_by(S.chain.c.seq)).scalars().all()
    assert "erasure" in kinds
    assert breaks(p) == []
    p.add_images([_png(tmp_path / "again.png")])
    a = p.add_annotation(image=int(p.images().index[-1]), kind="label", label="cat", annotator=p.user)
    p.update_annotation(a, label="dog")
    p.forget_subject("p1", by=p.user)
    assert breaks(p) == []
    assert cli(p).exit_code == 0
    p.close()


def _png(path):
    Image.fromarray(np.full((30, 40, 3), 7, np.uint8)).save(path)
    return path


def test_erasure_does_not_launder_an_earlier_edit(location, image_files, tmp_path):
    """An annotation of the subject edited behind labkit's back, then the subject erased: the erasure
    restates the block, and says it no longer matched."""
    p = Project.create(location, classes=["cat", "dog"], workdir=tmp_path / "work")
    p.add_annotator("ana")
    p.add_images(image_files, subject=["p1", "p1", "p2", "p2", "p2"])
    a = p.add_annotation(image=4, kind="label", label="cat", annotator="ana")
    block = block_of(p, "annotations", a)
    raw_script(p, no_triggers(p, "annotations") + f"; UPDATE annotations SET class_id = 2 WHERE id = {a}")
    p.forget_subject("p2", by=p.user)
    problems = breaks(p)
    assert any(f"annotations: rows of block {block} had already been changed outside labkit when the erasure "
               "of block" in x for x in problems)
    p.close()


def test_no_digest_of_erased_rows_is_left(location, image_files, tmp_path):
    """Restating a block replaces its salt: its old digests cannot be recomputed from a guess of the
    erased rows (they are gone from the chain's inputs)."""
    p = Project.create(location, classes=["cat"], workdir=tmp_path / "work")
    p.add_images(image_files, subject=["p1", "p1", "p2", "p2", "p2"])
    with p.store.ctx.connect() as conn:
        block = chain.blocks_holding(conn, {"images": [1]})[0]
        salt = conn.execute(sa.select(S.chain_salt.c.salt).where(S.chain_salt.c.seq == block)).scalar_one()
    p.forget_subject("p1", by=p.user)
    with p.store.ctx.connect() as conn:
        now = conn.execute(sa.select(S.chain_salt.c.salt).where(S.chain_salt.c.seq == block)).scalar_one()
    assert now != salt and breaks(p) == []
    p.close()


def test_lines_are_the_same_on_both_backends(pg_url, tmp_path):
    """Canonical lines: the same rows give the same text on SQLite and PostgreSQL (JSON as written,
    times in UTC to the microsecond, length-prefixed text), floats aside (each backend's exact form)."""
    rows = {  # times as SQLAlchemy writes them on SQLite; PostgreSQL stores them as timestamps
        "audit_log": "INSERT INTO audit_log (id, at, actor, action, target, target_id, details) VALUES (900, "
                     "'2026-01-02 03:04:05.678901+00', 'ana|x', 'export', NULL, 7, "
                     "'{\"é\": \"ü ✓\", \"b\": [1, 2.5, null], \"a\": {\"z\": true}}')",
        "images": "INSERT INTO images (id, path, sha256, width, height, attributes, added_at) VALUES (900, "
                  "'a/b|c.png', 'ab12', 40, 30, '{}', '2026-01-02 03:04:05.000000+00')",
    }
    lines = {}
    for backend, where in (("sqlite", tmp_path / "proj"), ("postgresql", pg_url)):
        p = Project.create(where, classes=["cat"], workdir=tmp_path / backend)
        for t, sql in rows.items():
            if backend == "sqlite":
                raw(p, sql.replace("+00'", "'"))
            else:  # as the owner, past the trigger that stamps the audit log's actor and time
                raw(p, f"ALTER TABLE {t} DISABLE TRIGGER USER", sql)
        pg = backend == "postgresql"
        with p.store.ctx.connect() as conn:
            lines[backend] = {t: conn.exec_driver_sql(  # psycopg reads % as a placeholder
                f"SELECT {chain_sql.line(pg, t, 'x')} FROM {t} x WHERE x.id = 900".replace("%", "%%" if pg else "%"))
                .scalar_one() for t in rows}
        p.close()
    assert lines["sqlite"] == lines["postgresql"]
    assert lines["sqlite"]["audit_log"].startswith("900|26:2026-01-02 03:04:05.678901|5:ana|x|6:export|:|7|")
    assert lines["sqlite"]["images"] == "900|9:a/b|c.png|4:ab12|40|30|26:2026-01-02 03:04:05.000000"


def test_a_time_in_a_postgresql_line_is_its_text_and_length_in_every_year(pg_url):
    """A line's time is ``length:text`` of its UTC text; the length is taken as 26 up to year 9999 (to_char
    once a field, not twice) and measured beyond: the same text as measuring it always."""
    times = ["2026-01-02 03:04:05.678901+00", "1000-01-01 00:00:00+00", "0999-12-31 23:59:59.999999+00",
             "9999-12-31 23:59:59.999999+00", "10000-01-01 00:00:00+00", "0044-03-15 12:00:00+00 BC",
             "2026-06-01 01:30:00+05", "294276-12-31 23:59:59+00"]
    text = "to_char(x.t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
    fmt, args = chain_sql._field(True, "ts", "x.t")
    eng = sa.create_engine(sa.make_url(pg_url).set(drivername="postgresql+psycopg"))
    try:
        with eng.connect() as conn:
            got = conn.execute(sa.text(f"SELECT format('{fmt}', {', '.join(args)}), format('%s:%s', length({text}), "
                                       f"{text}) FROM unnest(CAST(:t AS timestamptz[])) AS x(t)"),
                               {"t": times + [None]}).all()
    finally:
        eng.dispose()
    assert [new for new, _ in got] == [measured for _, measured in got]
    assert [new for new, _ in got][:4] == ["26:2026-01-02 03:04:05.678901", "26:1000-01-01 00:00:00.000000",
                                          "26:0999-12-31 23:59:59.999999", "26:9999-12-31 23:59:59.999999"]
    assert got[4][0] == "27:10000-01-01 00:00:00.000000" and got[5][0] == "26:0044-03-15 12:00:00.000000"
    assert got[-1][0] == ":"


@pytest.mark.timeout(300)
def test_concurrent_writers_leave_no_gap(location, image_files, tmp_path):
    """Two processes writing at once: every row lands in exactly one block (PostgreSQL: the chain's
    advisory lock orders them)."""
    p = Project.create(location, classes=["cat"], workdir=tmp_path / "w")
    for w in ("w1", "w2"):
        p.add_annotator(w)
    p.add_images(image_files)
    writer = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from labkit import Project
        location, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
        p = Project.open(location, workdir=sys.argv[4])
        while not go.exists():
            time.sleep(0.001)
        for i in range(40):
            a = p.add_annotation(image=1 + i % 5, kind="label", label="cat", annotator=name)
            if i % 4 == 0:
                p.update_annotation(a, score=0.5)
        p.close()
    """)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(location), w, str(go), str(tmp_path / "w")],
                              stderr=subprocess.PIPE, text=True) for w in ("w1", "w2")]
    time.sleep(2)
    go.touch()
    for proc in procs:
        assert proc.wait(timeout=280) == 0, proc.stderr.read()
    assert len(p.annotations()) == 80
    assert breaks(p) == []
    p.close()


@pytest.mark.postgres
def test_pg_members_seal_what_they_cannot_read_and_cannot_restate(pg_url, image_files, tmp_path):
    """Annotators' logins see only their own rows (row-level security), yet their writes are sealed;
    they cannot seal an erasure or read the chain; a viewer verifies it."""
    tag = uuid.uuid4().hex[:6]
    admin = Project.create(pg_url, classes=["cat", "dog"], workdir=tmp_path / "w")
    for name, role in (("ana", "annotator"), ("ben", "annotator"), ("eve", "viewer")):
        admin.add_annotator(name, role=role, password=f"pw-{name}-{tag}", db_user=f"{name}_{tag}")
    admin.add_images(image_files)
    admin.assign([1, 2], ["ana"])
    admin.assign([2, 3], ["ben"])

    def url(name):
        return sa.make_url(pg_url).set(username=f"{name}_{tag}", password=f"pw-{name}-{tag}").render_as_string(
            hide_password=False)
    ana, ben, eve = (Project.open(url(n), workdir=tmp_path / "w") for n in ("ana", "ben", "eve"))
    ben_box = ben.add_annotation(image=2, kind="box", label="cat", annotator="ben", geometry=[1, 1, 9, 9])
    a = ana.add_annotation(image=2, kind="label", label="dog", annotator="ana")
    ana.update_annotation(a, label="cat")
    ben.update_annotation(ben_box, label="dog")
    assert breaks(eve) == [] and breaks(admin) == []
    assert verify_project(ana, progress=False).attrs["chain"]["checked"] is False
    eng = sa.create_engine(url("ana").replace("postgresql://", "postgresql+psycopg://"))
    try:
        for sql in ("SELECT * FROM chain", "SELECT * FROM chain_salt",
                    "SELECT labkit_chain_seal('erasure', ARRAY[1], '{}')",
                    "SELECT labkit_chain_seal('genesis', NULL, NULL)", "SELECT * FROM labkit_chain_digests(NULL)"):
            with pytest.raises(sa.exc.DBAPIError, match="permission denied|only an admin"), eng.begin() as conn:
                conn.exec_driver_sql(sql)
    finally:
        eng.dispose()
    raw(admin, "ALTER TABLE annotations DISABLE TRIGGER USER", f"UPDATE annotations SET class_id = 2 WHERE id = {a}")
    with admin.store.ctx.connect() as conn:  # its current version was sealed with the update
        superseded = conn.execute(sa.select(S.annotation_history.c.id).where(
            S.annotation_history.c.annotation_id == a)).scalar_one()
    [problem] = breaks(eve)
    assert problem.startswith(f"annotations: rows of block {block_of(admin, 'annotation_history', superseded)} ")
    for q in (ana, ben, eve, admin):
        q.close()


def test_verify_is_fast_enough_for_a_chain_of_many_blocks(project):
    """One block per labkit write: a few hundred small writes recompute in one pass per table."""
    for i in range(60):
        project.add_annotation(image=1 + i % 5, kind="label", label="cat", annotator="ana")
    t0 = time.perf_counter()
    assert breaks(project) == []
    assert time.perf_counter() - t0 < 10


def test_registry_entry_chain_is_checked(tmp_path):
    from labkit.services.report_registry import register_export

    with pytest.raises(ValueError, match=r"record\['chain'\] is 'x'"):
        register_export(tmp_path, {"path": str(tmp_path / "a.json"), "format": "coco", "files": [],
                                   "files_outside": 0, "created_at": "2026-01-01T00:00:00+00:00", "chain": "x"})
    entry = register_export(tmp_path, {"path": str(tmp_path / "a.json"), "format": "coco", "files": [],
                                       "files_outside": 0, "created_at": "2026-01-01T00:00:00+00:00"})
    assert entry["chain"] is None  # not a project's folder: nothing to record
    assert json.loads((tmp_path / "exports" / "index.jsonl").read_text())["chain"] is None
