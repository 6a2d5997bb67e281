"""an index for the review queue across projects

Revision ID: 0009_review_queue_index
Revises: 0008_event_organization
Create Date: 2026-12-05 12:00:00.000000

"Waiting for me" lists evidence in review across every project of the caller, newest or
oldest first. (organization_id, status, updated_at, id) serves it as one ordered index
walk for admins, who see the whole organization, and narrows members' pages to one
status of their organization before the membership filter; the keyset cursor continues
on (updated_at, id).

Written beside 0008_event_organization (both revised 0006); it follows 0008 so the chain
has one head. The file keeps the name it was written under.
"""

from alembic import op

revision = '0009_review_queue_index'
down_revision = '0008_event_organization'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_evidence_org_status_updated', 'evidence',
                    ['organization_id', 'status', 'updated_at', 'id'])


def downgrade() -> None:
    op.drop_index('ix_evidence_org_status_updated', table_name='evidence')
