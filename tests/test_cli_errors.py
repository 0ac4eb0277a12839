"""Errors speak the language of the caller: ``labkit`` commands on the command line, Python in Python.

Every failure here is checked four ways: the command line's exact message (with the real
project path in its commands), the same error raised to Python naming the Python call,
every unknown name listed at once (with close matches), and the stored data unchanged.
Where a message suggests a command, the test runs it to show the fix works.
"""
from __future__ import annotations

import pickle
import re
import shlex
import sqlite3

import pytest
from click.testing import CliRunner

from labkit import AccessDenied, ImageError, ImportProblem, Project, ProjectError
from labkit.cli import main
from labkit.cli._common import user_error
from labkit.cli.interchange import import_
from labkit.cli.project import annotators_add, assign, classes_add, images, images_add, images_list, project_info
from labkit.store import schema as S
from labkit.store.errors import PROJECT, Fix, command
from tests.store.helpers import snapshot

# What a Python fix looks like; none may reach the command line.
PYTHON = re.compile(r"\b[Pp]roject\.\w+\(|\b\w+=(\.\.\.|True|None|'|\[)|from labkit")


@pytest.fixture
def proj(tmp_path, image_files):
    """A folder project of owner (admin), ana, ben (annotators) and eve (viewer), classes cat/dog/bird, 3 images."""
    p = Project.create(tmp_path / "proj", classes=["cat", "dog", "bird"], user="owner")
    p.add_annotator("ana")
    p.add_annotator("ben")
    p.add_annotator("eve", role="viewer")
    p.add_images(image_files[:3])
    yield p
    p.close()


def run(cmd, *args, user: str = "owner"):
    return CliRunner().invoke(cmd, [str(a) for a in args], env={"LABKIT_USER": user})


def fails(cmd, *args, user: str = "owner") -> str:
    """The message of a command that must fail cleanly: exit 1, no traceback, no Python in it."""
    res = run(cmd, *args, user=user)
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit), f"not a clean error: {res.exception!r}\n{res.output}"
    assert not PYTHON.search(res.output), f"the command line shows Python code:\n{res.output}"
    assert res.output.startswith("Error: ") and res.output.endswith("\n")
    return res.output.removeprefix("Error: ").removesuffix("\n")


def suggested(message: str) -> list[list[str]]:
    """The ``labkit`` commands a message suggests, as argument lists for ``main``."""
    return [shlex.split(c)[1:] for c in re.findall(r"`(labkit [^`]*)`", message)]


def python_error(call, error=ProjectError) -> str:
    with pytest.raises(error) as info:
        call()
    text = str(info.value)
    assert "`labkit " not in text, f"the Python message shows a command: {text}"
    return text


def data(p) -> dict:
    """Every stored row but the audit log (denials are logged there)."""
    snap = snapshot(p)
    snap.pop("audit_log")
    return snap


# ------------------------------------------------------------------------------------- annotators --

@pytest.mark.parametrize("how", ["main", "command"])
def test_assign_lists_every_unknown_annotator_with_close_matches(proj, how):
    loc = str(proj.location)
    before = snapshot(proj)
    args = ["-P", loc, "--annotators", "Ana,bem,zed"]
    out = fails(main, "assign", *args) if how == "main" else fails(assign, *args)
    q = shlex.quote(loc)
    assert out == ("unknown annotators ['Ana', 'bem', 'zed']; known: ['owner', 'ana', 'ben', 'eve']; "
                   "did you mean 'ana' for 'Ana', 'ben' for 'bem'? "
                   f"Register them with `labkit annotators add -P {q} Ana` and `labkit annotators add -P {q} bem` "
                   f"and `labkit annotators add -P {q} zed` if they are new")
    assert snapshot(proj) == before
    text = python_error(lambda: proj.assign([1], ["Ana", "bem", "zed"]))
    assert text.startswith("unknown annotators ['Ana', 'bem', 'zed']; known:")
    assert ("Register them with project.add_annotator('Ana') and project.add_annotator('bem') and "
            "project.add_annotator('zed') if they are new") in text
    assert snapshot(proj) == before
    # the suggested command works, and then the same assignment goes through
    assert run(main, *suggested(out)[2]).exit_code == 0
    assert run(main, "assign", "-P", loc, "--annotators", "ana,ben,zed").exit_code == 0


def test_unknown_annotator_in_an_annotation_names_the_python_call(proj):
    before = snapshot(proj)
    text = python_error(lambda: proj.add_annotation(image=1, kind="label", label="cat", annotator="bne"))
    assert text == ("unknown annotator 'bne'; known: ['owner', 'ana', 'ben', 'eve']; did you mean 'ben'? "
                    "Nothing was stored; register it with project.add_annotator('bne') if it is new")
    assert snapshot(proj) == before


