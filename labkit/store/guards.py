"""Database-side rules: what the API refuses, the database refuses too, whoever writes.

A member may talk to the database directly (PostgreSQL: with their own login; SQLite:
anyone who can write the folder), so the rules about what a stored row may be are
repeated in the database, on both backends:

- ``annotations``: a known ``kind`` and ``source`` (CHECK constraints in
  :mod:`~labkit.store.schema`, repeated here as triggers so migrated SQLite databases
  have them too), a finite ``score``, a JSON-object ``provenance``, and a geometry of the
  canonical shape of its kind (``docs/data-model.md``), made of finite numbers and inside
  the image give or take 1 px;
- an annotation's image, annotator, kind, source and creation time never change, and
  every change raises its version by one;
- every change of an annotation writes the version it supersedes to
  ``annotation_history`` (with who made it, ``made_by``, and who superseded it,
  ``changed_by``): a trigger does it, not the client; history rows are never updated,
  and a history row can only be the version just superseded;
- ``audit_log`` is append-only: no ``DELETE``, and an ``UPDATE`` may change only
  ``details`` (erasure scrubs them).

On PostgreSQL the database also stamps who and when: ``annotations.updated_by`` and
``audit_log.actor`` are the login's member (``labkit_name()``), ``audit_log.at`` is the
server's clock, and rows non-admins insert get the server's time. An inserted row that
already holds those stamps (a bulk import's, which names its member in the setting
:data:`STAMPED`) skips the row trigger; the statement's check refuses any row whose stamps
are not the database's. Who may write what is
:mod:`labkit.store.pg_access` (grants, row-level security).

SQLite has no logins, so its triggers cannot know who acts: ``updated_by`` and
``actor`` are written by labkit, and the folder's file permissions stop whoever would
bypass it. Without trigonometry, SQLite bounds a rotated ellipse by its centre and
radii; the API and PostgreSQL check its exact extent.

On PostgreSQL the rows a statement inserts are checked together once it has stored them (a
statement-level trigger over its transition table, one join for the whole batch of a bulk
import), and so are their references: ``annotations``' image, member and class are checked
by triggers, not declared foreign keys (which check each row on its own; a third of a bulk
import's server time). They take the locks a foreign key takes (``FOR KEY SHARE`` on the
rows referred to), and deleting or renumbering an image, member or class that annotations
refer to is refused, so concurrent writers cannot leave an annotation without its image.

On PostgreSQL the geometry check (:mod:`~labkit.store.pg_geometry`) runs in two steps, for bulk imports: a fast check
(``labkit_geometry_ok``: a few operations on the whole JSON text) accepts the usual shapes
of boxes, polygons, points, masks and labels; whatever it does not accept goes to the
detailed check (``labkit_geometry_problem``), which decides and says why. The fast check
accepts nothing the detailed one refuses, so together they decide as the detailed one alone.
"""
from __future__ import annotations

import itertools

import sqlalchemy as sa

from labkit.store import pg_geometry, proposal_guards
from labkit.store import schema as S
from labkit.store.pipeline import pg_execute

__all__ = ["STAMPED", "install", "invalid_annotations", "stamp_as_acting", "uninstall"]

_TOL = 1  # pixels a coordinate may stray outside the image (normalize_geometry's tolerance)
#: PostgreSQL: the tables annotations refer to, and by which column. These references are
#: checked by triggers, set-wise (``labkit_annotations_added``, ``labkit_parent_deleted``),
#: not by declared foreign keys, which check every inserted row on its own.
_PARENTS = {"images": "image_id", "annotators": "annotator_id", "classes": "class_id"}
#: PostgreSQL setting (transaction-local) that names who the database stamps as acting, set
#: by a bulk insert so that rows already stamped so skip the row trigger (see ``lk_annotations_stamp``).
STAMPED = "labkit.stamped"


