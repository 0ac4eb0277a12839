"""PostgreSQL: each person logs in as themselves, and the database enforces their role.

The project's creator owns the tables. Every other person gets a login role of their
own (``CREATE ROLE ... LOGIN PASSWORD``) mapped to their annotator row through
``annotators.db_user``, with grants by role and row-level security policies that repeat
the store API's rules, for reads as well as writes, so a person who bypasses labkit and
writes SQL sees and changes exactly what the API would let them:

- ``viewer``: reads every table but ``subjects``, without withdrawn subjects' images,
  annotations and history, and without members' ``db_user``; adds audit entries of its
  reads and denied attempts only.
- ``annotator``: reads only the images assigned to it (not their ``subject`` column),
  its own member row and assignments, its own annotations and their history (everyone's
  when blind mode is off; never a withdrawn subject's); no audit log, subjects or gold
  answers. Writes its own annotations on images assigned to it (``human``, ``sam`` or
  ``grabcut``; only class, geometry, score, provenance and soft delete change), its own
  assignments' status and the attributes of its images; adds audit entries of its own
  actions only.
- ``admin``: everything (``admin`` rows pass every policy).

The database itself writes annotation history and stamps the audit log's actor
(:mod:`labkit.store.guards`), and seals every write into the hash chain with functions
every member executes (:mod:`labkit.store.chain`; admins and viewers also recompute it,
and viewers read the ``chain`` table, which holds no row content). Policies call
``SECURITY DEFINER`` functions that look the login up in ``annotators`` (``labkit_me()``,
``labkit_role()``, ``labkit_name()``) or read what a policy needs past the caller's own
policies (``labkit_blind()``, ``labkit_my_images()``, ``labkit_withdrawn_images()``).
``labkit_image_facts`` and ``labkit_annotation_facts`` tell the API why a row is hidden,
so a refusal says the same on both backends.
"""
from __future__ import annotations

import sqlalchemy as sa

from labkit.store import chain, proposal_guards
from labkit.store import schema as S
from labkit.store.policy import AUDIT_ACTIONS

TABLES = ("meta", "classes", "annotators", "images", "assignments", "annotations",
          "annotation_history", "audit_log", "subjects", "gold", "chain", "chain_salt")

_FUNCTIONS = """
CREATE OR REPLACE FUNCTION labkit_me() RETURNS integer LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = {schema} AS $$ SELECT id FROM annotators WHERE db_user = session_user $$;
CREATE OR REPLACE FUNCTION labkit_role() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = {schema} AS $$ SELECT role FROM annotators WHERE db_user = session_user $$;
CREATE OR REPLACE FUNCTION labkit_name() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = {schema} AS $$ SELECT name FROM annotators WHERE db_user = session_user $$;
CREATE OR REPLACE FUNCTION labkit_blind() RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = {schema} AS $$
  SELECT coalesce((SELECT CASE WHEN json_typeof(value) = 'boolean' THEN value::text::boolean END
                   FROM meta WHERE key = 'blind'), true) $$;
CREATE OR REPLACE FUNCTION labkit_my_images() RETURNS SETOF integer LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = {schema} AS $$
  SELECT image_id FROM assignments WHERE annotator_id = (SELECT id FROM annotators WHERE db_user = session_user) $$;
CREATE OR REPLACE FUNCTION labkit_withdrawn_images() RETURNS SETOF integer LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = {schema} AS $$ SELECT id FROM images WHERE consent = 'withdrawn' $$;
CREATE OR REPLACE FUNCTION labkit_image_facts(ids integer[])
  RETURNS TABLE (id integer, withdrawn boolean, assigned boolean) LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = {schema} AS $$
  SELECT i.id, i.consent IS NOT DISTINCT FROM 'withdrawn',
         EXISTS (SELECT 1 FROM assignments s WHERE s.image_id = i.id
                 AND s.annotator_id = (SELECT a.id FROM annotators a WHERE a.db_user = session_user))
  FROM images i WHERE i.id = ANY(ids) $$;
CREATE OR REPLACE FUNCTION labkit_annotation_facts(ids integer[])
  RETURNS TABLE (id integer, mine boolean, image_id integer) LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = {schema} AS $$
  SELECT a.id, a.annotator_id IS NOT DISTINCT FROM (SELECT m.id FROM annotators m WHERE m.db_user = session_user),
         a.image_id
  FROM annotations a WHERE a.id = ANY(ids) $$;
"""
#: What members may execute: the lookups policies and the API call.
FUNCTIONS = ("labkit_me()", "labkit_role()", "labkit_name()", "labkit_blind()", "labkit_my_images()",
             "labkit_withdrawn_images()", "labkit_image_facts(integer[])", "labkit_annotation_facts(integer[])")

