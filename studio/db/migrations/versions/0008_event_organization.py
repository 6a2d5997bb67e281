"""events are filed under the organization of the object they change

Revision ID: 0008_event_organization
Revises: 0007
Create Date: 2026-11-27 10:00:00.000000

Until now an event's organization was the actor's (`metadata.organization`, copied into
`events.organization_id`): a super_admin's change in organization A was filed under the
super_admin's own organization, so A's trail had a gap and the other trail showed A's
data; follow-up events of consumers (evidence.processed, evidence.analyzed) had no
organization at all and were in no organization's trail.

From now on a stream belongs to one organization, the owner of the object it is about,
fixed by its first event, and every event of the stream is filed under it. This
migration:

1. adds `event_streams.organization_id` and fills it for every existing stream from the
   object the stream names: `project:<id>` from the project (or, for a deleted project,
   the `organizationId` its own `project.created` event carries), `user:<id>` likewise
   from the user or its `user.created` event, `org:<id>` is that organization. Every other
   stream (the shared framework catalog, mappings, sign-in failures of unknown users)
   belongs to no organization: only a super_admin reads it.
2. sets `events.organization_id` of EVERY event to its stream's organization, the
   events filed wrongly included, and adds the index `(organization_id, position)` the
   trail of an organization is read by.

It does NOT touch `metadata`. The metadata is part of the hashed canonical form: rewriting
`metadata.organization` of an old event would break its stream's hash chain from that
event on, which is exactly what tamper evidence must report. So an event written before
this migration keeps, in its metadata, the organization of whoever acted (and a
follow-up event none); the `organization_id` column is what decides which trail shows it,
and `studio audit verify` now checks that column against the stream's organization. The
chains verify before and after. Downgrade drops the index and the stream column and leaves
the corrected `events.organization_id` values in place (the code before 0008 reads them
the same way).

It also records, in `event_follow_up_ids`, the id each follow-up event already stored (an
event a consumer emitted, with `causation_id` and actor `consumer:<name>` in its metadata)
would have been given by `follow_up_id` (the n-th event of a type a consumer emitted for a
cause, in position order), since those were stored with random ids: the first replay after
the upgrade recognises them as second copies too, instead of appending each once more.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from studio.events.envelope import follow_up_id

revision = '0008_event_organization'
down_revision = '0007'
branch_labels = None
depends_on = None

_events = sa.table('events', sa.column('position', sa.BigInteger), sa.column('type', sa.String),
                   sa.column('stream', sa.String), sa.column('data', sa.Text),
                   sa.column('metadata', sa.Text))
_streams = sa.table('event_streams', sa.column('stream', sa.String),
                    sa.column('organization_id', sa.String))
_projects = sa.table('projects', sa.column('id', sa.Uuid), sa.column('organization_id', sa.Uuid))
_users = sa.table('users', sa.column('id', sa.Uuid), sa.column('organization_id', sa.Uuid))


def _owners(conn: sa.Connection) -> dict[str, str]:
    """stream -> organization, for every stream that belongs to one."""
    owners: dict[str, str] = {}
    # The objects' creation events first, then the objects that still exist (which win).
    created = sa.select(_events.c.stream, _events.c.data).where(
        _events.c.type.in_(('project.created', 'user.created')))
    for stream, data in conn.execute(created):
        organization = orjson.loads(data).get('organizationId')
        if isinstance(organization, str):
            owners[stream] = _normal(organization)
    for kind, table in (('project', _projects), ('user', _users)):
        for object_id, organization in conn.execute(sa.select(table.c.id, table.c.organization_id)):
            owners[f'{kind}:{object_id}'] = str(organization)
    return owners


def _normal(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


def _organization_of(stream: str, owners: dict[str, str]) -> str | None:
    if stream.startswith('org:'):
        return _normal(stream.removeprefix('org:'))
    return owners.get(stream)


def _follow_ups(conn: sa.Connection) -> list[dict[str, Any]]:
    """The derived id of every follow-up event stored so far."""
    query = (sa.select(_events.c.position, _events.c.type, _events.c.metadata)
             .where(_events.c.metadata.like('%"causation_id"%'),
                    _events.c.metadata.like('%"actor":"consumer:%'))
             .order_by(_events.c.position))
    seen: dict[tuple[str, str, str], int] = {}
    rows: list[dict[str, Any]] = []
    for position, type_, metadata in conn.execute(query):
        meta = orjson.loads(metadata)
        actor, cause = meta.get('actor'), meta.get('causation_id')
        if not (isinstance(actor, str) and actor.startswith('consumer:') and isinstance(cause, str)):
            continue
        try:
            cause_id = uuid.UUID(cause)
        except ValueError:
            continue
        consumer = actor.removeprefix('consumer:')
        ordinal = seen.get((cause, consumer, type_), 0)
        seen[(cause, consumer, type_)] = ordinal + 1
        rows.append({'id': follow_up_id(cause_id, consumer, type_, ordinal), 'position': position})
    return rows


def upgrade() -> None:
    op.add_column('event_streams', sa.Column('organization_id', sa.String(length=64), nullable=True))
    conn = op.get_bind()
    owners = _owners(conn)
    rows: list[dict[str, Any]] = []
    for (stream,) in conn.execute(sa.select(_streams.c.stream)):
        organization = _organization_of(stream, owners)
        if organization is not None:
            rows.append({'s': stream, 'o': organization})
    if rows:
        conn.execute(
            _streams.update().where(_streams.c.stream == sa.bindparam('s'))
            .values(organization_id=sa.bindparam('o')), rows)
    # One statement for all events, whatever the number of streams.
    differs = 'IS DISTINCT FROM' if conn.dialect.name == 'postgresql' else 'IS NOT'
    stream_org = ('(SELECT s.organization_id FROM event_streams s '
                  'WHERE s.stream = events.stream)')
    conn.exec_driver_sql(f'UPDATE events SET organization_id = {stream_org} '
                         f'WHERE organization_id {differs} {stream_org}')
    # Not in batch mode: on SQLite that could rebuild the events table.
    op.create_index('ix_events_organization_position', 'events', ['organization_id', 'position'])

    follow_ups = op.create_table(
        'event_follow_up_ids',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('position', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_event_follow_up_ids')),
    )
    derived = _follow_ups(conn)
    if derived:
        conn.execute(sa.insert(follow_ups), derived)


def downgrade() -> None:
    op.drop_table('event_follow_up_ids')
    op.drop_index('ix_events_organization_position', 'events')
    with op.batch_alter_table('event_streams') as batch_op:
        batch_op.drop_column('organization_id')
