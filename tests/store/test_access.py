"""Roles enforced by the store API, on SQLite and PostgreSQL (per-person logins there)."""
from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from labkit import AccessDenied, Project

from .helpers import snapshot


class Team:
    """A project with an admin (the creator), annotators ana and ben, and viewer eve.

    Images 1, 2 are assigned to ana; 2, 3 to ben; 4, 5 to nobody. On PostgreSQL each
    person has their own login and opens the project with it.
    """

    def __init__(self, location, image_files, workdir):
        self.location, self.workdir = location, workdir
        self.pg = isinstance(location, str)
        self.tag = uuid.uuid4().hex[:6]
        self.admin = Project.create(location, classes=["cat", "dog"], workdir=workdir)
        for name, role in [("ana", "annotator"), ("ben", "annotator"), ("eve", "viewer")]:
            if self.pg:
                self.admin.add_annotator(name, role=role, password=self.password(name), db_user=self.login(name))
            else:
                self.admin.add_annotator(name, role=role)
        self.admin.add_images(image_files, subject=["p1", "p1", "p2", "p2", "p3"])
        self.admin.assign([1, 2], ["ana"])
        self.admin.assign([2, 3], ["ben"])
        self.ben_box = self.admin.add_annotation(image=2, kind="box", label="dog", annotator="ben",
                                                 geometry=[1, 1, 9, 9])
        self.opened: list[Project] = []

    def login(self, name):
        return f"{name}_{self.tag}"

    def password(self, name):
        return f"pw-{name}-{self.tag}"

    def url(self, name, password=None):
        return (sa.make_url(self.location).set(username=self.login(name),
                                               password=password or self.password(name))
                .render_as_string(hide_password=False))

    def as_(self, name) -> Project:
        p = Project.open(self.url(name), workdir=self.workdir) if self.pg else Project.open(self.location, user=name)
        self.opened.append(p)
        return p

    def close(self):
        for p in [self.admin, *self.opened]:
            p.close()


@pytest.fixture
def team(location, image_files, tmp_path):
    t = Team(location, image_files, tmp_path / "work")
    yield t
    t.close()


def _denials(project) -> int:
    return int((project.audit_log()["action"] == "denied").sum())


def _data(project) -> dict:
    snap = snapshot(project)
    snap.pop("audit_log")
    return snap


WRITES = {  # every write path of the store, as a viewer would call it
    "add_annotation": lambda p: p.add_annotation(image=1, kind="label", label="cat", annotator="eve"),
    "update_annotation": lambda p, t: p.update_annotation(t.ben_box, by="eve", label="cat"),
    "delete_annotation": lambda p, t: p.delete_annotation(t.ben_box, by="eve"),
    "restore_annotation": lambda p, t: p.restore_annotation(t.ben_box, by="eve"),
    "replace_annotations": lambda p, t: p.replace_annotations([t.ben_box], [], by="eve"),
    "add_images": lambda p, t: p.add_images([t.extra]),
    "add_classes": lambda p: p.add_classes(["bird"]),
    "add_annotator": lambda p: p.add_annotator("mallory"),
    "set_role": lambda p: p.set_role("eve", "admin"),
    "set_blind": lambda p: p.set_blind(False),
    "assign": lambda p: p.assign([4], ["ana"]),
    "requeue": lambda p: p.requeue([1], "ana"),
    "submit": lambda p: p.submit(1, annotator="ana"),
    "set_image_attributes": lambda p: p.set_image_attributes(1, {"x": 1}, by="eve"),
    "import_annotations": lambda p, t: p.import_annotations(t.coco, format="coco", annotator="eve"),
    "export": lambda p, t: p.export(t.out, format="coco"),
    "set_consent": lambda p: p.set_consent("p1", "given", by="eve"),
    "withdraw_consent": lambda p: p.withdraw_consent("p1", by="eve"),
    "forget_subject": lambda p: p.forget_subject("p1", by="eve"),
    "set_retention": lambda p: p.set_retention(30, by="eve"),
}