def install(conn: sa.Connection) -> None:
    """Create (or replace) the triggers of this module on ``conn``'s database."""
    if conn.dialect.name == "sqlite":
        for name, sql in _sqlite_triggers().items():
            conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS "{name}"')
            conn.exec_driver_sql(sql)
        proposal_guards.install(conn)
        return
    schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    functions = _PG_FUNCTIONS.replace("{schema}", '"' + schema.replace('"', '""') + '"')
    conn.exec_driver_sql(functions.replace("%", "%%"))  # psycopg reads % as a placeholder
    for name, (table, when, fn) in _PG_TRIGGERS.items():
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        conn.exec_driver_sql(f"CREATE TRIGGER {name} {when} ON {table} {fn}")
    # the triggers above check these references now, a statement at a time
    for (name,) in conn.exec_driver_sql(
            "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid = 'annotations'::regclass "
            "AND confrelid = ANY(%s::regclass[])", ([*_PARENTS],)).all():
        conn.exec_driver_sql(f'ALTER TABLE annotations DROP CONSTRAINT "{name}"')
    proposal_guards.install(conn)  # proposals and their review (schema 5)


def stamp_as_acting(conn: sa.Connection) -> None:
    """PostgreSQL: name, for the rest of ``conn``'s transaction, the member the database stamps
    as acting (:data:`STAMPED`), so inserted rows that already hold its stamps skip the row
    trigger. A no-op on SQLite."""
    if conn.dialect.name == "postgresql":  # not through SQLAlchemy: in a pipeline, this need not wait (bulk.pg_execute)
        pg_execute(conn, f"SELECT set_config('{STAMPED}', coalesce(labkit_name(), session_user::text), true)")


def uninstall(conn: sa.Connection) -> None:
    """Drop this module's triggers (a migration changes rows first, then installs them again)."""
    if conn.dialect.name == "sqlite":
        for (name,) in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                            "AND name LIKE 'lk\\_%' ESCAPE '\\'").all():
            conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        return
    for name, (table, _, _) in _PG_TRIGGERS.items():
        if conn.exec_driver_sql("SELECT to_regclass(%s)", (table,)).scalar() is not None:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    proposal_guards.uninstall(conn)


def invalid_annotations(conn: sa.Connection) -> list[int]:
    """Ids of stored annotations the checks of this module would refuse (rows stored before them)."""
    if conn.dialect.name == "sqlite":
        ok = " AND ".join(f"coalesce({cond}, 0)" for cond, _ in _sqlite_checks().values())
        sql = f"SELECT id FROM annotations WHERE NOT ({ok.replace('NEW.', 'annotations.')}) ORDER BY id"
    else:
        kinds = ", ".join(f"'{k}'" for k in S.KINDS)
        sources = ", ".join(f"'{s}'" for s in S.SOURCES)
        sql = ("SELECT a.id FROM annotations a JOIN images i ON i.id = a.image_id WHERE "
               f"a.kind NOT IN ({kinds}) OR NOT (a.source IN ({sources}) OR a.source LIKE 'import:_%') "
               "OR a.score = 'NaN' OR abs(a.score) > 1e308 OR json_typeof(a.provenance) IS DISTINCT FROM 'object' "
               "OR CASE WHEN labkit_geometry_ok(a.kind, a.geometry, i.width, i.height) THEN false "
               "ELSE labkit_geometry_problem(a.kind, a.geometry, i.width, i.height) IS NOT NULL END ORDER BY a.id")
        sql = sql.replace("%", "%%")  # psycopg reads % as a placeholder
    return [int(i) for i in conn.exec_driver_sql(sql).scalars()]


# ----------------------------------------------------------------------- SQLite --
def _sqlite_checks() -> dict[str, tuple[str, str]]:
    """What a stored annotation must satisfy: name -> (SQL condition on NEW, why it is refused)."""
    kinds = ", ".join(f"'{k}'" for k in S.KINDS)
    sources = ", ".join(f"'{s}'" for s in S.SOURCES)
    return {
        "kind": (f"NEW.kind IN ({kinds})", "unknown kind"),
        "source": (f"NEW.source IN ({sources}) OR NEW.source GLOB 'import:?*'", "unknown source"),
        "score": ("NEW.score IS NULL OR NEW.score BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308",
                  "the score must be a finite number"),
        "provenance": ("CASE WHEN json_valid(NEW.provenance) THEN json_type(NEW.provenance) = 'object' ELSE 0 END",
                       "provenance must be a JSON object"),
        "geometry": (_sqlite_geometry_ok(), "its geometry does not have the shape of its kind, is not made of "
                                            "finite numbers, or lies outside the image"),
    }


