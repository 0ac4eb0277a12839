"""Proposals and their review, on SQLite and PostgreSQL: the API's rules, and the database's."""
from __future__ import annotations

import sqlite3

import pandas as pd
import pytest
import sqlalchemy as sa

from labkit import AccessDenied, ProjectError
from tests.store.helpers import snapshot
from tests.store.test_access import Team, _pg_raw, _sqlite_raw


@pytest.fixture
def team(location, image_files, tmp_path):
    """The access tests' team (ana: images 1, 2; ben: 2, 3; eve a viewer) with three proposals by the admin."""
    t = Team(location, image_files, tmp_path / "work")
    t.proposals = t.admin.add_proposals([
        dict(image=1, kind="box", label="cat", annotator=t.admin.user, geometry=[2, 2, 20, 20], score=0.4,
             source="grabcut", provenance={"prelabel": "boxes", "model_id": "grabcut-test", "prompts": []}),
        dict(image=2, kind="label", label="dog", annotator=t.admin.user, score=0.9, source="pool",
             provenance={"prelabel": "pool", "model_id": "pool-1", "x_perplexity": 0.0}),
        dict(image=4, kind="label", label="cat", annotator=t.admin.user, score=0.55, source="pool",
             provenance={"prelabel": "pool", "model_id": "pool-1", "x_perplexity": 0.5}),
    ])
    yield t
    t.close()


def test_review_accept_edit_reject(team):
    box, dog, cat = team.proposals
    admin, ana = team.admin, team.as_("ana")
    assert admin.proposals()["state"].tolist() == ["proposed"] * 3
    assert ana.proposals().index.tolist() == [box, dog]  # an annotator: its images' proposals only
    assert team.as_("eve").proposals().index.tolist() == [box, dog, cat]  # a viewer reads them all

    assert ana.review(dog, "accept", by="ana", seconds=1.25) == dog
    new = ana.review(box, "edit", by="ana", geometry=[3, 3, 21, 18], seconds=4.0)
    with pytest.raises(AccessDenied, match="not assigned to you|not assigned to 'ana'"):
        ana.review(cat, "reject", by="ana")
    assert admin.review(cat, "reject", by=admin.user) is None

    df = admin.proposals(None)
    assert df["state"].to_dict() == {box: "edited", dog: "accepted", cat: "rejected"}
    assert df["reviewed_by"].to_dict() == {box: "ana", dog: "ana", cat: admin.user}
    assert df["reviewed_at"].notna().all()
    assert df.loc[box, "replaced_by"] == new and pd.isna(df.loc[dog, "replaced_by"])
    assert df.loc[box, "final_geometry"] == {"x0": 3.0, "y0": 3.0, "x1": 21.0, "y1": 18.0}
    assert df.loc[dog, "final_label"] == "dog" and df.loc[box, "final_label"] == "cat"
    assert df["review_s"].tolist()[:2] == [4.0, 1.25] and pd.isna(df.loc[cat, "review_s"])
    assert admin.proposals("edited").index.tolist() == [box]
    assert admin.proposals(["accepted", "rejected"], source="pool").index.tolist() == [dog, cat]
    # the replacement is ana's own, ordinary annotation pointing back at the proposal
    with admin.store.ctx.connect() as conn:
        row = conn.execute(sa.select(sa.text("*")).select_from(sa.table("annotations"))
                           .where(sa.text(f"id = {new}"))).mappings().one()
    assert row["state"] is None and row["source"] == "human"
    prov = row["provenance"] if isinstance(row["provenance"], dict) else __import__("json").loads(row["provenance"])
    assert prov["replaces"] == box
    assert admin.annotation_history(box).index.tolist() == [1, 2]  # the review is a version, kept
    log = admin.audit_log()
    assert (log["action"] == "review_proposal").sum() == 3

    with pytest.raises(ValueError, match="already reviewed: accepted by ana"):
        admin.review(dog, "reject", by=admin.user)
    with pytest.raises(ValueError, match="is not a proposal"):
        admin.review(new, "accept", by=admin.user)
    with pytest.raises(ValueError, match="unknown review decision 'acept'"):
        admin.review(dog, "acept", by=admin.user)
    with pytest.raises(ValueError, match="takes no geometry"):
        admin.review(cat, "accept", by=admin.user, label="dog")
    with pytest.raises(ValueError, match="needs the change"):
        admin.review(cat, "edit", by=admin.user)


