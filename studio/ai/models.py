"""Tables of the AI service: vectors, analyses, suggestions and the people's decisions on them."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from studio.db.engine import UTCDateTime, metadata

# One row per vector space (an embedder name): its generation number orders writes, so a
# process holding a cached index loads only the rows changed since it last looked.
ai_vector_spaces = Table(
    "ai_vector_spaces",
    metadata,
    Column("space", String(100), primary_key=True),
    Column("dim", Integer, nullable=False),
    Column("generation", BigInteger, nullable=False),
)

ai_vectors = Table(
    "ai_vectors",
    metadata,
    Column("space", String(100), ForeignKey("ai_vector_spaces.space", ondelete="CASCADE"),
           primary_key=True),
    Column("item_id", String(200), primary_key=True),
    Column("kind", String(20), nullable=False),  # "control" or "evidence"
    Column("scope", String(100), nullable=False),  # project id (evidence) or framework key
    Column("seq", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("vector", LargeBinary, nullable=True),  # float32, little-endian; NULL once deleted
    Index("ix_ai_vectors_space_seq", "space", "seq"),
)

# The latest analysis of each evidence item: its status, quality score and breakdown.
ai_analyses = Table(
    "ai_analyses",
    metadata,
    Column("evidence_id", Uuid, ForeignKey("evidence.id", ondelete="CASCADE"), primary_key=True),
    Column("project_id", Uuid, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(20), nullable=False),  # "analyzed" or "unavailable"
    Column("reason", Text, nullable=True),
    Column("model", String(100), nullable=False),
    Column("quality_score", Float, nullable=True),
    Column("quality_breakdown", JSON, nullable=False, default=list),
    Column("text_sha256", String(64), nullable=True),
    Column("text_chars", Integer, nullable=False, default=0),
    Column("event_id", Uuid, nullable=False),
    Column("analyzed_at", UTCDateTime, nullable=False),
    CheckConstraint("quality_score IS NULL OR (quality_score >= 0 AND quality_score <= 100)",
                    name="quality_range"),
    Index("ix_ai_analyses_project_sha", "project_id", "text_sha256"),
)

ai_suggestions = Table(
    "ai_suggestions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("evidence_id", Uuid, ForeignKey("evidence.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Uuid, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("framework", String(100), nullable=False),
    Column("control_ref", String(64), nullable=False),
    Column("control_title", String(255), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("matched", JSON, nullable=False),  # the evidence sentences that matched best
    Column("model", String(100), nullable=False),
    # open → accepted | dismissed; decisions are kept to measure the model against people.
    Column("status", String(20), nullable=False),
    Column("decided_by", Uuid, ForeignKey("users.id"), nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("evidence_id", "framework", "control_ref", name="uq_ai_suggestions_control"),
    Index("ix_ai_suggestions_evidence_rank", "evidence_id", "rank"),
)

ai_quality_overrides = Table(
    "ai_quality_overrides",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("evidence_id", Uuid, ForeignKey("evidence.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Uuid, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("computed_score", Float, nullable=True),
    Column("score", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("reviewer_id", Uuid, ForeignKey("users.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("score >= 0 AND score <= 100", name="score_range"),
    Index("ix_ai_quality_overrides_evidence", "evidence_id", "created_at"),
)

ai_mapping_suggestions = Table(
    "ai_mapping_suggestions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("source_framework", String(100), nullable=False),
    Column("source_ref", String(64), nullable=False),
    Column("target_framework", String(100), nullable=False),
    Column("target_ref", String(64), nullable=False),
    Column("relation", String(20), nullable=False),
    Column("strength", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("origin", String(20), nullable=False, default="suggested"),
    Column("model", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("decided_by", Uuid, ForeignKey("users.id"), nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("source_framework", "source_ref", "target_framework", "target_ref",
                     name="uq_ai_mapping_pair"),
    CheckConstraint("strength >= 0 AND strength <= 10", name="strength_range"),
)
