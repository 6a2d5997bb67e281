"""Table: evidence files, one row per revision."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
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

evidence_files = Table(
    "evidence_files",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("evidence_id", Uuid, ForeignKey("evidence.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Uuid, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    # A file is the sequence of revisions uploaded under one name to one evidence item.
    Column("file_name", String(255), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("storage_key", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("declared_type", String(255), nullable=True),
    Column("detected_type", String(100), nullable=True),
    Column("type_mismatch", Boolean, nullable=False, default=False),
    Column("effective_date", Date, nullable=True),
    Column("uploaded_by", Uuid, ForeignKey("users.id"), nullable=True),
    Column("uploaded_at", UTCDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("page_count", Integer, nullable=True),
    Column("word_count", Integer, nullable=True),
    Column("text", Text, nullable=True),
    Column("text_truncated", Boolean, nullable=False, default=False),
    Column("processed_at", UTCDateTime, nullable=True),
    CheckConstraint("size > 0", name="size_positive"),
    CheckConstraint("revision >= 1", name="revision_positive"),
    CheckConstraint("status IN ('pending', 'processed', 'failed')", name="status_known"),
    UniqueConstraint("evidence_id", "file_name", "revision", name="uq_evidence_files_revision"),
    Index("ix_evidence_files_evidence_uploaded", "evidence_id", "uploaded_at", "id"),
    Index("ix_evidence_files_project_sha256", "project_id", "sha256"),
)