def test_who_may_review(team):
    box, dog, _ = team.proposals
    ana, eve = team.as_("ana"), team.as_("eve")
    before = snapshot(team.admin)
    with pytest.raises(AccessDenied, match="only admins record changes on behalf of others"):
        ana.review(box, "accept", by="ben")
    with pytest.raises(AccessDenied, match="needs the admin or annotator role"):
        eve.review(box, "accept", by="eve")
    with pytest.raises(AccessDenied, match="admins and annotators review"):
        team.admin.review(box, "accept", by="eve")
    with pytest.raises(AccessDenied, match="image 1 is not assigned to 'ben'"):
        team.admin.review(box, "accept", by="ben")  # an admin records a review only where the reviewer may review
    with pytest.raises(AccessDenied, match="store proposals: that needs the admin role"):
        ana.add_proposals([dict(image=1, kind="label", label="cat", annotator="ana", source="grabcut")])
    rows = {k: v for k, v in snapshot(team.admin).items() if k != "audit_log"}
    assert rows == {k: v for k, v in before.items() if k != "audit_log"}
    assert team.admin.review(dog, "accept", by="ben") == dog  # image 2 is ben's too


def test_storing_proposals_is_all_or_nothing(team):
    before = snapshot(team.admin)
    good = dict(image=3, kind="label", label="cat", annotator=team.admin.user, source="pool")
    with pytest.raises(ValueError, match="record 1: a proposal's source is 'human'"):
        team.admin.add_proposals([good, {**good, "source": "human"}])
    with pytest.raises(ProjectError, match="unknown class 'cow'"):
        team.admin.add_proposals([good, {**good, "label": "cow"}])
    assert snapshot(team.admin) == before
    assert team.admin.add_proposals([{**good, "source": "import:vendor"}]) == [max(team.proposals) + 1]


def test_done_images_find_a_pre_labelers_earlier_run(team):
    assert team.admin.store.proposals.done_images(prelabel="pool", model_id="pool-1") == {2, 4}
    assert team.admin.store.proposals.done_images(prelabel="pool", model_id="pool-2") == set()


def test_delivered_annotations_leave_unreviewed_proposals_out(team):
    box, dog, cat = team.proposals
    admin = team.admin
    admin.review(dog, "accept", by=admin.user)
    new = admin.review(box, "edit", by=admin.user, label="dog")
    delivered = set(admin.annotations().index)
    assert dog in delivered and new in delivered and not {box, cat} & delivered
    assert {box, dog, cat, new} <= set(admin.annotations(include_proposals=True).index)


# ------------------------------------------------------------ raw SQL: the database refuses too --
SQLITE_REFUSED = {  # what no SQL may do to the proposals of the fixture (ids 2, 3, 4; images 1, 2, 4)
    "reviewed at birth": ("INSERT INTO annotations (image_id, annotator_id, kind, class_id, source, provenance, "
                          "version, created_at, updated_at, state, reviewed_by, reviewed_at) VALUES (1, 1, 'label', "
                          "1, 'pool', '{}', 1, 'x', 'x', 'accepted', 'ana', 'x')", "a review is an update"),
    "pool, not a proposal": ("INSERT INTO annotations (image_id, annotator_id, kind, class_id, source, provenance, "
                             "version, created_at, updated_at) VALUES (1, 1, 'label', 1, 'pool', '{}', 1, 'x', 'x')",
                             "annotations_pool_proposal"),
    "a human proposal": ("INSERT INTO annotations (image_id, annotator_id, kind, class_id, source, provenance, "
                         "version, created_at, updated_at, state) VALUES (1, 1, 'label', 1, 'human', '{}', 1, 'x', "
                         "'x', 'proposed')", "annotations_proposal_source"),
    "unknown state": ("UPDATE annotations SET state = 'maybe', version = version + 1 WHERE id = 3",
                      "annotations_state|goes proposed"),
    "reviewed without reviewer": ("UPDATE annotations SET state = 'accepted', version = version + 1 WHERE id = 3",
                                  "annotations_review|reviewed by an admin"),
    "a viewer reviews": ("UPDATE annotations SET state = 'accepted', reviewed_by = 'eve', reviewed_at = 'x', "
                         "version = version + 1 WHERE id = 3", "reviewed by an admin, or by an annotator"),
    "an annotator off its images": ("UPDATE annotations SET state = 'rejected', reviewed_by = 'ana', "
                                    "reviewed_at = 'x', version = version + 1 WHERE id = 4",
                                    "reviewed by an admin, or by an annotator"),
    "replaced by a proposal": ("UPDATE annotations SET state = 'edited', reviewed_by = 'ana', reviewed_at = 'x', "
                               "replaced_by = 3, version = version + 1 WHERE id = 2", "replaced by a live, ordinary"),
    "edited without replacement": ("UPDATE annotations SET state = 'edited', reviewed_by = 'ana', reviewed_at = 'x', "
                                   "version = version + 1 WHERE id = 2", "annotations_replaced|replaced by a live"),
}


