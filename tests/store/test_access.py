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