def _sqlite_triggers() -> dict[str, str]:
    out = {}
    for (what, (ok, why)), event in itertools.product(_sqlite_checks().items(), ("insert", "update")):
        # A soft-deleted row need not be valid: deleting is how an admin retires a bad old row.
        # coalesce: a condition that is NULL (a missing key) is a refusal, not a pass
        when = f"NOT coalesce({ok}, 0)" if event == "insert" else f"NEW.deleted_at IS NULL AND NOT coalesce({ok}, 0)"
        out[f"lk_annotations_{what}_{event}"] = (
            f"CREATE TRIGGER lk_annotations_{what}_{event} BEFORE {event.upper()} ON annotations "
            f"WHEN {when} BEGIN SELECT RAISE(ABORT, 'labkit: annotation refused: {why}'); END")
    fixed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in ("id", "image_id", "annotator_id", "kind", "source",
                                                           "created_at"))
    out["lk_annotations_fixed"] = (
        f"CREATE TRIGGER lk_annotations_fixed BEFORE UPDATE ON annotations WHEN {fixed} BEGIN SELECT "
        "RAISE(ABORT, 'labkit: an annotation''s image, annotator, kind, source and creation time never change; "
        "add a new annotation instead'); END")
    out["lk_annotations_version"] = (
        "CREATE TRIGGER lk_annotations_version BEFORE UPDATE ON annotations WHEN NEW.version IS NOT OLD.version + 1 "
        "BEGIN SELECT RAISE(ABORT, 'labkit: every change of an annotation raises its version by one'); END")
    out["lk_annotations_history"] = (
        "CREATE TRIGGER lk_annotations_history AFTER UPDATE ON annotations BEGIN "
        "INSERT INTO annotation_history (annotation_id, version, class_id, geometry, score, provenance, deleted_at, "
        "valid_from, valid_to, change, changed_by, made_by) VALUES (OLD.id, OLD.version, OLD.class_id, OLD.geometry, "
        f"OLD.score, OLD.provenance, OLD.deleted_at, OLD.updated_at, NEW.updated_at, {_CHANGE}, "
        "COALESCE(NEW.updated_by, 'unknown'), OLD.updated_by); END")
    out["lk_history_insert"] = (
        f"CREATE TRIGGER lk_history_insert BEFORE INSERT ON annotation_history WHEN NOT ({_HISTORY_IS_NEXT}) "
        "BEGIN SELECT RAISE(ABORT, 'labkit: annotation history is written by the database when an annotation "
        "changes'); END")
    out["lk_history_update"] = (
        "CREATE TRIGGER lk_history_update BEFORE UPDATE ON annotation_history BEGIN "
        "SELECT RAISE(ABORT, 'labkit: annotation history is append-only'); END")
    kept = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in ("id", "at", "actor", "action", "target", "target_id"))
    out["lk_audit_update"] = (
        f"CREATE TRIGGER lk_audit_update BEFORE UPDATE ON audit_log WHEN {kept} BEGIN "
        "SELECT RAISE(ABORT, 'labkit: the audit log is append-only (erasure may only scrub details)'); END")
    out["lk_audit_delete"] = (
        "CREATE TRIGGER lk_audit_delete BEFORE DELETE ON audit_log BEGIN "
        "SELECT RAISE(ABORT, 'labkit: the audit log is append-only'); END")
    return out


_CHANGE = ("CASE WHEN OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN 'delete' "
           "WHEN OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL THEN 'restore' ELSE 'update' END")
# A history row is the version an annotation just left behind, written once.
_HISTORY_IS_NEXT = ("EXISTS (SELECT 1 FROM annotations a WHERE a.id = NEW.annotation_id "
                    "AND a.version = NEW.version + 1) AND NOT EXISTS (SELECT 1 FROM annotation_history h "
                    "WHERE h.annotation_id = NEW.annotation_id AND h.version = NEW.version)")

# The image's size: the geometry check runs inside one lookup of the image row
# (_sqlite_geometry_ok), not a subquery per coordinate.
_W = "lk_image.width"
_H = "lk_image.height"


