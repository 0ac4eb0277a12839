"""The project store's tables (SQLAlchemy Core), identical on SQLite and PostgreSQL.

Bump ``SCHEMA_VERSION`` with every change and say in ``Project.open`` how to migrate.
"""
# no `from __future__ import annotations`: it binds the name `annotations`, the table below

import sqlalchemy as sa

from labkit.geometry import KINDS

SCHEMA_VERSION = 5  # 2: subjects/consent, annotators.db_user, images.consent
#                    3: gold table, annotations.updated_by, database-side checks and triggers (store/guards.py)
#                    4: the hash chain (chain, chain_salt: store/chain.py), annotation_history.made_by
#                    5: proposals: annotations.state, reviewed_by, reviewed_at, replaced_by; source 'pool'

ROLES = ("admin", "annotator", "viewer")
SOURCES = ("human", "sam", "grabcut", "consensus", "simulated", "pool")  # plus "import:<format>"
#: What an annotator's own work may be: by hand or with a tool. Consensus, imports and
#: simulated work are an admin's.
ANNOTATOR_SOURCES = ("human", "sam", "grabcut")
ASSIGNMENT_STATUS = ("pending", "done", "skipped")
CONSENT = ("given", "withdrawn", "unknown")
#: A proposal's review state (``annotations.state``; NULL: an ordinary annotation). A proposal
#: goes ``proposed`` -> ``accepted`` | ``edited`` | ``rejected``, once (store/proposal_guards.py).
REVIEW_STATES = ("proposed", "accepted", "edited", "rejected")
#: Who makes proposals: models (SAM, GrabCut, the model pool) and vendors' pre-labels ("import:<format>").
PROPOSAL_SOURCES = ("sam", "grabcut", "pool")

metadata = sa.MetaData()
_ts = sa.DateTime(timezone=True)


def one_of(column: str, values: tuple[str, ...]) -> str:
    """SQL: ``column`` is one of ``values``, written ``(c = 'a' OR c = 'b' ...)``, not ``c IN ('a', 'b')``.

    The two mean the same, NULL included. In a CHECK constraint SQLite builds a temporary
    index for an ``IN`` list every time the statement runs, that is for every row an
    ``executemany`` inserts: the four ``IN`` lists of ``annotations`` cost ~3.7 us a row,
    twice the rest of the insert. PostgreSQL reads both forms alike.
    """
    return "(" + " OR ".join(f"{column} = '{v}'" for v in values) + ")"


meta = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.JSON, nullable=True),
)

classes = sa.Table(
    "classes", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("position", sa.Integer, nullable=False),
)

