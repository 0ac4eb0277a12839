"""Subjects, consent, withdrawal, retention and schema migration, on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import re
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labkit import AccessDenied, Project
from labkit.store import schema as S


@pytest.fixture
def people(location, image_files, tmp_path):
    """Five images of subjects p1 (2 images), p2 (2) and p3 (1); annotators ana and ben."""
    p = Project.create(location, classes=["cat", "dog"], workdir=tmp_path / "work")
    p.add_annotator("ana")
    p.add_annotator("ben")
    p.add_images(image_files, subject=["p1", "p1", "p2", "p2", "p3"], consent="given", purpose="gaze research")
    p.assign(None, ["ana", "ben"], overlap=2)
    for img in range(1, 6):
        for who in ("ana", "ben"):
            p.add_annotation(image=img, kind="box", label="cat", annotator=who, geometry=[1, 1, 9, 9])
    yield p
    p.close()


def test_subjects_register(people):
    s = people.subjects()
    assert list(s.index) == ["p1", "p2", "p3"]
    assert list(s["images"]) == [2, 2, 1] and set(s["consent"]) == {"given"}
    assert set(s["purpose"]) == {"gaze research"}
    assert list(people.images()["consent"]) == ["given"] * 5


def test_withdrawn_subject_is_kept_but_not_processed(people, tmp_path):
    people.withdraw_consent("p2", by=people.user)
    assert people.subjects().loc["p2", "consent"] == "withdrawn"
    assert list(people.images().index) == [1, 2, 5]                       # training, scoring, assign
    assert len(people.images(include_withdrawn=True)) == 5                # still stored
    assert set(people.annotations()["task"]) == {1, 2, 5}
    assert len(people.annotations(include_withdrawn=True)) == 10
    assert people.queue("ana") == [1, 2, 5]
    with pytest.raises(ValueError, match="withdrew consent"):
        people.assign([3], ["ana"])
    out = people.export(tmp_path / "coco.json", format="coco")
    coco = json.loads(out.read_text())
    assert len(coco["images"]) == 3 and len(coco["annotations"]) == 6
    ana = Project.open(people.location, user="ana", workdir=people.root) if people.backend == "sqlite" else None
    if ana is not None:
        with pytest.raises(AccessDenied, match="withdrew consent"):
            ana.read_image(3)
        with pytest.raises(AccessDenied, match="withdrew consent"):
            ana.add_annotation(image=3, kind="label", label="dog", annotator="ana")
        ana.close()
    from tests.conftest import write_image

    with pytest.raises(ValueError, match="withdrew consent"):  # no new images of them either
        people.add_images([write_image(tmp_path / "x.png", seed=7)], subject="p2")
    people.set_consent("p2", "given", by=people.user)  # consent given again
    assert len(people.images()) == 5


def test_pool_training_skips_withdrawn(people):
    from labkit.models.pool.labels import reference_labels

    people.withdraw_consent("p1", by=people.user)
    ids = people.images().index
    assert 1 not in ids and 2 not in ids
    labels = reference_labels(people)
    assert not {1, 2} & set(labels.index)


def test_retention_and_privacy_report(people):
    assert people.retention() is None
    people.set_retention(30, by=people.user)
    assert people.retention() == 30
    with people.store.ctx.engine.begin() as conn:  # p1's images were collected 45 days ago
        conn.execute(sa.update(S.images).where(S.images.c.subject == "p1")
                     .values(added_at=datetime.now(timezone.utc) - timedelta(days=45)))
    people.withdraw_consent("p3", by=people.user)
    people.read_image(1)
    rep = people.privacy_report()
    assert list(rep.past_retention.index) == ["p1"] and rep.past_retention.loc["p1", "days_over"] == 15
    assert list(rep.withdrawn.index) == ["p3"]
    assert rep.access.loc[(people.user, "read_image"), "times"] == 1
    text = rep.to_text()
    assert "past the retention period: 1" in text and "Withdrawn consents: 1" in text


def test_forget_subject_database(people):
    before = people.subjects()
    other = people.annotations()
    out = people.forget_subject("p2", by=people.user)
    assert out.database["images"] == 2 and out.database["annotations"] == 4 and out.database["subjects"] == 1
    assert "p2" not in people.subjects().index
    assert people.subjects().loc[["p1", "p3"], "images"].tolist() == before.loc[["p1", "p3"], "images"].tolist()
    assert people.annotations().equals(other[other["task"].isin([1, 2, 5])])
    log = people.audit_log()
    tomb = log[log["action"] == "forget_subject"].iloc[0]
    assert tomb["details"]["tombstone"] == out.tombstone and tomb["details"]["images"] == 2
    assert "p2" not in json.dumps(log["details"].tolist())  # consent entries were scrubbed
    with pytest.raises(ValueError, match="no data subject"):
        people.forget_subject("p2", by=people.user)


def test_short_subject_ids_are_erased_from_the_audit_log_as_tokens(location, image_files, tmp_path):
    """AI-Hub's metaid "017" inside an import path and a note: erased where it is a token, nowhere else."""
    p = Project.create(location, classes=["cat"], workdir=tmp_path / "work")
    p.add_annotator("ana")
    p.add_images(image_files[:3], subject=["017", "017", "0170"], consent="given", purpose="gaze 2017")
    folder = tmp_path / "aihub" / "017"
    folder.mkdir(parents=True)
    coco = {"images": [{"id": 1, "file_name": "img_0.png", "width": 40, "height": 30}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25,
                             "iscrowd": 0}],
            "categories": [{"id": 1, "name": "cat"}]}
    (folder / "instances_017.json").write_text(json.dumps(coco))
    p.import_annotations(folder / "instances_017.json", format="coco", annotator="ana")
    p.set_image_attributes(1, {"note": "session 2017, lot 017b, subject 017; id 0170 is another person"},
                           by=p.user)
    p.set_consent("0170", "given", by=p.user, purpose="gaze 2017")

    p.forget_subject("017", by=p.user)

    log = p.audit_log()
    details = json.dumps(log["details"].tolist(), ensure_ascii=False)
    imported = log.query("action == 'import_annotations'").iloc[0]["details"]
    assert imported["file"] == f"{folder.parent}/<erased>/instances_<erased>.json"
    note = log.query("action == 'set_image_attributes'").iloc[0]["details"]["after"]["note"]
    assert note == "session 2017, lot 017b, subject <erased>; id 0170 is another person"
    assert log.query("action == 'set_consent'").iloc[-1]["details"]["subject"] == "0170"
    assert re.search(r"(?<![A-Za-z0-9])017(?![A-Za-z0-9])", details) is None
    p.close()


