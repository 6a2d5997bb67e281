"""evidence files (revisions of uploaded documents)

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25 13:10:00
"""

import sqlalchemy as sa
from alembic import op

import studio.db.engine

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_files",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("evidence_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("declared_type", sa.String(length=255), nullable=True),
        sa.Column("detected_type", sa.String(length=100), nullable=True),
        sa.Column("type_mismatch", sa.Boolean(), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=True),
        sa.Column("uploaded_by", sa.Uuid(), nullable=True),
        sa.Column("uploaded_at", studio.db.engine.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("word_count", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("text_truncated", sa.Boolean(), nullable=False),
        sa.Column("processed_at", studio.db.engine.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("size > 0", name=op.f("ck_evidence_files_size_positive")),
        sa.CheckConstraint("revision >= 1", name=op.f("ck_evidence_files_revision_positive")),
        sa.CheckConstraint("status IN ('pending', 'processed', 'failed')",
                           name=op.f("ck_evidence_files_status_known")),
        sa.ForeignKeyConstraint(["evidence_id"], ["evidence.id"],
                                name=op.f("fk_evidence_files_evidence_id_evidence"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_evidence_files_organization_id_organizations")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name=op.f("fk_evidence_files_project_id_projects"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["uploaded_by"], ["users.id"],
                                name=op.f("fk_evidence_files_uploaded_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_files")),
        sa.UniqueConstraint("evidence_id", "file_name", "revision", name="uq_evidence_files_revision"),
    )
    with op.batch_alter_table("evidence_files", schema=None) as batch_op:
        batch_op.create_index("ix_evidence_files_evidence_uploaded",
                              ["evidence_id", "uploaded_at", "id"], unique=False)
        batch_op.create_index("ix_evidence_files_project_sha256", ["project_id", "sha256"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("evidence_files", schema=None) as batch_op:
        batch_op.drop_index("ix_evidence_files_project_sha256")
        batch_op.drop_index("ix_evidence_files_evidence_uploaded")
    op.drop_table("evidence_files")