def _sqlite_geometry_ok() -> str:
    """One SQL condition: NEW.geometry is canonical for NEW.kind, finite and inside the image.

    CASE keeps each JSON function away from text it cannot parse (SQLite raises on
    malformed JSON rather than returning NULL).
    """
    g = "NEW.geometry"
    aliases = (f"r{i}" for i in itertools.count())

    def num(src: str, path: str) -> str:
        return f"json_type({src}, '{path}') IN ('integer', 'real')"

    def val(src: str, path: str) -> str:
        return f"json_extract({src}, '{path}')"

    def keys(src: str, n: str | int) -> str:
        return f"(SELECT count(*) FROM json_each({src})) = {n}"

    def ring(src: str, path: str, least: int) -> str:
        # One json_tree walk per ring, SQLite parsing the text once (per-pair JSON functions
        # parse every pair again: 3x slower). The ring's n elements (children of the root
        # o) are arrays, and below them are exactly n numbers under key 0 (x, inside the
        # width) and n under key 1 (y, inside the height) and nothing else: so each element
        # is one [x, y] pair.
        r, o = next(aliases), next(aliases)
        n = f"json_array_length({src}, '{path}')"
        number = f"{r}.parent > {o}.id AND {r}.type IN ('integer', 'real')"
        walk = (f"(SELECT count(*) = 1 + 3 * {n} AND total({r}.parent = {o}.id AND {r}.type = 'array') = {n} "
                f"AND total({number} AND {r}.key = 0 AND {r}.atom BETWEEN -{_TOL} AND {_W} + {_TOL}) = {n} "
                f"AND total({number} AND {r}.key = 1 AND {r}.atom BETWEEN -{_TOL} AND {_H} + {_TOL}) = {n} "
                f"FROM (SELECT id FROM json_tree({src}, '{path}') WHERE parent IS NULL) {o}, "
                f"json_tree({src}, '{path}') {r})")
        return (f"(CASE WHEN json_type({src}, '{path}') IS NOT 'array' THEN 0 "
                f"WHEN {n} < {least} THEN 0 ELSE {walk} END)")

    def part(src: str) -> str:  # {"points": ring, "holes": [ring, ...]?}
        h = next(aliases)
        holes = (f"(CASE WHEN json_type({src}, '$.holes') IS NULL THEN 1 "
                 f"WHEN json_type({src}, '$.holes') != 'array' THEN 0 "
                 f"ELSE NOT EXISTS (SELECT 1 FROM json_each({src}, '$.holes') {h} WHERE "
                 f"CASE WHEN {h}.type != 'array' THEN 1 ELSE NOT {ring(h + '.value', '$', 3)} END) END)")
        return (f"({keys(src, f'1 + (json_type({src}, {chr(39)}$.holes{chr(39)}) IS NOT NULL)')} "
                f"AND {ring(src, '$.points', 3)} AND {holes})")

    box = (f"{keys(g, 4)} AND " + " AND ".join(num(g, f"$.{k}") for k in ("x0", "y0", "x1", "y1"))
           + f" AND {val(g, '$.x0')} <= {val(g, '$.x1')} AND {val(g, '$.y0')} <= {val(g, '$.y1')}"
           f" AND {val(g, '$.x0')} >= -{_TOL} AND {val(g, '$.y0')} >= -{_TOL}"
           f" AND {val(g, '$.x1')} <= {_W} + {_TOL} AND {val(g, '$.y1')} <= {_H} + {_TOL}")
    cx, cy, rx, ry = (val(g, f"$.{k}") for k in ("cx", "cy", "rx", "ry"))
    ax, ay = f"min({cx} + {_TOL}, {_W} + {_TOL} - {cx})", f"min({cy} + {_TOL}, {_H} + {_TOL} - {cy})"
    # Sound without trigonometry: the half extents hx, hy satisfy hx^2 + hy^2 = rx^2 + ry^2
    # and min(rx, ry) <= hx, hy, and the API needs hx <= ax, hy <= ay.
    # 1e-9: the API's own rounding (cy - hy with hy ~1e-31 is cy) must never be refused here
    ellipse = (f"{keys(g, 5)} AND " + " AND ".join(num(g, f"$.{k}") for k in ("cx", "cy", "rx", "ry", "angle"))
               + f" AND {rx} >= 0 AND {ry} >= 0 AND abs({val(g, '$.angle')}) < 1.7976931348623157e308"
               f" AND {ax} >= -1e-9 AND {ay} >= -1e-9"
               f" AND {rx} * {rx} + {ry} * {ry} <= {ax} * {ax} + {ay} * {ay} + 1e-9"
               f" AND min({rx}, {ry}) <= min({ax}, {ay}) + 1e-9")
    p = next(aliases)
    polygon = (f"CASE WHEN json_type({g}, '$.parts') IS NULL THEN {part(g)} "
               f"WHEN {keys(g, 1)} AND json_type({g}, '$.parts') = 'array' AND json_array_length({g}, '$.parts') >= 1 "
               f"THEN NOT EXISTS (SELECT 1 FROM json_each({g}, '$.parts') {p} WHERE "
               f"CASE WHEN {p}.type != 'object' THEN 1 ELSE NOT {part(p + '.value')} END) ELSE 0 END")
    point = f"{keys(g, 1)} AND {ring(g, '$.points', 1)}"
    mask = (f"{keys(g, 2)} AND json_type({g}, '$.size') = 'array' AND json_array_length({g}, '$.size') = 2"
            f" AND json_type({g}, '$.size[0]') = 'integer' AND json_type({g}, '$.size[1]') = 'integer'"
            f" AND {val(g, '$.size[0]')} = {_H} AND {val(g, '$.size[1]')} = {_W}"
            f" AND json_type({g}, '$.counts') = 'text' AND {val(g, '$.counts')} NOT GLOB '*[^0-o]*'")
    return (f"CASE WHEN NEW.kind = 'label' THEN {g} IS NULL OR (json_valid({g}) AND json_type({g}) = 'null') "
            f"WHEN {g} IS NULL OR NOT json_valid({g}) THEN 0 WHEN json_type({g}) != 'object' THEN 0 "
            f"ELSE (SELECT CASE WHEN NEW.kind = 'box' THEN {box} WHEN NEW.kind = 'ellipse' THEN {ellipse} "
            f"WHEN NEW.kind = 'polygon' THEN {polygon} WHEN NEW.kind = 'point' THEN {point} "
            f"WHEN NEW.kind = 'mask' THEN {mask} ELSE 0 END FROM images lk_image WHERE lk_image.id = NEW.image_id) END")