def _downgrade_to_v1(location):
    """Turn a new project into what labkit 0.1 (schema 1) wrote, to test the upgrade."""
    con = sqlite3.connect(location / "project.db")
    con.executescript("""
        DROP TRIGGER IF EXISTS lk_proposals_reviewer;  -- schema 1 had no triggers; this one reads images.consent
        DROP TABLE subjects;
        DROP INDEX IF EXISTS ix_images_consent;
        ALTER TABLE images DROP COLUMN consent;
        DELETE FROM annotators WHERE role = 'admin';
        UPDATE meta SET value = '1' WHERE key = 'schema_version';
        DELETE FROM meta WHERE key = 'checked_above';
    """)
    # SQLite cannot drop a UNIQUE column; rebuild annotators as version 1 had it
    con.executescript("""
        CREATE TABLE annotators_v1 (id INTEGER PRIMARY KEY, name VARCHAR(256) NOT NULL UNIQUE,
            role VARCHAR(16) NOT NULL, simulated BOOLEAN NOT NULL, created_at DATETIME NOT NULL);
        INSERT INTO annotators_v1 SELECT id, name, role, simulated, created_at FROM annotators;
        PRAGMA foreign_keys=OFF; DROP TABLE annotators; ALTER TABLE annotators_v1 RENAME TO annotators;
    """)
    con.commit()
    con.close()