# ---------------------------------------------------------------------------------------- classes --

def test_unknown_class_in_an_annotation_suggests_the_case_and_spelling(proj):
    before = snapshot(proj)
    text = python_error(lambda: proj.add_annotation(image=1, kind="label", label="Cat", annotator="ana"))
    assert text == ("unknown class 'Cat'; the project's classes are ['cat', 'dog', 'bird']; did you mean 'cat'? "
                    "Nothing was stored; add it with project.add_classes(['Cat']) if it is new")
    # a batch names every unknown class, annotator and image at once, with the records they are in
    text = python_error(lambda: proj.add_annotations([
        dict(image=1, kind="label", label="dgo", annotator="ana"),
        dict(image=2, kind="label", label="cat", annotator="zed"),
        dict(image=9, kind="label", label="Cat", annotator="ana"),
        dict(image=8, kind="label", label="cow", annotator="Ben")]))
    assert text == (
        "records [0, 2, 3]: unknown classes ['dgo', 'Cat', 'cow']; the project's classes are ['cat', 'dog', 'bird']; "
        "did you mean 'dog' for 'dgo', 'cat' for 'Cat'? "
        "Records [1, 3]: unknown annotators ['zed', 'Ben']; known: ['owner', 'ana', 'ben', 'eve']; "
        "did you mean 'ben' for 'Ben'? "
        "Records [2, 3]: no images [9, 8] in the project; nothing was stored; "
        "add them with project.add_classes(['dgo', 'Cat', 'cow']) if they are new; "
        "register them with project.add_annotator('zed') and project.add_annotator('Ben') if they are new; "
        "project.images() lists the project's images (ids and paths)")
    assert snapshot(proj) == before


@pytest.mark.parametrize("how", ["main", "command"])
def test_import_lists_unknown_classes_and_images_with_cli_fixes(proj, tmp_path, how):
    import json

    doc = tmp_path / "coco.json"
    doc.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "img_0.png", "width": 40, "height": 30},
                   {"id": 2, "file_name": "elsewhere.png", "width": 40, "height": 30}],
        "categories": [{"id": 1, "name": "Cat"}, {"id": 2, "name": "dgo"}, {"id": 3, "name": "cow"}],
        "annotations": [{"id": i, "image_id": 1, "category_id": i, "bbox": [0, 0, 4, 4]} for i in (1, 2, 3)]}))
    loc = str(proj.location)
    before = snapshot(proj)
    args = ["-P", loc, doc, "--format", "coco", "--annotator", "vendor"]
    out = fails(main, "import", *args) if how == "main" else fails(import_, *args)
    q = shlex.quote(loc)
    assert out == (
        f"cannot import {doc}: 2 problem(s); the project is unchanged:\n"
        "  images[1]: image 'elsewhere.png' is not in the project\n"
        "  unknown classes ['Cat', 'cow', 'dgo']; the project has ['cat', 'dog', 'bird']; "
        "did you mean 'cat' for 'Cat', 'dog' for 'dgo'?\n"
        f"Add the images first with `labkit images add -P {q} FILE...`, or pass --images-dir FOLDER to add them "
        f"with the import; add them with `labkit classes add -P {q} Cat cow dgo` if they are new, or pass "
        "--add-classes")
    assert snapshot(proj) == before
    text = python_error(lambda: proj.import_annotations(doc, format="coco", annotator="vendor"), ImportProblem)
    assert text.endswith("Add the images first with project.add_images([...]), or pass images_dir='folder' to add "
                         "them with the import; add them with project.add_classes(['Cat', 'cow', 'dgo']) if they "
                         "are new, or pass add_classes=True")
    assert snapshot(proj) == before


@pytest.mark.parametrize("how", ["main", "command"])
def test_add_classes_that_exist(proj, how):
    loc = str(proj.location)
    before = snapshot(proj)
    out = fails(main, "classes", "add", "-P", loc, "cat", "fish") if how == "main" else \
        fails(classes_add, "-P", loc, "cat", "fish")
    assert out == ("classes already in the project: ['cat'] (it has ['cat', 'dog', 'bird']); nothing was added; "
                   f"add only the new ones with `labkit classes add -P {shlex.quote(loc)} fish`")
    assert snapshot(proj) == before
    assert python_error(lambda: proj.add_classes(["cat", "fish"])).endswith(
        "add only the new ones with project.add_classes(['fish'])")
    assert snapshot(proj) == before
    assert run(main, *suggested(out)[0]).exit_code == 0
    assert proj.classes() == ["cat", "dog", "bird", "fish"]