# ------------------------------------------------------------------- PostgreSQL --
_PG_FUNCTIONS = pg_geometry.FUNCTIONS + r"""
-- Before an annotation is stored: fixed columns stay and the database stamps who and when
-- (on INSERT only where the row does not already hold those stamps: lk_annotations_stamp).
-- An updated row must be valid (checked here); inserted rows are checked together, once the
-- statement has stored them (labkit_annotations_added). SECURITY DEFINER: the image's size and
-- the class are read whatever the writer may see.
CREATE OR REPLACE FUNCTION labkit_annotations_check() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = {schema} AS $$
DECLARE w numeric; h numeric; problem text; my_role text; my_name text;
BEGIN
  -- who acts, in one lookup (labkit_role() and labkit_name() would be two queries a row)
  SELECT role, name INTO my_role, my_name FROM annotators WHERE db_user = session_user;
  IF TG_OP = 'INSERT' THEN
    NEW.version := 1;
    IF my_role IS DISTINCT FROM 'admin' THEN
      NEW.created_at := now(); NEW.updated_at := NEW.created_at; NEW.deleted_at := NULL;
    END IF;
    NEW.updated_by := coalesce(my_name, session_user::text);
    RETURN NEW;
  END IF;
  IF NEW.id IS DISTINCT FROM OLD.id OR NEW.image_id IS DISTINCT FROM OLD.image_id
     OR NEW.annotator_id IS DISTINCT FROM OLD.annotator_id OR NEW.kind IS DISTINCT FROM OLD.kind
     OR NEW.source IS DISTINCT FROM OLD.source OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
    RAISE EXCEPTION 'labkit: an annotation''s image, annotator, kind, source and creation time never change; '
      'add a new annotation instead' USING ERRCODE = 'check_violation';
  END IF;
  NEW.version := OLD.version + 1;
  NEW.updated_at := greatest(clock_timestamp(), OLD.updated_at);
  IF NEW.deleted_at IS NOT NULL THEN
    NEW.deleted_at := CASE WHEN OLD.deleted_at IS NULL THEN NEW.updated_at ELSE OLD.deleted_at END;
  END IF;
  NEW.updated_by := coalesce(my_name, session_user::text);
  IF NEW.class_id IS DISTINCT FROM OLD.class_id THEN  -- the foreign key's check (labkit_annotations_added)
    PERFORM 1 FROM classes c WHERE c.id = NEW.class_id FOR KEY SHARE OF c;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'labkit: annotation refused: it refers to class %, which does not exist', NEW.class_id
        USING ERRCODE = 'foreign_key_violation';
    END IF;
  END IF;
  IF NEW.deleted_at IS NOT NULL THEN
    RETURN NEW;  -- a soft-deleted row need not be valid: deleting is how an admin retires a bad old row
  END IF;
  IF NEW.provenance IS NULL OR json_typeof(NEW.provenance) <> 'object' THEN
    RAISE EXCEPTION 'labkit: annotation refused: provenance must be a JSON object' USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.kind IS DISTINCT FROM 'label' THEN  -- a label's check needs no image size
    SELECT width, height INTO w, h FROM images WHERE id = NEW.image_id;
  END IF;
  -- the fast path accepts the usual shapes; the detailed check decides the rest and says why
  IF labkit_geometry_ok(NEW.kind, NEW.geometry, w, h) IS NOT TRUE THEN
    problem := labkit_geometry_problem(NEW.kind, NEW.geometry, w, h);
    IF problem IS NOT NULL THEN
      RAISE EXCEPTION 'labkit: annotation refused: %', problem USING ERRCODE = 'check_violation';
    END IF;
  END IF;
  RETURN NEW;
END $$;

-- After a statement inserted annotations (transition table "added", as stamped): the checks
-- of each row, for all of them at once (a bulk import stores 20,000 rows a statement; row
-- by row, the image lookups and foreign-key checks were most of its server time).
--
-- References, as a foreign key checks them: the distinct images, members and classes named
-- are locked FOR KEY SHARE (a concurrent DELETE of one waits for this transaction, and then
-- finds its rows: labkit_parent_deleted), and then looked up again: one that a transaction
-- which committed while this one waited had deleted is gone (READ COMMITTED: each query
-- here sees what committed before it; REPEATABLE READ: the lock raises a serialization failure).
CREATE OR REPLACE FUNCTION labkit_annotations_added() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = {schema} AS $$
DECLARE v_images integer[]; v_members integer[]; v_classes integer[]; n_images integer; n_members integer;
  n_classes integer; missing record; bad record; my_role text; my_name text;
BEGIN
  -- the stamps: what labkit_annotations_check writes, whether or not the row called it (a
  -- row that names the setting's member skips it; the setting is anyone's to set)
  SELECT role, name INTO my_role, my_name FROM annotators WHERE db_user = session_user;
  IF EXISTS (SELECT 1 FROM added a WHERE a.version IS DISTINCT FROM 1
             OR a.updated_by IS DISTINCT FROM coalesce(my_name, session_user::text)
             OR (my_role IS DISTINCT FROM 'admin' AND (a.created_at IS DISTINCT FROM now()
                 OR a.updated_at IS DISTINCT FROM a.created_at OR a.deleted_at IS NOT NULL))) THEN
    RAISE EXCEPTION 'labkit: annotation refused: the database stamps a new annotation''s version, who made it '
      'and, for members other than admins, when; leave them to it' USING ERRCODE = 'check_violation';
  END IF;
  SELECT array_agg(DISTINCT a.image_id), array_agg(DISTINCT a.annotator_id), array_agg(DISTINCT a.class_id)
    INTO v_images, v_members, v_classes FROM added a;  -- one pass over the rows
  -- a row deleted before the lock is not locked (a locking read skips what a concurrent
  -- transaction deleted and committed meanwhile), so fewer rows locked than named is a missing one
  SELECT count(*) INTO n_images FROM (SELECT 1 FROM images p WHERE p.id = ANY(v_images) FOR KEY SHARE OF p) l;
  SELECT count(*) INTO n_members FROM (SELECT 1 FROM annotators p WHERE p.id = ANY(v_members) FOR KEY SHARE OF p) l;
  SELECT count(*) INTO n_classes FROM (SELECT 1 FROM classes p WHERE p.id = ANY(v_classes) FOR KEY SHARE OF p) l;
  IF n_images < cardinality(v_images) OR n_members < cardinality(v_members) OR n_classes < cardinality(v_classes) THEN
    SELECT m.what, m.id INTO missing FROM (
      SELECT 1 AS o, 'image' AS what, d.id FROM unnest(v_images) d(id)
        WHERE NOT EXISTS (SELECT 1 FROM images p WHERE p.id = d.id)
      UNION ALL SELECT 2, 'member', d.id FROM unnest(v_members) d(id)
        WHERE NOT EXISTS (SELECT 1 FROM annotators p WHERE p.id = d.id)
      UNION ALL SELECT 3, 'class', d.id FROM unnest(v_classes) d(id)
        WHERE NOT EXISTS (SELECT 1 FROM classes p WHERE p.id = d.id)) m ORDER BY m.o, m.id LIMIT 1;
    RAISE EXCEPTION 'labkit: annotation refused: it refers to % %, which does not exist',
      coalesce(missing.what, 'a row'), coalesce(missing.id::text, 'that was deleted meanwhile')
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  -- the fast path accepts the usual shapes; the detailed check decides the rest and says why
  SELECT a.id, CASE WHEN a.provenance IS NULL OR json_typeof(a.provenance) <> 'object'
                    THEN 'provenance must be a JSON object'
                    ELSE labkit_geometry_problem(a.kind, a.geometry, i.width, i.height) END AS problem
    INTO bad FROM added a  -- the images named, not all of them
    LEFT JOIN (SELECT p.id, p.width, p.height FROM images p WHERE p.id = ANY(v_images)) i ON i.id = a.image_id
    WHERE a.provenance IS NULL OR json_typeof(a.provenance) <> 'object'
       OR (labkit_geometry_ok(a.kind, a.geometry, i.width, i.height) IS NOT TRUE
           AND labkit_geometry_problem(a.kind, a.geometry, i.width, i.height) IS NOT NULL)
    ORDER BY a.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'labkit: annotation refused: %', bad.problem USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;

-- After images, members or classes were deleted (transition table "gone"), or one's id
-- changed (row trigger): none may be one that annotations refer to (TG_ARGV[0]: the
-- column of annotations that refers to the table). The foreign keys of annotations are
-- these triggers and labkit_annotations_added. A concurrent insert that refers to a deleted
-- row holds its lock until it ends, so the queries here (READ COMMITTED: each sees what
-- committed before it) find its rows; a REPEATABLE READ snapshot would not, so such
-- deletes are refused.
CREATE OR REPLACE FUNCTION labkit_parent_deleted() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = {schema} AS $$
DECLARE used integer; any_gone boolean := true;
BEGIN
  IF TG_LEVEL = 'ROW' THEN
    EXECUTE format('SELECT $1 FROM annotations a WHERE a.%I = $1 LIMIT 1', TG_ARGV[0]) INTO used USING OLD.id;
  ELSE  -- "gone" exists only here (a statement trigger's transition table)
    EXECUTE format('SELECT g.id FROM gone g WHERE EXISTS (SELECT 1 FROM annotations a WHERE a.%I = g.id) '
                   'ORDER BY g.id LIMIT 1', TG_ARGV[0]) INTO used;
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM gone)' INTO any_gone;
  END IF;
  IF used IS NOT NULL THEN
    RAISE EXCEPTION 'labkit: % row % is referred to by annotations; delete them first', TG_TABLE_NAME, used
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  IF any_gone AND current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'labkit: % rows are deleted or renumbered in READ COMMITTED transactions (the default), '
      'which see the annotations concurrent ones add', TG_TABLE_NAME USING ERRCODE = 'serialization_failure';
  END IF;
  RETURN NULL;
END $$;

-- After an annotation changed: its previous version goes to the history. SECURITY DEFINER:
-- no member's login may insert history rows itself.
CREATE OR REPLACE FUNCTION labkit_annotations_history() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = {schema} AS $$
BEGIN
  INSERT INTO annotation_history (annotation_id, version, class_id, geometry, score, provenance, deleted_at,
                                  valid_from, valid_to, change, changed_by, made_by)
  VALUES (OLD.id, OLD.version, OLD.class_id, OLD.geometry, OLD.score, OLD.provenance, OLD.deleted_at,
          OLD.updated_at, NEW.updated_at,
          CASE WHEN OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN 'delete'
               WHEN OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL THEN 'restore' ELSE 'update' END,
          NEW.updated_by, OLD.updated_by);
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION labkit_history_check() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = {schema} AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF EXISTS (SELECT 1 FROM annotations a WHERE a.id = NEW.annotation_id AND a.version = NEW.version + 1)
       AND NOT EXISTS (SELECT 1 FROM annotation_history h WHERE h.annotation_id = NEW.annotation_id
                       AND h.version = NEW.version) THEN
      RETURN NEW;
    END IF;
  END IF;
  RAISE EXCEPTION 'labkit: annotation history is append-only, written by the database when an annotation changes'
    USING ERRCODE = 'check_violation';
END $$;

-- The audit log: the database says who and when; entries are never deleted, and only
-- their details change (erasure scrubs them).
CREATE OR REPLACE FUNCTION labkit_audit_check() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = {schema} AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    NEW.actor := coalesce(labkit_name(), session_user::text);
    NEW.at := clock_timestamp();
    RETURN NEW;
  ELSIF TG_OP = 'UPDATE' THEN
    IF NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.actor = OLD.actor AND NEW.action = OLD.action
       AND NEW.target IS NOT DISTINCT FROM OLD.target AND NEW.target_id IS NOT DISTINCT FROM OLD.target_id THEN
      RETURN NEW;
    END IF;
  END IF;
  RAISE EXCEPTION 'labkit: the audit log is append-only (erasure may only scrub details)'
    USING ERRCODE = 'check_violation';
END $$;
"""