_ROLE = "(SELECT labkit_role())"
_ME = "(SELECT labkit_me())"
_BLIND = "(SELECT labkit_blind())"
_VIEWER, _ANNOTATOR = f"{_ROLE} = 'viewer'", f"{_ROLE} = 'annotator'"
_MY_IMAGE = "{} IN (SELECT labkit_my_images())"
_NOT_WITHDRAWN = "{} NOT IN (SELECT labkit_withdrawn_images())"
_IMAGE_LIVE = "consent IS DISTINCT FROM 'withdrawn'"
_MY_LIVE_IMAGE = f"{_ANNOTATOR} AND {_IMAGE_LIVE} AND " + _MY_IMAGE.format("id")
_OWN_WORK = (f"{_ANNOTATOR} AND annotator_id = {_ME} AND " + _MY_IMAGE.format("image_id") + " AND "
             + _NOT_WITHDRAWN.format("image_id"))
_MY_LIVE_WORK = _MY_IMAGE.format("image_id") + " AND " + _NOT_WITHDRAWN.format("image_id")


def _actions(role: str) -> str:
    return "(" + ", ".join(f"'{a}'" for a in AUDIT_ACTIONS[role]) + ")"


_POLICIES: dict[str, list[tuple[str, str, str | None, str | None]]] = {
    # table: [(name, command, USING, WITH CHECK)]; every table also has lk_admin (admins: all)
    "annotators": [
        ("lk_viewer_read", "SELECT", _VIEWER, None),
        ("lk_annotator_read", "SELECT", f"{_ANNOTATOR} AND (id = {_ME} OR NOT {_BLIND})", None),
    ],
    "images": [
        ("lk_viewer_read", "SELECT", f"{_VIEWER} AND {_IMAGE_LIVE}", None),
        ("lk_annotator_read", "SELECT", _MY_LIVE_IMAGE, None),
        ("lk_annotator_update", "UPDATE", _MY_LIVE_IMAGE, _MY_LIVE_IMAGE),
    ],
    "assignments": [
        ("lk_viewer_read", "SELECT", _VIEWER, None),
        ("lk_annotator_read", "SELECT", f"{_ANNOTATOR} AND annotator_id = {_ME}", None),
        ("lk_annotator_update", "UPDATE", f"{_ANNOTATOR} AND annotator_id = {_ME}",
         f"{_ANNOTATOR} AND annotator_id = {_ME}"),
    ],
    "annotations": [
        ("lk_viewer_read", "SELECT", f"{_VIEWER} AND " + _NOT_WITHDRAWN.format("image_id"), None),
        ("lk_annotator_read", "SELECT", f"{_ANNOTATOR} AND " + _NOT_WITHDRAWN.format("image_id")
         + f" AND (annotator_id = {_ME} OR NOT {_BLIND})", None),
        ("lk_annotator_insert", "INSERT", None,
         _OWN_WORK + " AND source IN (" + ", ".join(f"'{s}'" for s in S.ANNOTATOR_SOURCES) + ")"),
        ("lk_annotator_update", "UPDATE", _OWN_WORK, _OWN_WORK),
    ],
    "annotation_history": [  # the history of the annotations the member may read (their policies apply)
        ("lk_member_read", "SELECT", f"{_ROLE} IN ('viewer', 'annotator') AND EXISTS "
                                     "(SELECT 1 FROM annotations a WHERE a.id = annotation_id)", None),
    ],
    "audit_log": [
        ("lk_viewer_read", "SELECT", _VIEWER, None),
        ("lk_member_insert", "INSERT", None,
         f"actor = labkit_name() AND (({_VIEWER} AND action IN {_actions('viewer')}) OR "
         f"({_ANNOTATOR} AND action IN {_actions('annotator')}))"),
    ],
    "gold": [
        ("lk_viewer_read", "SELECT", f"{_VIEWER} AND " + _NOT_WITHDRAWN.format("image_id"), None),
    ],
}

#: Columns an annotator may change (the API's edits: class, geometry, score, provenance,
#: soft delete; version and stamps are set by the database).
_ANNOTATOR_UPDATES = {
    "annotations": ("class_id", "geometry", "score", "provenance", "deleted_at", "version", "updated_at",
                    "updated_by"),
    "assignments": ("status", "done_at"),
    "images": ("attributes",),
}

#: Schema 5 (store/proposal_guards.py), created once the columns exist: annotators read and
#: review the proposals of their images, and store none. (name, command, kind, USING, WITH CHECK)
_PROPOSAL_POLICIES = [
    ("lk_annotator_read_proposals", "SELECT", "PERMISSIVE", f"{_ANNOTATOR} AND state IS NOT NULL AND {_MY_LIVE_WORK}",
     None),
    ("lk_annotator_review", "UPDATE", "PERMISSIVE", f"{_ANNOTATOR} AND state = 'proposed' AND {_MY_LIVE_WORK}",
     f"{_ANNOTATOR} AND state IN ('accepted', 'edited', 'rejected') AND {_MY_LIVE_WORK}"),
    ("lk_annotator_no_proposals", "INSERT", "RESTRICTIVE", None,
     f"{_ROLE} IS DISTINCT FROM 'annotator' OR state IS NULL"),
]
_PROPOSAL_UPDATES = ("state", "reviewed_by", "reviewed_at", "replaced_by")


