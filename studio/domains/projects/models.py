"""Tables: projects and their members (per-project role)."""

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

projects = Table(
    "projects",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("framework", String(255), nullable=False),
    # The framework version the project is assessed against; moved only by an admin.
    Column("framework_version_id", Uuid, ForeignKey("framework_versions.id"), nullable=True),
    Column("status", String(20), nullable=False),
    Column("compliance_score", Float, nullable=False, default=0.0),
    Column("created_by", Uuid, ForeignKey("users.id"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False, default=1),
    UniqueConstraint("organization_id", "name", name="uq_projects_org_name"),
    CheckConstraint("compliance_score >= 0 AND compliance_score <= 100", name="score_range"),
    Index("ix_projects_org_created", "organization_id", "created_at", "id"),
)

project_members = Table(
    "project_members",
    metadata,
    Column("project_id", Uuid, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("added_at", UTCDateTime, nullable=False),
    Index("ix_project_members_user", "user_id", "project_id"),
)