annotators = sa.Table(
    "annotators", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("simulated", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", _ts, nullable=False),
    # PostgreSQL: the database login this person connects with (their own credentials).
    sa.Column("db_user", sa.String(63), nullable=True, unique=True),
    sa.CheckConstraint(one_of("role", ROLES), name="annotators_role"),
)

images = sa.Table(
    "images", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("path", sa.Text, nullable=False, unique=True),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("split", sa.String(64), nullable=True, index=True),
    sa.Column("subject", sa.String(256), nullable=True, index=True),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("added_at", _ts, nullable=False),
    # The subject's consent, copied here so every reader can filter without the subjects table.
    sa.Column("consent", sa.String(16), nullable=True, index=True),
)

# Data subjects (people shown in images): consent, purpose, dates. No other personal data.
subjects = sa.Table(
    "subjects", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subject", sa.String(256), nullable=False, unique=True),
    sa.Column("consent", sa.String(16), nullable=False),
    sa.Column("purpose", sa.Text, nullable=True),
    sa.Column("consent_at", _ts, nullable=True),
    sa.Column("withdrawn_at", _ts, nullable=True),
    sa.Column("created_at", _ts, nullable=False),
    sa.CheckConstraint(one_of("consent", CONSENT), name="subjects_consent"),
)

assignments = sa.Table(
    "assignments", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id"), nullable=False, index=True),
    sa.Column("annotator_id", sa.Integer, sa.ForeignKey("annotators.id"), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, default="pending"),
    sa.Column("assigned_at", _ts, nullable=False),
    sa.Column("done_at", _ts, nullable=True),
    sa.UniqueConstraint("image_id", "annotator_id", name="assignments_unique"),
    sa.CheckConstraint(one_of("status", ASSIGNMENT_STATUS), name="assignments_status"),
)

annotations = sa.Table(
    "annotations", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id"), nullable=False, index=True),
    sa.Column("annotator_id", sa.Integer, sa.ForeignKey("annotators.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False, index=True),
    sa.Column("class_id", sa.Integer, sa.ForeignKey("classes.id"), nullable=False),
    sa.Column("geometry", sa.JSON, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("provenance", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
    sa.Column("deleted_at", _ts, nullable=True),
    # Who made the current version: the acting member (PostgreSQL: stamped from the login).
    sa.Column("updated_by", sa.String(256), nullable=True),
    # Proposals (schema 5, labkit/store/proposals.py): NULL state is an ordinary annotation.
    sa.Column("state", sa.String(16), nullable=True),  # indexed where not NULL (ANNOTATION_INDEXES)
    sa.Column("reviewed_by", sa.String(256), nullable=True),
    sa.Column("reviewed_at", _ts, nullable=True),
    sa.Column("replaced_by", sa.Integer, sa.ForeignKey("annotations.id"), nullable=True),
    sa.CheckConstraint(one_of("kind", KINDS), name="annotations_kind"),
    sa.CheckConstraint(f"{one_of('source', SOURCES)} OR source LIKE 'import:_%'", name="annotations_source"),
    sa.CheckConstraint("score IS NULL OR (score > -1e308 AND score < 1e308)", name="annotations_score"),
    *(sa.CheckConstraint(sql, name=name, info={"since": 5}) for name, sql in (
        ("annotations_state", f"state IS NULL OR {one_of('state', REVIEW_STATES)}"),
        ("annotations_proposal_source",
         f"state IS NULL OR {one_of('source', PROPOSAL_SOURCES)} OR source LIKE 'import:_%'"),
        ("annotations_pool_proposal", "source != 'pool' OR state IS NOT NULL"),
        ("annotations_review", "(state IS NULL OR state = 'proposed') = (reviewed_by IS NULL AND reviewed_at IS NULL)"),
        ("annotations_replaced", "(state IS NOT NULL AND state = 'edited') = (replaced_by IS NOT NULL)"),
    )),
)

#: Indexes for how the Labeler, the dashboards and the report read annotations, beyond the
#: per-column ones above (image, annotator, kind): per class, an image's current (not
#: deleted) rows by annotator, and proposals by review state. The last holds only proposals
#: (``state`` is NULL on every ordinary annotation, which no query looks up by state): a
#: bulk import does not add each of its rows to it. ``ensure_indexes`` adds them to
#: projects made before.
ANNOTATION_INDEXES = (
    sa.Index("ix_annotations_class_id", annotations.c.class_id),
    sa.Index("ix_annotations_current", annotations.c.image_id, annotations.c.annotator_id,
             sqlite_where=annotations.c.deleted_at.is_(None), postgresql_where=annotations.c.deleted_at.is_(None)),
    sa.Index("ix_annotations_proposal_state", annotations.c.state,
             sqlite_where=annotations.c.state.is_not(None), postgresql_where=annotations.c.state.is_not(None)),
)
#: Indexes :data:`ANNOTATION_INDEXES` replaced (schema 5 indexed every row's ``state``).
REPLACED_INDEXES = ("ix_annotations_state",)


def ensure_indexes(conn: sa.Connection) -> None:
    """Create :data:`ANNOTATION_INDEXES` where they are missing, and drop those they replaced (idempotent)."""
    for index in ANNOTATION_INDEXES:
        index.create(conn, checkfirst=True)
    for name in REPLACED_INDEXES:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")


# One row per superseded version, written by the database (a trigger on annotations,
# store/guards.py) when an annotation changes; never updated.
annotation_history = sa.Table(
    "annotation_history", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("annotation_id", sa.Integer, sa.ForeignKey("annotations.id"), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("class_id", sa.Integer, nullable=False),
    sa.Column("geometry", sa.JSON, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("provenance", sa.JSON, nullable=False),
    sa.Column("deleted_at", _ts, nullable=True),
    sa.Column("valid_from", _ts, nullable=False),
    sa.Column("valid_to", _ts, nullable=False),
    sa.Column("change", sa.String(16), nullable=False),
    sa.Column("changed_by", sa.String(256), nullable=False),
    # Who made this version (its ``updated_by``), so a history row is the whole version (schema 4).
    sa.Column("made_by", sa.String(256), nullable=True),
)

# Append-only (store/guards.py); on PostgreSQL the database stamps ``actor`` and ``at``.
# No RETURNING on insert: annotators may add entries they cannot read.
audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", _ts, nullable=False, index=True),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(64), nullable=True),
    sa.Column("target_id", sa.Integer, nullable=True),
    sa.Column("details", sa.JSON, nullable=False),
    implicit_returning=False,
)

# Known answers of gold items (services/gold.py): admins write them, admins and viewers
# read them, annotators (who are scored against them) never see them.
gold = sa.Table(
    "gold", metadata,
    sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("class_id", sa.Integer, sa.ForeignKey("classes.id"), nullable=False),
    sa.Column("set_by", sa.String(256), nullable=False),
    sa.Column("set_at", _ts, nullable=False),
)

# The hash chain (store/chain.py): one block per write transaction, sealing the rows it
# added or changed. Its own metadata: a seal over the project's tables, not project data
# (it grows with every write, as the audit log does).
chain_metadata = sa.MetaData()
#: The tables the chain seals, in the order of a block's digests.
CHAINED = ("classes", "annotators", "images", "annotations", "annotation_history", "audit_log")
chain = sa.Table(
    "chain", chain_metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", _ts, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    # the highest id of each chained table when the block was sealed: the block holds the rows
    # above the previous block's
    *(sa.Column(f"{t}_hi", sa.Integer, nullable=False) for t in CHAINED),
    sa.Column("digests", sa.Text, nullable=False),  # "table:rows:sha256;..." in CHAINED order
    sa.Column("restated", sa.Text, nullable=True),  # erasure: earlier blocks' digests after it, JSON
    sa.Column("prev", sa.String(64), nullable=False),
    sa.Column("head", sa.String(64), nullable=False),
)
# Each block's random salt, mixed into its digests: erasure replaces it, so no digest of an
# erased row is left to test a guess against. Not append-only; not in a block's head.
chain_salt = sa.Table(
    "chain_salt", chain_metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("salt", sa.String(64), nullable=False),
)

#: The columns of ``annotators`` every member may read (not ``db_user``: logins are an admin's business).
MEMBER_COLUMNS = tuple(c for c in annotators.c if c.name != "db_user")
#: The columns of ``images`` every member may read (not ``subject``: annotators never see who is shown).
IMAGE_COLUMNS = tuple(c for c in images.c if c.name != "subject")


def not_withdrawn(consent_column: sa.ColumnElement) -> sa.ColumnElement[bool]:
    """SQL condition: the image's subject has not withdrawn consent (or it has no subject)."""
    return sa.or_(consent_column.is_(None), consent_column != "withdrawn")