# ----------------------------------------------------------------------------------------- images --

@pytest.mark.parametrize("how", ["main", "command"])
def test_assign_unknown_images(proj, how):
    loc = str(proj.location)
    before = snapshot(proj)
    args = ["-P", loc, "--annotators", "ana", "--images", "1,7,9"]
    out = fails(main, "assign", *args) if how == "main" else fails(assign, *args)
    assert out == (f"no such images: [7, 9]; nothing was assigned; `labkit images list -P {shlex.quote(loc)}` "
                   "lists the project's images (ids and paths)")
    assert snapshot(proj) == before
    assert python_error(lambda: proj.assign([1, 7, 9], ["ana"])) == (
        "no such images: [7, 9]; nothing was assigned; project.images() lists the project's images (ids and paths)")
    listing = run(main, *suggested(out)[0])
    assert listing.exit_code == 0 and listing.output.endswith("3 images\n")
    assert snapshot(proj) == before


@pytest.mark.parametrize("how", ["main", "command"])
def test_images_already_in_the_project(proj, image_files, how):
    loc = str(proj.location)
    before = snapshot(proj)
    args = ["-P", loc, image_files[0], image_files[4]]
    out = fails(main, "images", "add", *args) if how == "main" else fails(images_add, *args)
    stored = proj.images().loc[1, "path"]
    assert out == (f"1 image(s) are already in the project; nothing was added: [{stored!r}]; pass only new files; "
                   f"`labkit images list -P {shlex.quote(loc)}` lists those in the project")
    assert snapshot(proj) == before
    text = python_error(lambda: proj.add_images([image_files[0], image_files[4]]), ImageError)
    assert text.endswith("pass only new files; project.images() lists those in the project")
    assert snapshot(proj) == before


# ------------------------------------------------------------------------------ opening a project --

@pytest.mark.parametrize("how", ["main", "group", "command"])
def test_no_project_at_the_path(tmp_path, how):
    nowhere = str(tmp_path / "nowhere")
    out = {"main": lambda: fails(main, "images", "list", "-P", nowhere),
           "group": lambda: fails(images, "list", "-P", nowhere),
           "command": lambda: fails(images_list, "-P", nowhere)}[how]()
    assert out == (f"no labkit project at {nowhere} (no project.db); create one with "
                   f"`labkit project create {shlex.quote(nowhere)} --classes NAME1,NAME2`")
    assert fails(project_info, nowhere) == out  # a LOCATION argument is the project too
    assert python_error(lambda: Project.open(nowhere)).endswith(
        f"create one with Project.create({nowhere!r}, classes=[...])")
    assert not (tmp_path / "nowhere").exists()


def test_schema_too_old_suggests_labkit_migrate(tmp_path, image_files):
    from tests.store.test_subjects import _downgrade_to_v1

    loc = tmp_path / "old"
    Project.create(loc, classes=["cat"], user="owner").close()
    _downgrade_to_v1(loc)
    rows = _rows(loc)
    out = fails(main, "project", "info", loc)
    assert out == (f"project schema version 1 is older than this labkit's ({S.SCHEMA_VERSION}); upgrade it with "
                   f"`labkit migrate -P {shlex.quote(str(loc))}` (a folder project is backed up first)")
    assert fails(project_info, loc) == out
    assert python_error(lambda: Project.open(loc, user="owner")).endswith(
        f"upgrade it with `from labkit.store.migrate import migrate; migrate({str(loc)!r})` "
        "(a folder project is backed up first)")
    assert _rows(loc) == rows
    assert run(main, *suggested(out)[0]).exit_code == 0
    assert run(main, "project", "info", loc).exit_code == 0


def _rows(location) -> dict:
    con = sqlite3.connect(location / "project.db")
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in names}
    finally:
        con.close()


# ------------------------------------------------------------------------------------------ access --

@pytest.mark.parametrize("how", ["main", "command"])
def test_not_a_member_is_told_who_adds_them_and_how(proj, how):
    loc = str(proj.location)
    before = data(proj)
    out = fails(main, "images", "list", "-P", loc, user="mallory") if how == "main" else \
        fails(images_list, "-P", loc, user="mallory")
    assert out == ("'mallory' is not a member of this project; an admin (owner) adds you with "
                   f"`labkit annotators add -P {shlex.quote(loc)} mallory --role annotator` (or --role viewer or "
                   "admin), or act as a member: LABKIT_USER=name labkit ...")
    assert data(proj) == before
    assert python_error(lambda: Project.open(loc, user="mallory"), AccessDenied).endswith(
        "an admin (owner) adds you with project.add_annotator('mallory', role='annotator') (or role='viewer' or "
        "'admin'), or open the project as a member with Project.open(..., user='name')")
    assert data(proj) == before
    assert run(main, *suggested(out)[0]).exit_code == 0
    assert run(main, "images", "list", "-P", loc, user="mallory").exit_code == 0