def install(conn: sa.Connection) -> None:
    """Create the lookup functions and the row-level security policies (replacing earlier ones).

    Run by the tables' owner at project creation and by ``labkit migrate``.
    """
    schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    conn.exec_driver_sql(_FUNCTIONS.format(schema=_ident(schema)))
    for fn in FUNCTIONS:
        conn.exec_driver_sql(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
    for table, name in conn.exec_driver_sql(
            "SELECT tablename, policyname FROM pg_policies WHERE schemaname = current_schema()").all():
        if table in TABLES:
            conn.exec_driver_sql(f"DROP POLICY {_ident(name)} ON {_ident(table)}")
    for table, policies in _POLICIES.items():
        conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        conn.exec_driver_sql(f"CREATE POLICY lk_admin ON {table} FOR ALL USING ({_ROLE} = 'admin') "
                             f"WITH CHECK ({_ROLE} = 'admin')")
        for name, cmd, using, check in policies:
            sql = f"CREATE POLICY {name} ON {table} FOR {cmd}"
            if using:
                sql += f" USING ({using})"
            if check:
                sql += f" WITH CHECK ({check})"
            conn.exec_driver_sql(sql)
    if proposal_guards.ready(conn):
        for name, cmd, kind, using, check in _PROPOSAL_POLICIES:
            conn.exec_driver_sql(f"CREATE POLICY {name} ON annotations AS {kind} FOR {cmd}"
                                 + (f" USING ({using})" if using else "") + (f" WITH CHECK ({check})" if check else ""))
    conn.exec_driver_sql("REVOKE ALL ON ALL TABLES IN SCHEMA " + _ident(schema) + " FROM PUBLIC")


def role_exists(conn: sa.Connection, login: str) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": login}).first() is not None


def create_login(conn: sa.Connection, login: str, password: str) -> None:
    """A new login role; the password is sent as a literal (PostgreSQL hashes it with SCRAM)."""
    pw = conn.exec_driver_sql("SELECT quote_literal(%s)", (password,)).scalar()
    conn.exec_driver_sql(f"CREATE ROLE {_ident(login)} LOGIN PASSWORD {pw}")


def grant(conn: sa.Connection, login: str, role: str) -> None:
    """Give ``login`` exactly the privileges of ``role`` on this project's tables (replacing earlier ones)."""
    who = _ident(login)
    schema = _ident(conn.exec_driver_sql("SELECT current_schema()").scalar_one())
    db = _ident(conn.exec_driver_sql("SELECT current_database()").scalar_one())
    conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {db} TO {who}")
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {who}")
    revoke(conn, login)
    for fn in (*FUNCTIONS, *chain.MEMBER_FUNCTIONS, *(chain.READER_FUNCTIONS if role != "annotator" else ())):
        conn.exec_driver_sql(f"GRANT EXECUTE ON FUNCTION {fn} TO {who}")
    conn.exec_driver_sql(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {who}")
    if role == "admin":
        conn.exec_driver_sql(f"GRANT ALL PRIVILEGES ON {', '.join(TABLES)} TO {who}")
        return
    # Row-level security narrows these to the rows of the role (see _POLICIES).
    conn.exec_driver_sql(f"GRANT SELECT ON meta, classes, assignments, annotations, annotation_history TO {who}")
    conn.exec_driver_sql(f"GRANT SELECT ({_columns(S.MEMBER_COLUMNS)}) ON annotators TO {who}")
    conn.exec_driver_sql(f"GRANT INSERT ON audit_log TO {who}")
    if role == "viewer":
        conn.exec_driver_sql(f"GRANT SELECT ON images, audit_log, gold, chain TO {who}")
        return
    conn.exec_driver_sql(f"GRANT SELECT ({_columns(S.IMAGE_COLUMNS)}) ON images TO {who}")
    conn.exec_driver_sql(f"GRANT INSERT ON annotations TO {who}")
    for table, cols in _ANNOTATOR_UPDATES.items():
        if table == "annotations" and proposal_guards.ready(conn):
            cols = (*cols, *_PROPOSAL_UPDATES)
        conn.exec_driver_sql(f"GRANT UPDATE ({', '.join(cols)}) ON {table} TO {who}")


def revoke(conn: sa.Connection, login: str) -> None:
    """Take every privilege on the project's tables from ``login`` (column privileges go with them),
    and recomputing the hash chain."""
    conn.exec_driver_sql(f"REVOKE ALL PRIVILEGES ON {', '.join(TABLES)} FROM {_ident(login)}")
    for fn in chain.READER_FUNCTIONS:
        conn.exec_driver_sql(f"REVOKE ALL ON FUNCTION {fn} FROM {_ident(login)}")


def _columns(columns: tuple[sa.Column, ...]) -> str:
    return ", ".join(_ident(c.name) for c in columns)


def _ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'
