"""Database-side rules of proposals and their review (schema 5), on SQLite and PostgreSQL.

A proposal is an annotation made by a model or a vendor (``annotations.state`` not NULL,
see :mod:`labkit.store.proposals`). The API's rules about them are repeated in the
database, whoever writes:

- CHECK constraints (:mod:`~labkit.store.schema`): ``state`` is NULL or one of
  ``REVIEW_STATES``; a proposal comes from a model (``sam``, ``grabcut``, ``pool``) or an
  import; ``pool`` annotations are always proposals; a reviewed proposal names who
  reviewed it and when, an unreviewed one neither; an ``edited`` one, and only it,
  names the annotation that replaced it;
- a new annotation is ordinary or ``proposed``: a review is an update;
- the state goes ``proposed`` -> ``accepted`` | ``edited`` | ``rejected``, once, and not
  on a deleted proposal; who reviewed, when and the replacement never change after;
- the reviewer is a member who may review there: an admin, or an annotator the image
  is assigned to (and whose subject has not withdrawn consent);
- an edited proposal's replacement is a live, ordinary annotation on the same image.

On PostgreSQL a non-admin login also reviews only as itself (``reviewed_by`` is its
member), the server stamps ``reviewed_at``, and an annotator changes a proposal it does
not own only by reviewing it (its state, review columns and provenance); row-level
security (:mod:`~labkit.store.pg_access`) lets annotators read and review the proposals
of their images and keeps them from storing proposals.

:func:`install` runs from :func:`labkit.store.guards.install` once the columns exist (a
migration from schema 3 or 4 adds them first, :mod:`labkit.store.migrate`).
"""
from __future__ import annotations

import sqlalchemy as sa

__all__ = ["install", "ready", "uninstall"]

_REVIEWED = "('accepted', 'edited', 'rejected')"


def ready(conn: sa.Connection) -> bool:
    """Whether the annotations table has the proposal columns (schema 5)."""
    return "state" in {c["name"] for c in sa.inspect(conn).get_columns("annotations")}


def install(conn: sa.Connection) -> None:
    """Create (or replace) the review rules on ``conn``'s database; nothing before schema 5."""
    if not ready(conn):
        return
    if conn.dialect.name == "sqlite":
        for name, sql in _sqlite_triggers().items():
            conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS "{name}"')
            conn.exec_driver_sql(sql)
        return
    schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    conn.exec_driver_sql(_PG_FUNCTION.replace("{schema}", '"' + schema.replace('"', '""') + '"')
                         .replace("%", "%%"))
    for name, sql in _PG_TRIGGERS.items():
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON annotations")
        conn.exec_driver_sql(f"CREATE TRIGGER {name} {sql}")


def uninstall(conn: sa.Connection) -> None:
    """Drop the review rules (SQLite's go with :func:`labkit.store.guards.uninstall`, all ``lk_``)."""
    if conn.dialect.name == "postgresql" and conn.exec_driver_sql(
            "SELECT to_regclass('annotations')").scalar() is not None:
        for name in _PG_TRIGGERS:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON annotations")


def _reviewer_ok(new: str = "NEW") -> str:
    """SQL: ``reviewed_by`` names an admin, or an annotator the (live) image is assigned to."""
    return (f"EXISTS (SELECT 1 FROM annotators m WHERE m.name = {new}.reviewed_by AND (m.role = 'admin' OR "
            f"(m.role = 'annotator' AND EXISTS (SELECT 1 FROM assignments s WHERE s.image_id = {new}.image_id "
            f"AND s.annotator_id = m.id) AND NOT EXISTS (SELECT 1 FROM images i WHERE i.id = {new}.image_id "
            "AND i.consent = 'withdrawn'))))")


_REPLACEMENT_OK = ("EXISTS (SELECT 1 FROM annotations r WHERE r.id = NEW.replaced_by AND r.image_id = NEW.image_id "
                   "AND r.state IS NULL AND r.deleted_at IS NULL)")

_MESSAGES = {
    "insert": "a new annotation is ordinary (state NULL) or a proposal (state proposed); a review is an update",
    "transition": "a proposal''s review goes proposed -> accepted, edited or rejected, once",
    "deleted": "a deleted proposal cannot be reviewed; restore it first",
    "frozen": "who reviewed a proposal, when, and what replaced it never change",
    "reviewer": "a proposal is reviewed by an admin, or by an annotator on an image assigned to it",
    "replacement": "an edited proposal is replaced by a live, ordinary annotation on the same image",
}


