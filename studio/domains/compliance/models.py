"""Tables: evidence-to-control links, per-project applicability, and the score projection.

`evidence_controls` and `project_controls` are the source of truth written by services.
The `compliance_*` tables belong to the score projection: only its consumer writes them,
and `reset` may empty them before a replay.
"""

from sqlalchemy import (
    Boolean,
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

evidence_controls = Table(
    "evidence_controls",
    metadata,
    Column("evidence_id", Uuid, ForeignKey("evidence.id", ondelete="CASCADE"), primary_key=True),
    Column("control_ref", String(120), primary_key=True),
    Column("project_id", Uuid, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_evidence_controls_project_ref", "project_id", "control_ref"),
)

project_controls = Table(
    "project_controls",
    metadata,
    Column("project_id", Uuid, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("control_ref", String(120), primary_key=True),
    Column("applicable", Boolean, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("updated_by", Uuid, ForeignKey("users.id"), nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

# -- the score projection (no foreign keys: a replay may run before source rows exist) --
compliance_projects = Table(
    "compliance_projects",
    metadata,
    Column("project_id", Uuid, primary_key=True),
    Column("framework_version_id", Uuid, nullable=True),
    Column("position", Integer, nullable=False, default=0),
    # The score as of the last event, and the last day it stays true without another event
    # (the earliest expiry among covering evidence); NULL means true until the next event.
    Column("score", Float, nullable=True),
    Column("scored_on", Date, nullable=True),
    Column("valid_until", Date, nullable=True),
    Column("summary", Text, nullable=True),
)

compliance_evidence = Table(
    "compliance_evidence",
    metadata,
    Column("evidence_id", Uuid, primary_key=True),
    Column("control_ref", String(120), primary_key=True),
    Column("project_id", Uuid, nullable=False),
    Column("approved", Boolean, nullable=False),
    Column("expires_at", Date, nullable=True),
    Index("ix_compliance_evidence_project_ref", "project_id", "control_ref"),
)

compliance_controls = Table(
    "compliance_controls",
    metadata,
    Column("project_id", Uuid, primary_key=True),
    Column("control_ref", String(120), primary_key=True),
    Column("approved", Integer, nullable=False),
    Column("open_ended", Integer, nullable=False),
    Column("max_expiry", Date, nullable=True),
)

compliance_not_applicable = Table(
    "compliance_not_applicable",
    metadata,
    Column("project_id", Uuid, primary_key=True),
    Column("control_ref", String(120), primary_key=True),
    Column("reason", Text, nullable=False, default=""),
)