@pytest.mark.parametrize("how", ["main", "command"])
def test_role_needed_and_who_grants_it(proj, how):
    loc = str(proj.location)
    before = data(proj)
    out = fails(main, "classes", "add", "-P", loc, "fish", user="eve") if how == "main" else \
        fails(classes_add, "-P", loc, "fish", user="eve")
    assert out == ("'eve' may not change the taxonomy: that needs the admin role (you are viewer); an admin (owner) "
                   f"can grant it with `labkit annotators set-role -P {shlex.quote(loc)} eve admin`")
    assert data(proj) == before
    eve = Project.open(loc, user="eve")
    assert python_error(lambda: eve.add_classes(["fish"]), AccessDenied).endswith(
        "an admin (owner) can grant it with project.set_role('eve', 'admin')")
    eve.close()
    assert data(proj) == before
    assert run(main, *suggested(out)[0], user="eve").exit_code == 1  # only an admin can grant it
    assert run(main, *suggested(out)[0], user="owner").exit_code == 0
    assert run(main, "classes", "add", "-P", loc, "fish", user="eve").exit_code == 0


def test_viewers_cannot_be_assigned(proj):
    loc = str(proj.location)
    before = snapshot(proj)
    out = fails(assign, "-P", loc, "--annotators", "ana,eve")
    assert out == ("viewers cannot be assigned images: ['eve']; nothing was assigned; make them annotators first "
                   f"with `labkit annotators set-role -P {shlex.quote(loc)} eve annotator`")
    assert snapshot(proj) == before
    assert python_error(lambda: proj.assign(None, ["ana", "eve"])).endswith(
        "make them annotators first with project.set_role('eve', 'annotator')")


def test_database_login_options_on_a_folder_project(proj):
    before = snapshot(proj)
    out = fails(annotators_add, "-P", proj.location, "zoe", "--db-user", "zoe_login")
    assert out == ("database logins are for PostgreSQL projects; a folder (SQLite) project is protected by the "
                   "folder's file permissions; leave out --password and --db-user")
    assert python_error(lambda: proj.add_annotator("zoe", db_user="zoe_login")).endswith(
        "leave out password= and db_user=")
    assert snapshot(proj) == before


# ------------------------------------------------------------------------------- the error classes --

def test_a_fix_survives_pickling_and_masks_a_url_password():
    err = AccessDenied("'eve' may not read", actor="eve", action="read",
                       fix=Fix("ask with project.set_role('eve', 'admin')",
                               "ask with " + command("annotators", "set-role", "-P", PROJECT, "eve", "admin")))
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.actor, back.fix) == (AccessDenied, str(err), "eve", err.fix)
    shown = user_error(back, "postgresql://ana:secret@db.example/proj").message
    assert shown == ("'eve' may not read; ask with "
                     "`labkit annotators set-role -P 'postgresql://ana:***@db.example/proj' eve admin`")
    assert user_error(ProjectError("no fix here")).message == "no fix here"
    assert ProjectError("x", fix=Fix("python only")).cli_message("p") == "x"  # no command: the problem alone


def test_privacy_errors_name_privacy_commands(proj):
    root = proj.root
    msg = fails(main, "privacy", "withdraw", "-P", root, "nobody")
    assert msg == f"no data subject 'nobody' in the project; `labkit privacy subjects -P {root}` lists them"
    with pytest.raises(ProjectError, match=r"no data subject 'nobody' in the project; project.subjects\(\) lists"):
        proj.withdraw_consent("nobody", by="owner")
    for args in suggested(msg):
        res = run(main, *args)
        assert res.exit_code == 0 and res.output == "no data subjects\n", res.output
    proj.add_images([proj.image_path(1).parent / "img_3.png"], subject="s-7", consent="given")
    proj.withdraw_consent("s-7", by="owner")
    state = snapshot(proj)
    msg = fails(main, "images", "add", "-P", root, proj.image_path(1).parent / "img_4.png", "--subject", "s-7")
    assert msg.endswith(f"withdrew consent (['s-7']); their images cannot be added; record new consent first "
                        f"with `labkit privacy consent -P {root} s-7 --status given`"), msg
    assert snapshot(proj) == state
    res = run(main, *suggested(msg)[0])
    assert res.exit_code == 0 and "consent of s-7: given" in res.output
