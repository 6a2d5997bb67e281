"""Tables: frameworks, their versions, the control tree, catalog links and mappings.

A framework and a mapping have an owner, `organization_id`: NULL is the shared catalog
(changed only by super_admin and the operator's CLI), otherwise the one organization that
imported it, which alone sees it. Keys are unique per owner (partial unique indexes).

Controls are keyed inside a version by `ref`, the catalog's own id (OSCAL `ac-2.1`), which
stays the same from one version to the next; everything that must survive a version move
(evidence links, applicability, the score) refers to controls by ref.
"""

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from studio.db.engine import UTCDateTime, metadata

frameworks = Table(
    "frameworks",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("key", String(120), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("organization_id", Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True),
)
Index("uq_frameworks_shared_key", frameworks.c.key, unique=True,
      sqlite_where=frameworks.c.organization_id.is_(None),
      postgresql_where=frameworks.c.organization_id.is_(None))
Index("uq_frameworks_owner_key", frameworks.c.organization_id, frameworks.c.key, unique=True,
      sqlite_where=frameworks.c.organization_id.is_not(None),
      postgresql_where=frameworks.c.organization_id.is_not(None))

framework_versions = Table(
    "framework_versions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("framework_id", Uuid, ForeignKey("frameworks.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("version", String(100), nullable=False),
    Column("source_format", String(20), nullable=False),
    Column("source_digest", String(64), nullable=False),
    Column("control_count", Integer, nullable=False),
    Column("imported_by", Uuid, ForeignKey("users.id"), nullable=True),
    Column("imported_at", UTCDateTime, nullable=False),
    UniqueConstraint("framework_id", "seq", name="uq_framework_versions_seq"),
)

controls = Table(
    "controls",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("version_id", Uuid, ForeignKey("framework_versions.id", ondelete="CASCADE"), nullable=False),
    Column("ref", String(120), nullable=False),
    Column("label", String(120), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("parent_id", Uuid, nullable=True),
    Column("family", String(120), nullable=True),
    Column("title", String(500), nullable=False),
    Column("statement", Text, nullable=False, default=""),
    Column("guidance", Text, nullable=False, default=""),
    Column("objectives", Text, nullable=False, default=""),
    Column("weight", Float, nullable=False, default=1.0),
    Column("sort", Integer, nullable=False),
    Column("search_text", Text, nullable=False, default=""),
    UniqueConstraint("version_id", "ref", name="uq_controls_version_ref"),
    CheckConstraint("kind IN ('family', 'control')", name="kind"),
    CheckConstraint("weight >= 0", name="weight_positive"),
    Index("ix_controls_version_sort", "version_id", "sort"),
    Index("ix_controls_parent", "parent_id"),
    Index("ix_controls_version_label", "version_id", "label"),
)

# The catalog's own links between controls of one version (OSCAL rel="related").
control_links = Table(
    "control_links",
    metadata,
    Column("source_id", Uuid, ForeignKey("controls.id", ondelete="CASCADE"), primary_key=True),
    Column("target_id", Uuid, ForeignKey("controls.id", ondelete="CASCADE"), primary_key=True),
    Column("rel", String(40), primary_key=True),
    Index("ix_control_links_target", "target_id"),
)

control_mappings = Table(
    "control_mappings",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("source_id", Uuid, ForeignKey("controls.id", ondelete="CASCADE"), nullable=False),
    Column("target_id", Uuid, ForeignKey("controls.id", ondelete="CASCADE"), nullable=False),
    Column("relation", String(20), nullable=False),
    Column("strength", Integer, nullable=False),
    Column("origin", String(20), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("created_by", Uuid, ForeignKey("users.id"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("organization_id", Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True),
    CheckConstraint("relation IN ('equal', 'subset', 'superset', 'intersects', 'related')", name="relation"),
    CheckConstraint("strength >= 0 AND strength <= 10", name="strength"),
    CheckConstraint("origin IN ('manual', 'imported', 'suggested', 'derived')", name="origin"),
    CheckConstraint("source_id <> target_id", name="not_self"),
    Index("ix_control_mappings_target", "target_id", "source_id"),
)
Index("uq_control_mappings_shared_pair", control_mappings.c.source_id, control_mappings.c.target_id,
      control_mappings.c.relation, unique=True,
      sqlite_where=control_mappings.c.organization_id.is_(None),
      postgresql_where=control_mappings.c.organization_id.is_(None))
Index("uq_control_mappings_owner_pair", control_mappings.c.organization_id, control_mappings.c.source_id,
      control_mappings.c.target_id, control_mappings.c.relation, unique=True,
      sqlite_where=control_mappings.c.organization_id.is_not(None),
      postgresql_where=control_mappings.c.organization_id.is_not(None))
