"""Tables: evidence items and the review decisions taken on them."""

from sqlalchemy import (
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
)

from studio.db.engine import UTCDateTime, metadata

evidence = Table(
    "evidence",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("project_id", Uuid, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(255), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("control_id", String(64), nullable=True),
    Column("status", String(20), nullable=False),
    Column("quality_score", Float, nullable=True),
    Column("effective_date", Date, nullable=True),
    Column("expires_at", Date, nullable=True),
    Column("created_by", Uuid, ForeignKey("users.id"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False, default=1),
    CheckConstraint(
        "quality_score IS NULL OR (quality_score >= 0 AND quality_score <= 100)",
        name="quality_range",
    ),
    Index("ix_evidence_project_created", "project_id", "created_at", "id"),
    Index("ix_evidence_project_status", "project_id", "status"),
    # The review queue across projects: evidence of one status, by last change.
    Index("ix_evidence_org_status_updated", "organization_id", "status", "updated_at", "id"),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("evidence_id", Uuid, ForeignKey("evidence.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Uuid, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("reviewer_id", Uuid, ForeignKey("users.id"), nullable=False),
    Column("decision", String(20), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_reviews_evidence_created", "evidence_id", "created_at", "id"),
)