@pytest.mark.parametrize("action", sorted(WRITES))
def test_viewer_cannot_write(team, action, tmp_path):
    from tests.conftest import write_image

    team.extra = write_image(tmp_path / "extra.png", seed=99)
    team.coco = tmp_path / "c.json"
    team.coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    team.out = tmp_path / "out.json"
    eve = team.as_("eve")
    before, denied = _data(team.admin), _denials(team.admin)
    call = WRITES[action]
    with pytest.raises(AccessDenied, match="eve") as err:
        call(eve) if call.__code__.co_argcount == 1 else call(eve, team)
    assert "viewer" in str(err.value) or "only" in str(err.value) or "admin" in str(err.value)
    assert _data(team.admin) == before, "a denied write changed stored data"
    assert _denials(team.admin) == denied + 1, "the denial was not logged"
    assert not team.out.exists()


def test_viewer_reads(team):
    eve = team.as_("eve")
    assert len(eve.images()) == 5 and eve.images()["subject"].notna().all()
    assert list(eve.annotations().index) == [team.ben_box]
    assert eve.read_image(4).shape == (30, 40, 3)
    assert eve.whoami()["role"] == "viewer"


def test_annotator_writes_only_its_own_on_assigned_images(team):
    ana = team.as_("ana")
    before = _data(team.admin)
    with pytest.raises(AccessDenied, match="annotators change only their own"):
        ana.update_annotation(team.ben_box, by="ana", label="cat")
    with pytest.raises(AccessDenied, match="annotators change only their own"):
        ana.delete_annotation(team.ben_box, by="ana")
    with pytest.raises(AccessDenied, match="on behalf of others"):
        ana.delete_annotation(team.ben_box, by="ben")
    with pytest.raises(AccessDenied, match="annotators change only their own"):
        ana.add_annotation(image=2, kind="label", label="cat", annotator="ben")
    with pytest.raises(AccessDenied, match="not assigned to you"):
        ana.add_annotation(image=3, kind="label", label="cat", annotator="ana")
    with pytest.raises(AccessDenied, match="not assigned to you"):
        ana.add_annotations([dict(image=1, kind="label", label="cat", annotator="ana"),
                             dict(image=4, kind="label", label="dog", annotator="ana")])
    with pytest.raises(AccessDenied, match="not assigned to you"):
        ana.set_image_attributes(3, {"glasses": True}, by="ana")
    with pytest.raises(AccessDenied, match="on behalf of others"):
        ana.submit(2, annotator="ben")
    with pytest.raises(AccessDenied, match="admin"):
        ana.assign([4], ["ana"])
    assert _data(team.admin) == before
    # ... and what it may do
    mine = ana.add_annotation(image=2, kind="box", label="cat", annotator="ana", geometry=[0, 0, 5, 5])
    assert ana.update_annotation(mine, by="ana", label="dog") == 2
    ana.delete_annotation(mine, by="ana")
    ana.restore_annotation(mine, by="ana")
    ana.set_image_attributes(1, {"glasses": True}, by="ana")
    ana.submit(1, annotator="ana")
    assert ana.queue("ana") == [2]
    assert (team.admin.audit_log()["action"] == "denied").sum() == 9


def test_annotator_sees_what_blind_mode_allows(team):
    ana = team.as_("ana")
    mine = ana.add_annotation(image=2, kind="label", label="cat", annotator="ana")
    assert list(ana.annotations().index) == [mine]  # ben's box on the same image is hidden
    with pytest.raises(AccessDenied, match="blind mode"):
        ana.annotation_history(team.ben_box)
    imgs = ana.images()
    assert list(imgs.index) == [1, 2] and imgs["subject"].isna().all()
    with pytest.raises(AccessDenied, match="not assigned"):
        ana.read_image(3)
    with pytest.raises(AccessDenied, match="own"):
        ana.queue("ben")
    with pytest.raises(AccessDenied, match="audit log"):
        ana.audit_log()
    team.admin.set_blind(False)
    assert sorted(ana.annotations().index) == sorted([mine, team.ben_box])


def test_reads_are_logged_once_per_image(team):
    eve = team.as_("eve")
    for _ in range(3):
        eve.read_image(4)
    log = team.admin.audit_log()
    reads = log[(log["action"] == "read_image") & (log["actor"] == "eve")]
    assert list(reads["target_id"]) == [4]