@pytest.fixture
def sqlite_proposals(image_files, tmp_path):
    t = Team(tmp_path / "proj", image_files, tmp_path / "work")
    t.proposals = t.admin.add_proposals([
        dict(image=i, kind="label", label="cat", annotator=t.admin.user, source="pool") for i in (1, 2, 4)])
    yield t
    t.close()


@pytest.mark.parametrize("problem", sorted(SQLITE_REFUSED))
def test_sqlite_refuses_what_the_api_refuses(sqlite_proposals, problem):
    sql, match = SQLITE_REFUSED[problem]
    before = snapshot(sqlite_proposals.admin)
    with pytest.raises(sqlite3.IntegrityError, match=match):
        _sqlite_raw(sqlite_proposals, sql)
    assert snapshot(sqlite_proposals.admin) == before


def test_sqlite_review_is_once(sqlite_proposals):
    t = sqlite_proposals
    _sqlite_raw(t, "UPDATE annotations SET state = 'accepted', reviewed_by = 'ana', reviewed_at = 'x', "
                   "version = version + 1 WHERE id = 3")  # ana may review on image 2 (hers)
    for sql, match in [("UPDATE annotations SET state = 'proposed', reviewed_by = NULL, reviewed_at = NULL, "
                        "version = version + 1 WHERE id = 3", "goes proposed -> accepted"),
                       ("UPDATE annotations SET reviewed_by = 'root', version = version + 1 WHERE id = 3",
                        "never change")]:
        with pytest.raises(sqlite3.IntegrityError, match=match):
            _sqlite_raw(t, sql)


@pytest.fixture
def pg_proposals(pg_url, image_files, tmp_path):
    t = Team(pg_url, image_files, tmp_path / "work")
    t.proposals = t.admin.add_proposals([
        dict(image=i, kind="box", label="cat", annotator=t.admin.user, geometry=[1, 1, 9, 9], source="grabcut")
        for i in (1, 2, 4)])
    yield t
    t.close()