def test_migrate_v1_project(tmp_path, image_files):
    from click.testing import CliRunner

    from labkit.cli import main

    loc = tmp_path / "old"
    p = Project.create(loc, classes=["cat"], user="founder")
    p.add_annotator("ana")
    p.add_images(image_files, subject="p1")
    p.add_annotation(image=1, kind="label", label="cat", annotator="ana")
    p.close()
    _downgrade_to_v1(loc)
    with pytest.raises(Exception, match=r"from labkit\.store\.migrate import migrate; migrate\("):
        Project.open(loc, user="founder")
    res = CliRunner().invoke(main, ["migrate", "--project", str(loc)])
    assert res.exit_code == 0, res.output
    assert "backed up" in res.output and "founder" in res.output
    assert list(loc.glob("project.db.v1.*.bak"))
    q = Project.open(loc, user="founder")
    assert q.whoami()["role"] == "admin" and q.subjects().loc["p1", "consent"] == "unknown"
    assert len(q.annotations()) == 1 and len(q.images()) == 5
    q.close()


@pytest.mark.postgres
def test_migrate_v1_project_on_postgresql(pg_url, tmp_path, image_files):
    from labkit.store.migrate import migrate

    p = Project.create(pg_url, classes=["cat"], user="founder", workdir=tmp_path / "w")
    p.add_annotator("ana")
    p.add_images(image_files, subject="p1")
    with p.store.ctx.engine.begin() as conn:  # back to what schema 1 had: no RLS, subjects, logins or creator row
        from tests.store.test_migrate import drop_row_level_security

        drop_row_level_security(conn)  # policies, labkit functions and triggers
        conn.exec_driver_sql("DROP TABLE subjects")
        conn.exec_driver_sql("ALTER TABLE images DROP COLUMN consent")
        conn.exec_driver_sql("ALTER TABLE annotators DROP COLUMN db_user")
        conn.exec_driver_sql("DELETE FROM annotators WHERE role = 'admin'")
        conn.exec_driver_sql("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        conn.exec_driver_sql("DELETE FROM meta WHERE key = 'checked_above'")
    p.close()
    with pytest.raises(Exception, match=r"from labkit\.store\.migrate import migrate; migrate\("):
        Project.open(pg_url, workdir=tmp_path / "w")
    steps = migrate(pg_url)
    assert any("row-level security" in s for s in steps) and any("founder" in s for s in steps)
    q = Project.open(pg_url, workdir=tmp_path / "w")
    assert q.user == "founder" and q.whoami()["role"] == "admin" and q.subjects().loc["p1", "consent"] == "unknown"
    q.add_annotator("ben", role="annotator", password="pw-ben-migrated", db_user=f"ben_{uuid.uuid4().hex[:6]}")
    q.close()


def test_by_names_whom_for_never_who(people):
    """Item 9: ``by="dpo"`` (not a member) is a note; the admin acting is the actor of every record."""
    people.withdraw_consent("p2", by="dpo")
    people.set_retention(30, by="dpo")
    out = people.forget_subject("p3", by="dpo")
    log = people.audit_log()
    assert "dpo" not in set(log["actor"])
    mine = log[log["action"].isin(["set_consent", "set_retention", "forget_subject"])]
    assert set(mine["actor"]) == {people.user}
    assert [d["on_behalf_of"] for d in mine["details"]] == ["dpo", "dpo", "dpo"]
    assert people.privacy_report().erasures["actor"].tolist() == [people.user]
    assert out.tombstone in json.dumps(log["details"].tolist())
    if people.backend == "sqlite":  # an annotator may not speak for anyone
        ana = Project.open(people.location, user="ana")
        with pytest.raises(AccessDenied, match="on behalf of others"):
            ana.delete_annotation(1, by="dpo")
        ana.close()