def test_non_member_cannot_open(team):
    if team.pg:  # a valid login on the server that no admin mapped to a member
        with team.admin.store.ctx.engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE ROLE mallory_{team.tag} LOGIN PASSWORD 'pw-mallory-{team.tag}'")
        with pytest.raises(AccessDenied, match="not a member"):
            Project.open(team.url("mallory"), workdir=team.workdir)
        return
    with pytest.raises(AccessDenied, match="not a member"):
        Project.open(team.location, user="mallory")
    log = team.admin.audit_log()
    assert ((log["action"] == "denied") & (log["actor"] == "mallory")).sum() == 1


def test_roles_change_with_set_role(team):
    team.admin.set_role("eve", "annotator")
    team.admin.assign([5], ["eve"])
    eve = team.as_("eve")
    eve.add_annotation(image=5, kind="label", label="cat", annotator="eve")
    with pytest.raises(Exception, match="only admin"):
        team.admin.set_role(team.admin.user, "viewer")


# ------------------------------------------------------------------ PostgreSQL only --
@pytest.fixture
def sqlite_team(image_files, tmp_path):
    """A team on a folder project only, for tests that write the SQLite file behind labkit's back."""
    t = Team(tmp_path / "proj", image_files, tmp_path / "work")
    yield t
    t.close()


@pytest.fixture
def pg_team(pg_url, image_files, tmp_path):
    t = Team(pg_url, image_files, tmp_path / "work")
    yield t
    t.close()


@pytest.mark.postgres
def test_pg_credentials(pg_team):
    t = pg_team
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
        Project.open(t.url("ana", password="wrong"), workdir=t.workdir)
    ana = t.as_("ana")
    assert ana.user == "ana" and ana.whoami()["db_user"] == t.login("ana")
    with pytest.raises(AccessDenied, match="own credentials"):
        Project.open(t.url("ana"), user="ben", workdir=t.workdir)
    assert "pw-ana" not in repr(ana) and "pw-ana" not in ana.info()["location"]


@pytest.mark.postgres
def test_pg_database_enforces_roles_against_raw_sql(pg_team):
    """A person who bypasses labkit and writes SQL with their login is held to the same rules."""
    t = pg_team
    ids = {n: t.admin.annotators().loc[n, "id"] for n in ["ana", "ben"]}

    def raw(name, sql, **params):
        eng = sa.create_engine(t.url(name).replace("postgresql://", "postgresql+psycopg://"))
        try:
            with eng.begin() as conn:
                return conn.execute(sa.text(sql), params)
        finally:
            eng.dispose()

    before = _data(t.admin)
    now = "now()"
    insert = ("INSERT INTO annotations (image_id, annotator_id, kind, class_id, source, provenance, version, "
              f"created_at, updated_at) VALUES (:img, :who, 'label', 1, 'human', '{{}}', 1, {now}, {now})")
    with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
        raw("ana", insert, img=2, who=int(ids["ben"]))  # as somebody else
    with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
        raw("ana", insert, img=3, who=int(ids["ana"]))  # an image not assigned to ana
    res = raw("ana", "UPDATE annotations SET class_id = 1 WHERE id = :a", a=t.ben_box)
    assert res.rowcount == 0  # ben's row is invisible to ana's UPDATE
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        raw("eve", "UPDATE images SET split = 'x'")
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        raw("eve", "DELETE FROM audit_log")
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        raw("ana", "SELECT * FROM subjects")
    with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
        raw("eve", "INSERT INTO audit_log (at, actor, action, details) VALUES (now(), 'ben', 'x', '{}')")
    assert _data(t.admin) == before
    raw("ana", insert, img=2, who=int(ids["ana"]))  # its own, on an assigned image: allowed
    assert len(t.admin.annotations(annotator="ana")) == 1


