"""PostgreSQL: each person logs in as themselves, and the database enforces their role.

The project's creator owns the tables. Every other person gets a login role of their
own (``CREATE ROLE ... LOGIN PASSWORD``) mapped to their annotator row through
``annotators.db_user``, with grants by role and row-level security policies that repeat
the store API's rules, so a person who bypasses labkit and writes SQL is held to them:

- ``viewer``: ``SELECT`` on the project's tables (not ``subjects``), ``INSERT`` into the
  audit log as themselves.
- ``annotator``: as viewer, plus ``INSERT``/``UPDATE`` of annotations whose
  ``annotator_id`` is theirs on images assigned to them, history rows of their own
  annotations, their own assignments' status and the attributes of assigned images.
- ``admin``: everything (``admin`` rows pass every policy).

Policies call two ``SECURITY DEFINER`` functions, ``labkit_me()`` and
``labkit_role()``, which look the login up in ``annotators``.
"""
from __future__ import annotations

import sqlalchemy as sa

TABLES = ("meta", "classes", "annotators", "images", "assignments", "annotations",
          "annotation_history", "audit_log", "subjects")

_FUNCTIONS = """
CREATE OR REPLACE FUNCTION labkit_me() RETURNS integer LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = {schema} AS $$ SELECT id FROM annotators WHERE db_user = session_user $$;
CREATE OR REPLACE FUNCTION labkit_role() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = {schema} AS $$ SELECT role FROM annotators WHERE db_user = session_user $$;
CREATE OR REPLACE FUNCTION labkit_name() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = {schema} AS $$ SELECT name FROM annotators WHERE db_user = session_user $$;
"""

_ASSIGNED = ("EXISTS (SELECT 1 FROM assignments s WHERE s.image_id = {t}.image_id "
             "AND s.annotator_id = labkit_me())")
_NOT_WITHDRAWN = ("NOT EXISTS (SELECT 1 FROM images i WHERE i.id = {t}.image_id "
                  "AND i.consent = 'withdrawn')")

_POLICIES: dict[str, list[tuple[str, str, str | None, str | None]]] = {
    # table: [(name, command, USING, WITH CHECK)]
    "annotations": [
        ("lk_read", "SELECT", "true", None),
        ("lk_insert", "INSERT", None,
         "annotator_id = labkit_me() AND " + _ASSIGNED.format(t="annotations") + " AND "
         + _NOT_WITHDRAWN.format(t="annotations")),
        ("lk_update", "UPDATE", "annotator_id = labkit_me()",
         "annotator_id = labkit_me() AND " + _ASSIGNED.format(t="annotations")),
    ],
    "annotation_history": [
        ("lk_read", "SELECT", "true", None),
        ("lk_insert", "INSERT", None, "EXISTS (SELECT 1 FROM annotations a WHERE a.id = annotation_id "
                                      "AND a.annotator_id = labkit_me())"),
    ],
    "assignments": [
        ("lk_read", "SELECT", "true", None),
        ("lk_update", "UPDATE", "annotator_id = labkit_me()", "annotator_id = labkit_me()"),
    ],
    "images": [
        ("lk_read", "SELECT", "true", None),
        ("lk_update", "UPDATE", "EXISTS (SELECT 1 FROM assignments s WHERE s.image_id = images.id "
                                "AND s.annotator_id = labkit_me())", None),
    ],
    "audit_log": [
        ("lk_read", "SELECT", "true", None),
        ("lk_insert", "INSERT", None, "actor = labkit_name()"),
    ],
}


def install(conn: sa.Connection) -> None:
    """Create the lookup functions and row-level security policies (at project creation)."""
    schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    conn.exec_driver_sql(_FUNCTIONS.format(schema=_ident(schema)))
    for fn in ("labkit_me()", "labkit_role()", "labkit_name()"):
        conn.exec_driver_sql(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
    for table, policies in _POLICIES.items():
        conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        conn.exec_driver_sql(f"CREATE POLICY lk_admin ON {table} FOR ALL USING (labkit_role() = 'admin') "
                             "WITH CHECK (labkit_role() = 'admin')")
        for name, cmd, using, check in policies:
            sql = f"CREATE POLICY {name} ON {table} FOR {cmd}"
            if using:
                sql += f" USING ({using})"
            if check:
                sql += f" WITH CHECK ({check})"
            conn.exec_driver_sql(sql)
    conn.exec_driver_sql("REVOKE ALL ON ALL TABLES IN SCHEMA " + _ident(schema) + " FROM PUBLIC")


def role_exists(conn: sa.Connection, login: str) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": login}).first() is not None


def create_login(conn: sa.Connection, login: str, password: str) -> None:
    """A new login role; the password is sent as a literal (PostgreSQL hashes it with SCRAM)."""
    pw = conn.exec_driver_sql("SELECT quote_literal(%s)", (password,)).scalar()
    conn.exec_driver_sql(f"CREATE ROLE {_ident(login)} LOGIN PASSWORD {pw}")


def grant(conn: sa.Connection, login: str, role: str) -> None:
    """Give ``login`` exactly the privileges of ``role`` on this project's tables."""
    who = _ident(login)
    schema = _ident(conn.exec_driver_sql("SELECT current_schema()").scalar_one())
    db = _ident(conn.exec_driver_sql("SELECT current_database()").scalar_one())
    conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {db} TO {who}")
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {who}")
    revoke(conn, login)
    for fn in ("labkit_me()", "labkit_role()", "labkit_name()"):
        conn.exec_driver_sql(f"GRANT EXECUTE ON FUNCTION {fn} TO {who}")
    readable = [t for t in TABLES if t != "subjects" or role == "admin"]
    conn.exec_driver_sql(f"GRANT SELECT ON {', '.join(readable)} TO {who}")
    conn.exec_driver_sql(f"GRANT INSERT ON audit_log TO {who}")
    conn.exec_driver_sql(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {who}")
    if role == "annotator":
        conn.exec_driver_sql(f"GRANT INSERT, UPDATE ON annotations TO {who}")
        conn.exec_driver_sql(f"GRANT INSERT ON annotation_history TO {who}")
        conn.exec_driver_sql(f"GRANT UPDATE (status, done_at) ON assignments TO {who}")
        conn.exec_driver_sql(f"GRANT UPDATE (attributes) ON images TO {who}")
    elif role == "admin":
        conn.exec_driver_sql(f"GRANT ALL PRIVILEGES ON {', '.join(TABLES)} TO {who}")


def revoke(conn: sa.Connection, login: str) -> None:
    conn.exec_driver_sql(f"REVOKE ALL PRIVILEGES ON {', '.join(TABLES)} FROM {_ident(login)}")


def _ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'