_PG_TRIGGERS = {  # name: (table, when, what)
    "lk_annotations_check": ("annotations", "BEFORE UPDATE",
                             "FOR EACH ROW EXECUTE FUNCTION labkit_annotations_check()"),
    # a row that already holds what the stamp would write (the bulk import's) skips the call;
    # labkit_annotations_added refuses any row whose stamps are not the database's
    "lk_annotations_stamp": ("annotations", "BEFORE INSERT",
                             "FOR EACH ROW WHEN (NEW.updated_by IS NULL OR NEW.version IS DISTINCT FROM 1 OR "
                             f"NEW.updated_by IS DISTINCT FROM current_setting('{STAMPED}', true)) "
                             "EXECUTE FUNCTION labkit_annotations_check()"),
    "lk_annotations_added": ("annotations", "AFTER INSERT",
                             "REFERENCING NEW TABLE AS added FOR EACH STATEMENT "
                             "EXECUTE FUNCTION labkit_annotations_added()"),
    "lk_annotations_history": ("annotations", "AFTER UPDATE",
                               "FOR EACH ROW EXECUTE FUNCTION labkit_annotations_history()"),
    "lk_history_check": ("annotation_history", "BEFORE INSERT OR UPDATE",
                         "FOR EACH ROW EXECUTE FUNCTION labkit_history_check()"),
    "lk_history_truncate": ("annotation_history", "BEFORE TRUNCATE",
                            "FOR EACH STATEMENT EXECUTE FUNCTION labkit_history_check()"),
    "lk_audit_check": ("audit_log", "BEFORE INSERT OR UPDATE OR DELETE",
                       "FOR EACH ROW EXECUTE FUNCTION labkit_audit_check()"),
    "lk_audit_truncate": ("audit_log", "BEFORE TRUNCATE", "FOR EACH STATEMENT EXECUTE FUNCTION labkit_audit_check()"),
    **{f"lk_{table}_{what}": (table, when, f"{how} EXECUTE FUNCTION labkit_parent_deleted('{column}')")
       for table, column in _PARENTS.items() for what, when, how in (
           ("deleted", "AFTER DELETE", "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT"),
           ("renumbered", "AFTER UPDATE", "FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)"))},
}