# --------------------------------------------- security review: reads, actors, gold (both backends) --
def test_include_withdrawn_is_for_admins_only(team):
    """Item 7: a withdrawn subject's data is an admin's to see, even when asked for explicitly."""
    team.admin.add_annotation(image=3, kind="label", label="cat", annotator="ben")
    team.admin.withdraw_consent("p2", by=team.admin.user)  # images 3 and 4
    for name in ("eve", "ana", "ben"):
        p = team.as_(name)
        denied = _denials(team.admin)
        with pytest.raises(AccessDenied, match="withdrew consent"):
            p.images(include_withdrawn=True)
        with pytest.raises(AccessDenied, match="withdrew consent"):
            p.annotations(include_withdrawn=True)
        assert _denials(team.admin) == denied + 2
        assert not {3, 4} & set(p.images().index) and 3 not in set(p.annotations()["task"])
    assert len(team.admin.images(include_withdrawn=True)) == 5
    assert 3 in set(team.admin.annotations(include_withdrawn=True)["task"])


def test_who_sees_whom(team):
    """Item 10: annotators see their own member row and progress; others' names only with blind mode off."""
    ana, eve = team.as_("ana"), team.as_("eve")
    everyone = {team.admin.user, "ana", "ben", "eve"}
    mine = ana.annotators()
    assert list(mine.index) == ["ana"] and mine.loc["ana", "role"] == "annotator"
    assert "db_user" not in mine.columns
    assert ana.whoami() == {"name": "ana", "role": "annotator", "db_user": team.login("ana") if team.pg else None}
    assert list(ana.progress().index) == ["ana"]
    per_image = ana.progress(by="image")
    assert list(per_image.index) == [1, 2] and (per_image["assigned"] == 1).all()  # ben's share of image 2 unseen
    seen = eve.annotators()
    assert set(seen.index) == everyone and "db_user" not in seen.columns
    assert set(eve.progress().index) == {"ana", "ben"} and eve.progress(by="image").loc[2, "assigned"] == 2
    assert "db_user" in team.admin.annotators().columns
    info = ana.info()  # the counts follow the same rules
    assert (info["images"], info["annotations"], info["annotators"], info["assignments"]) == (2, 0, 1, 2)
    assert (eve.info()["images"], eve.info()["annotators"]) == (5, 4)
    team.admin.set_blind(False)
    opened = ana.annotators()
    assert set(opened.index) == everyone and "db_user" not in opened.columns
    assert list(ana.progress().index) == ["ana"]


def test_actor_is_the_member_and_by_only_a_note(team):
    """Item 9: ``by=`` never names the actor of an audit entry or a history row."""
    admin = team.admin
    admin.withdraw_consent("p3", by="dpo")
    mine = admin.add_annotation(image=1, kind="label", label="cat", annotator="ana")
    admin.update_annotation(mine, by="ana", label="dog")
    admin.submit(1, annotator="ana")
    log = admin.audit_log()
    assert set(log["actor"]) == {admin.user}, log[["actor", "action"]]
    notes = {a: d.get("on_behalf_of") for a, d in zip(log["action"], log["details"])}
    assert notes["set_consent"] == "dpo" and notes["add_annotations"] == "ana"
    assert notes["update_annotation"] == "ana" and log["details"].iloc[-1]["annotator"] == "ana"
    assert admin.annotation_history(mine)["changed_by"].iloc[0] == admin.user
    ana = team.as_("ana")
    with pytest.raises(AccessDenied, match="on behalf of others"):
        ana.set_image_attributes(1, {"glasses": True}, by="ben")


def test_gold_answers_are_hidden_from_and_immutable_to_annotators(team):
    """Item 8: the answers an annotator is scored against are not in what it reads or writes."""
    from labkit.services import add_gold, gold_answers

    add_gold(team.admin, {1: "dog", 2: "cat"}, by=team.admin.user)
    ana = team.as_("ana")
    assert not any("gold" in a for a in ana.images()["attributes"])
    with pytest.raises(AccessDenied, match="gold"):
        gold_answers(ana)
    with pytest.raises(ValueError, match="gold"):
        ana.set_image_attributes(1, {"gold": "cat"}, by="ana")
    with pytest.raises(AccessDenied):
        add_gold(ana, {1: "cat"}, by="ana")
    assert gold_answers(team.admin).to_dict() == {1: "dog", 2: "cat"}
    assert gold_answers(team.as_("eve")).to_dict() == {1: "dog", 2: "cat"}  # viewers read the quality reports