def _sqlite_triggers() -> dict[str, str]:
    changed = "NEW.state IS NOT OLD.state"
    # a transition the first rule lets through
    review = f"{changed} AND coalesce(OLD.state = 'proposed' AND NEW.state IN {_REVIEWED}, 0)"
    rules = {  # name: (event, condition that refuses, message key)
        "insert": ("INSERT", "NEW.state IS NOT NULL AND NEW.state != 'proposed'", "insert"),
        "transition": ("UPDATE", f"{changed} AND NOT coalesce(OLD.state = 'proposed' AND NEW.state IN {_REVIEWED}, 0)",
                       "transition"),
        "deleted": ("UPDATE", f"{review} AND (OLD.deleted_at IS NOT NULL OR NEW.deleted_at IS NOT NULL)", "deleted"),
        "frozen": ("UPDATE", "NEW.state IS OLD.state AND (NEW.reviewed_by IS NOT OLD.reviewed_by OR NEW.reviewed_at "
                             "IS NOT OLD.reviewed_at OR NEW.replaced_by IS NOT OLD.replaced_by)", "frozen"),
        "reviewer": ("UPDATE", f"{review} AND NOT {_reviewer_ok()}", "reviewer"),
        "replacement": ("UPDATE", f"{review} AND NEW.state = 'edited' AND NOT {_REPLACEMENT_OK}", "replacement"),
    }
    return {f"lk_proposals_{name}": (
        f"CREATE TRIGGER lk_proposals_{name} BEFORE {event} ON annotations WHEN {cond} BEGIN "
        f"SELECT RAISE(ABORT, 'labkit: annotation refused: {_MESSAGES[key]}'); END")
        for name, (event, cond, key) in rules.items()}


def _raise(key: str) -> str:
    return f"RAISE EXCEPTION 'labkit: annotation refused: {_MESSAGES[key]}' USING ERRCODE = 'check_violation';"


_PG_TRIGGERS = {  # name: the rest of its CREATE TRIGGER
    "lk_proposals_check": "BEFORE UPDATE ON annotations FOR EACH ROW EXECUTE FUNCTION labkit_proposals_check()",
    # inserted rows: checked together, once the statement stored them (bulk imports)
    "lk_proposals_added": "AFTER INSERT ON annotations REFERENCING NEW TABLE AS added FOR EACH STATEMENT "
                          "EXECUTE FUNCTION labkit_proposals_added()",
}

# After labkit_annotations_check (triggers fire by name), so updated_by and version are set.
_PG_FUNCTION = f"""
-- A statement's inserted rows ("added"): new annotations are ordinary or proposed. Its own
-- search_path: the writer's cannot change what its operators mean.
CREATE OR REPLACE FUNCTION labkit_proposals_added() RETURNS trigger LANGUAGE plpgsql
  SET search_path = {{schema}} AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM added a WHERE a.state IS NOT NULL AND a.state <> 'proposed') THEN {_raise("insert")} END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION labkit_proposals_check() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = {{schema}} AS $$
DECLARE is_member boolean; my_role text;
BEGIN
  IF NEW.state IS NULL AND OLD.state IS NULL THEN
    IF NEW.reviewed_by IS NOT NULL OR NEW.reviewed_at IS NOT NULL OR NEW.replaced_by IS NOT NULL THEN
      {_raise("frozen")}
    END IF;
    RETURN NEW;  -- an ordinary annotation
  END IF;
  is_member := labkit_me() IS NOT NULL;
  my_role := labkit_role();
  IF NEW.state IS NOT DISTINCT FROM OLD.state THEN
    IF NEW.reviewed_by IS DISTINCT FROM OLD.reviewed_by OR NEW.reviewed_at IS DISTINCT FROM OLD.reviewed_at
       OR NEW.replaced_by IS DISTINCT FROM OLD.replaced_by THEN {_raise("frozen")} END IF;
    IF is_member AND my_role = 'annotator' AND OLD.state IS NOT NULL
       AND OLD.annotator_id IS DISTINCT FROM labkit_me() THEN
      RAISE EXCEPTION 'labkit: annotators change the proposals of others only by reviewing them'
        USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
  END IF;
  IF OLD.state IS DISTINCT FROM 'proposed' OR NEW.state NOT IN {_REVIEWED} THEN {_raise("transition")} END IF;
  IF OLD.deleted_at IS NOT NULL OR NEW.deleted_at IS NOT NULL THEN {_raise("deleted")} END IF;
  IF is_member AND my_role IS DISTINCT FROM 'admin' THEN
    IF NEW.reviewed_by IS DISTINCT FROM labkit_name() THEN
      RAISE EXCEPTION 'labkit: annotation refused: members other than admins record only their own reviews'
        USING ERRCODE = 'check_violation';
    END IF;
    NEW.reviewed_at := clock_timestamp();
    IF OLD.annotator_id IS DISTINCT FROM labkit_me() AND (NEW.class_id IS DISTINCT FROM OLD.class_id
       OR NEW.geometry::text IS DISTINCT FROM OLD.geometry::text OR NEW.score IS DISTINCT FROM OLD.score) THEN
      RAISE EXCEPTION 'labkit: annotation refused: a reviewer changes a proposal''s class or geometry by '
        'editing it (a new annotation that replaces it)' USING ERRCODE = 'check_violation';
    END IF;
  END IF;
  IF NOT {_reviewer_ok()} THEN {_raise("reviewer")} END IF;
  IF NEW.state = 'edited' AND NOT {_REPLACEMENT_OK} THEN {_raise("replacement")} END IF;
  RETURN NEW;
END $$;
"""