@pytest.mark.postgres
def test_pg_logins_review_as_the_api_lets_them(pg_proposals):
    t = pg_proposals
    p1, p2, p4 = t.proposals
    raw = _pg_raw
    # annotators read the proposals of their images (blind mode or not), and no others
    assert sorted(r[0] for r in raw(t, "ana", "SELECT id FROM annotations WHERE state IS NOT NULL")) == [p1, p2]
    with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
        raw(t, "ana", "INSERT INTO annotations (image_id, annotator_id, kind, class_id, source, provenance, version, "
                      "created_at, updated_at, state) VALUES (1, (SELECT labkit_me()), 'label', 1, 'grabcut', '{}', 1,"
                      " now(), now(), 'proposed')")
    assert raw(t, "ana", f"UPDATE annotations SET state = 'rejected', reviewed_by = 'ana', reviewed_at = now() "
                         f"WHERE id = {p4}") == 0  # not her image: she cannot even see it
    for sql, match in [
        (f"UPDATE annotations SET state = 'accepted', reviewed_by = 'ben', reviewed_at = now() WHERE id = {p1}",
         "only their own reviews"),
        (f"UPDATE annotations SET state = 'accepted', reviewed_by = 'ana', reviewed_at = now(), "
         f"geometry = '{{\"x0\": 0, \"y0\": 0, \"x1\": 5, \"y1\": 5}}' WHERE id = {p1}", "by editing it"),
        (f"UPDATE annotations SET geometry = '{{\"x0\": 0, \"y0\": 0, \"x1\": 5, \"y1\": 5}}' WHERE id = {p1}",
         "only by reviewing them"),
        (f"UPDATE annotations SET state = 'edited', reviewed_by = 'ana', reviewed_at = now(), replaced_by = {p2} "
         f"WHERE id = {p1}", "replaced by a live, ordinary"),
    ]:
        with pytest.raises(sa.exc.IntegrityError, match=match):
            raw(t, "ana", sql)
    assert raw(t, "ana", f"UPDATE annotations SET state = 'accepted', reviewed_by = 'ana', "
                         f"reviewed_at = '2000-01-01' WHERE id = {p1}") == 1
    df = t.admin.proposals(None)
    assert df.loc[p1, "state"] == "accepted" and df.loc[p1, "reviewed_at"].year > 2000  # the server's clock
    assert raw(t, "ana", f"UPDATE annotations SET state = 'rejected' WHERE id = {p1}") == 0  # reviewed: not hers
    with pytest.raises(sa.exc.IntegrityError, match="goes proposed -> accepted"), \
            t.admin.store.ctx.engine.begin() as conn:  # nor anyone's
        conn.exec_driver_sql(f"UPDATE annotations SET state = 'rejected' WHERE id = {p1}")
    # the API, as ana's login: the same rules, the same words
    ana = t.as_("ana")
    assert ana.proposals().index.tolist() == [p2]
    new = ana.review(p2, "edit", by="ana", label="dog", seconds=2)
    assert t.admin.proposals(None).loc[p2, ["state", "replaced_by", "final_label"]].tolist() == ["edited", new, "dog"]
    with pytest.raises(AccessDenied, match="not assigned to you"):
        ana.review(p4, "accept", by="ana")


def test_a_vendors_pre_labels_import_as_proposals(project, tmp_path, image_files):
    """import_annotations(as_proposals=True): the file's objects await review and are not delivered labels."""
    import json

    from click.testing import CliRunner

    from labkit.cli import main

    data = {"images": [{"id": i + 1, "file_name": f.name, "width": 40, "height": 30}
                       for i, f in enumerate(image_files)],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
            "annotations": [{"id": j + 1, "image_id": j % 5 + 1, "category_id": j % 2 + 1,
                             "bbox": [1.0 + j, 2.0, 5.0, 6.0], "score": 0.5 + j / 20} for j in range(6)]}
    path = tmp_path / "vendor.json"
    path.write_text(json.dumps(data))
    delivered = project.annotations()
    project.import_annotations(path, format="coco", annotator="ben", as_proposals=True)
    pending = project.proposals()
    assert len(pending) == 6 and set(pending["source"]) == {"import:coco"}
    pd.testing.assert_frame_equal(project.annotations(), delivered)  # nothing delivered yet
    info = project.info()  # counts what annotations() delivers, and says what awaits review
    assert (info["annotations"], info["proposals_awaiting_review"]) == (len(delivered), 6)
    assert len(project.annotations(include_proposals=True)) == len(delivered) + 6
    first = int(pending.index[0])
    project.review(first, "accept", by=project.user)
    assert project.annotations().index.tolist() == [*delivered.index, first]
    out = project.export(tmp_path / "out.json", format="coco")
    assert len(json.loads(out.read_text())["annotations"]) == len(delivered) + 1
    with pytest.raises(ValueError, match="proposals are made by a model or a vendor"):
        project.import_annotations(path, format="coco", annotator="ben", as_proposals=True, source="human")
    res = CliRunner(env={"LABKIT_USER": project.user}).invoke(
        main, ["import", "-P", str(project.location), str(path), "--format", "coco", "--annotator", "ben",
               "--as-proposals"])
    if project.backend == "sqlite":
        assert res.exit_code == 0, res.output
        assert len(project.proposals()) == 5 + 6