def test_annotators_write_only_human_and_tool_sources(team):
    """Item 12 (API side): consensus, imports and simulated work are an admin's."""
    ana = team.as_("ana")
    for source in ("consensus", "import:coco"):
        with pytest.raises(AccessDenied, match="source"):
            ana.add_annotation(image=1, kind="label", label="cat", annotator="ana", source=source)
    ana.add_annotation(image=1, kind="box", label="cat", annotator="ana", geometry=[0, 0, 5, 5], source="sam")


# ------------------------------------------------------ raw SQL: the database repeats the rules --
def _sqlite_raw(team, sql, **params):
    import sqlite3

    con = sqlite3.connect(team.location / "project.db", isolation_level=None)
    try:
        cur = con.execute(sql, params)
        return cur.fetchall() if cur.description else cur.rowcount
    finally:
        con.close()


def _pg_raw(team, name, sql, **params):
    eng = sa.create_engine(team.url(name).replace("postgresql://", "postgresql+psycopg://"))
    try:
        with eng.begin() as conn:
            res = conn.execute(sa.text(sql), params)
            return [tuple(r) for r in res] if res.returns_rows else res.rowcount
    finally:
        eng.dispose()


BAD_ROWS = {  # (kind, geometry, source) an annotator's own row must not have
    "text coordinates": ("box", '{"x0": "evil", "y0": 0, "x1": 1, "y1": 1}', "human"),
    "unknown kind": ("bogus", None, "human"),
    "box far outside": ("box", '{"x0": -1e9, "y0": 0, "x1": 1e9, "y1": 5}', "human"),
    "infinite": ("box", '{"x0": 0, "y0": 0, "x1": 1e999, "y1": 5}', "human"),
    "missing key": ("box", '{"x0": 0, "y0": 0, "x1": 5}', "human"),
    "label with geometry": ("label", '{"x0": 0}', "human"),
    "short polygon": ("polygon", '{"points": [[0, 0], [1, 1]]}', "human"),
    "polygon outside": ("polygon", '{"points": [[0, 0], [1, 1], [500, 1]]}', "human"),
    "mask of another size": ("mask", '{"size": [3, 3], "counts": "09"}', "human"),
    "unknown source": ("label", None, "bogus"),
}


@pytest.mark.parametrize("problem", sorted(BAD_ROWS))
def test_sqlite_refuses_invalid_annotations(sqlite_team, problem):
    """Item 12 on SQLite: CHECK constraints and triggers refuse what the API refuses, whoever writes."""
    team = sqlite_team
    import sqlite3

    kind, geometry, source = BAD_ROWS[problem]
    ana_id = int(team.admin.annotators().loc["ana", "id"])
    before = _data(team.admin)
    with pytest.raises(sqlite3.IntegrityError, match="labkit|CHECK"):
        _sqlite_raw(team, "INSERT INTO annotations (image_id, annotator_id, kind, class_id, geometry, source, "
                          "provenance, version, created_at, updated_at) VALUES (1, :a, :k, 1, :g, :s, '{}', 1, "
                          "'2026-01-01 00:00:00', '2026-01-01 00:00:00')", a=ana_id, k=kind, g=geometry, s=source)
    assert _data(team.admin) == before


