"""events.position is SQLite's rowid

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 15:45:00.000000

On SQLite a BIGINT primary key is an index beside the table's hidden rowid B-tree; an
INTEGER primary key is the rowid itself. Rebuilding the table with `position INTEGER`
drops one B-tree from every append (the table is then stored in position order) and
changes no value: the rowid is a 64-bit signed integer like BIGINT. The rebuild copies
every event (about 7 s for 300,000 on a 2-core machine). PostgreSQL is unchanged.
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def _position_type(type_: sa.types.TypeEngine[int]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table('events', recreate='always') as batch_op:
        batch_op.alter_column('position', type_=type_, existing_nullable=False, autoincrement=False)


def upgrade() -> None:
    _position_type(sa.Integer())


def downgrade() -> None:
    _position_type(sa.BigInteger())