def test_sqlite_history_and_audit_are_the_databases(sqlite_team):
    """Items 13, 14 on SQLite: history rows are written by a trigger; history and audit log are append-only."""
    team = sqlite_team
    import sqlite3

    box = team.ben_box
    for change in ("image_id = 3", "source = 'consensus'", "created_at = '2001-01-01 00:00:00'",
                   "annotator_id = 2", "kind = 'point'"):
        with pytest.raises(sqlite3.IntegrityError, match="labkit"):
            _sqlite_raw(team, f"UPDATE annotations SET {change}, version = version + 1 WHERE id = :b", b=box)
    _sqlite_raw(team, "UPDATE annotations SET class_id = 1, version = version + 1 WHERE id = :b", b=box)
    hist = team.admin.annotation_history(box)
    assert hist.index.tolist() == [1, 2] and hist.loc[1, "label"] == "dog" and hist.loc[2, "label"] == "cat"
    with pytest.raises(sqlite3.IntegrityError, match="labkit"):
        _sqlite_raw(team, "UPDATE annotation_history SET changed_by = 'ben'")
    with pytest.raises(sqlite3.IntegrityError, match="labkit"):
        _sqlite_raw(team, "INSERT INTO annotation_history (annotation_id, version, class_id, provenance, "
                          "valid_from, valid_to, change, changed_by) VALUES (:b, 7, 1, '{}', '2001-01-01', "
                          "'2001-01-02', 'update', 'boss')", b=box)
    for sql in ("UPDATE audit_log SET actor = 'ben'", "UPDATE audit_log SET action = 'export'",
                "DELETE FROM audit_log"):
        with pytest.raises(sqlite3.IntegrityError, match="labkit"):
            _sqlite_raw(team, sql)


@pytest.mark.postgres
def test_pg_reads_match_the_api(pg_team):
    """Items 7, 10, 11: what a login can SELECT is what the API shows that member."""
    t = pg_team
    ana_own = t.admin.add_annotation(image=1, kind="label", label="cat", annotator="ana")
    t.admin.add_annotation(image=5, kind="label", label="cat", annotator="ben")
    t.admin.withdraw_consent("p3", by=t.admin.user)  # image 5
    t.admin.update_annotation(t.ben_box, label="cat", by=t.admin.user)

    def denied(name, sql):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            _pg_raw(t, name, sql)

    assert _pg_raw(t, "ana", "SELECT id FROM annotations") == [(ana_own,)]  # blind mode
    assert _pg_raw(t, "ana", "SELECT annotation_id FROM annotation_history") == []
    assert _pg_raw(t, "ana", "SELECT id FROM images ORDER BY id") == [(1,), (2,)]
    assert _pg_raw(t, "ana", "SELECT name FROM annotators") == [("ana",)]
    assert _pg_raw(t, "ana", "SELECT image_id FROM assignments ORDER BY image_id") == [(1,), (2,)]
    for sql in ("SELECT subject FROM images", "SELECT * FROM images", "SELECT * FROM audit_log",
                "SELECT db_user FROM annotators", "SELECT * FROM subjects", "SELECT * FROM gold"):
        denied("ana", sql)
    assert _pg_raw(t, "eve", "SELECT id FROM images ORDER BY id") == [(1,), (2,), (3,), (4,)]
    assert _pg_raw(t, "eve", "SELECT count(*) FROM annotations WHERE image_id = 5") == [(0,)]
    assert _pg_raw(t, "eve", "SELECT count(*) FROM images WHERE subject = 'p3'") == [(0,)]
    denied("eve", "SELECT db_user FROM annotators")
    assert len(_pg_raw(t, "eve", "SELECT name FROM annotators")) == 4
    t.admin.set_blind(False)
    assert sorted(_pg_raw(t, "ana", "SELECT id FROM annotations")) == sorted([(ana_own,), (t.ben_box,)])
    assert len(_pg_raw(t, "ana", "SELECT name FROM annotators")) == 4
    assert [r[0] for r in _pg_raw(t, "ana", "SELECT annotation_id FROM annotation_history")] == [t.ben_box]


@pytest.mark.postgres
@pytest.mark.parametrize("problem", sorted(BAD_ROWS) + ["consensus source", "another's annotation"])
def test_pg_refuses_invalid_annotations(pg_team, problem):
    """Item 12 on PostgreSQL: an annotator's own login cannot store what the API refuses."""
    t = pg_team
    kind, geometry, source = BAD_ROWS.get(problem, ("label", None, "consensus"))
    who = t.admin.annotators().loc["ben" if problem == "another's annotation" else "ana", "id"]
    if problem == "another's annotation":
        source = "human"
    before = _data(t.admin)
    with pytest.raises(sa.exc.DBAPIError, match="labkit|violates|row-level security"):
        _pg_raw(t, "ana", "INSERT INTO annotations (image_id, annotator_id, kind, class_id, geometry, source, "
                          "provenance, version, created_at, updated_at) VALUES (2, :a, :k, 1, CAST(:g AS json), :s, "
                          "'{}', 1, now(), now())", a=int(who), k=kind, g=geometry, s=source)
    assert _data(t.admin) == before


@pytest.mark.postgres
def test_pg_history_is_the_databases(pg_team):
    """Item 13: annotators change only label, geometry and score; history is written by a trigger, append-only."""
    t = pg_team
    mine = t.as_("ana").add_annotation(image=1, kind="box", label="cat", annotator="ana", geometry=[0, 0, 5, 5])
    for change in ("image_id = 2", "source = 'consensus'", "created_at = now() - interval '1 year'",
                   "annotator_id = annotator_id", "kind = 'point'"):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            _pg_raw(t, "ana", f"UPDATE annotations SET {change} WHERE id = {mine}")
    _pg_raw(t, "ana", f"UPDATE annotations SET class_id = 2 WHERE id = {mine}")  # a raw edit, still recorded
    hist = t.admin.annotation_history(mine)
    assert hist.index.tolist() == [1, 2] and hist["label"].tolist() == ["cat", "dog"]
    assert hist.loc[1, "changed_by"] == "ana"
    for sql in (f"INSERT INTO annotation_history (annotation_id, version, class_id, provenance, valid_from, "
                f"valid_to, change, changed_by) VALUES ({mine}, 9, 1, '{{}}', now(), now(), 'update', 'boss')",
                "UPDATE annotation_history SET changed_by = 'boss'", "DELETE FROM annotation_history",
                "UPDATE audit_log SET actor = 'boss'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            _pg_raw(t, "ana", sql)
    admin = t.admin.store.ctx.engine  # even the owner cannot move an annotation or rewrite history
    for sql in (f"UPDATE annotations SET image_id = 2 WHERE id = {mine}",
                "UPDATE annotation_history SET changed_by = 'x'", "UPDATE audit_log SET actor = 'x'",
                "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="labkit"), admin.begin() as conn:
            conn.exec_driver_sql(sql)


@pytest.mark.postgres
def test_pg_audit_entries_are_stamped_and_limited(pg_team):
    """Item 14: non-admin logins cannot forge exports or erasures; the actor is the login's member."""
    t = pg_team
    fake = ("INSERT INTO audit_log (at, actor, action, target, details) VALUES (now(), :who, :action, 'x', "
            "CAST(:d AS json))")
    for name in ("ana", "eve"):
        for action in ("export", "forget_subject", "set_role"):
            with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
                _pg_raw(t, name, fake, who=name, action=action, d='{"recipient": "x", "tombstone": "y"}')
    _pg_raw(t, "eve", fake, who=t.admin.user, action="read_image", d="{}")  # a read: allowed, but as eve
    log = t.admin.audit_log()
    assert log.iloc[-1]["actor"] == "eve" and log.iloc[-1]["action"] == "read_image"
    with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
        _pg_raw(t, "eve", fake, who="eve", action="add_annotations", d="{}")  # viewers do not write
    _pg_raw(t, "ana", fake, who="ben", action="add_annotations", d="{}")
    assert t.admin.audit_log().iloc[-1]["actor"] == "ana"
    rep = t.admin.privacy_report()
    assert rep.exports.empty and rep.erasures.empty


@pytest.mark.postgres
def test_pg_gold_is_admins(pg_team):
    """Item 8 on PostgreSQL: no annotator login reads or writes gold answers."""
    from labkit.services import add_gold

    t = pg_team
    add_gold(t.admin, {1: "dog"}, by=t.admin.user)
    for sql in ("SELECT * FROM gold", "UPDATE gold SET class_id = 1", "INSERT INTO gold (image_id, class_id, "
                "set_by, set_at) VALUES (2, 1, 'ana', now())", "DELETE FROM gold"):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            _pg_raw(t, "ana", sql)
    assert _pg_raw(t, "ana", "SELECT attributes::text FROM images WHERE id = 1") == [("{}",)]
    assert _pg_raw(t, "eve", "SELECT image_id FROM gold") == [(1,)]
