"""frameworks and mappings have an owner: the shared catalog or one organization

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 10:00:00.000000

Adds `organization_id` (NULL: the shared catalog) to `frameworks` and `control_mappings`,
replaces the installation-wide unique key (frameworks.key) and pair (source, target,
relation) by one partial unique index for the shared catalog and one per organization.

Existing rows were installation-wide, so they become shared catalog entries, except:

- a framework whose first `framework.imported` event was written by an organization admin
  (a user whose role is `admin`, not `super_admin`, and not the CLI, whose actor is "cli")
  belongs to that admin's organization, unless a project of another organization is bound
  to one of its versions or a user of another organization created a mapping to one of its
  controls: then other organizations already depend on it and it stays shared, so every
  project keeps its binding and every mapping stays visible to whoever made it;
- a mapping with an end in an organization's framework belongs to that organization; a
  mapping between two shared controls created by an organization admin belongs to that
  admin's organization; the rest (the CLI's, super_admin's, derived ones) stay shared;
- a mapping between frameworks of two different organizations (only possible when
  super_admin or the CLI mapped them) would show each organization a control of the other;
  it is deleted.

No project's `framework_version_id` changes. Downgrading fails if two owners use one key.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_frameworks = sa.table("frameworks", sa.column("id", sa.Uuid), sa.column("organization_id", sa.Uuid))
_versions = sa.table("framework_versions", sa.column("id", sa.Uuid), sa.column("framework_id", sa.Uuid))
_controls = sa.table("controls", sa.column("id", sa.Uuid), sa.column("version_id", sa.Uuid))
_mappings = sa.table("control_mappings", sa.column("id", sa.Uuid), sa.column("source_id", sa.Uuid),
                     sa.column("target_id", sa.Uuid), sa.column("created_by", sa.Uuid),
                     sa.column("organization_id", sa.Uuid))
_users = sa.table("users", sa.column("id", sa.Uuid), sa.column("organization_id", sa.Uuid),
                  sa.column("role", sa.String))
_projects = sa.table("projects", sa.column("organization_id", sa.Uuid),
                     sa.column("framework_version_id", sa.Uuid))
_events = sa.table("events", sa.column("position", sa.BigInteger), sa.column("type", sa.String),
                   sa.column("stream", sa.String), sa.column("actor_id", sa.String))


def _schema_up() -> None:
    with op.batch_alter_table('frameworks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('organization_id', sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_frameworks_organization_id_organizations'), 'organizations',
                                    ['organization_id'], ['id'], ondelete='CASCADE')
        batch_op.drop_constraint(batch_op.f('uq_frameworks_key'), type_='unique')
    op.create_index('uq_frameworks_shared_key', 'frameworks', ['key'], unique=True,
                    sqlite_where=sa.text('organization_id IS NULL'),
                    postgresql_where=sa.text('organization_id IS NULL'))
    op.create_index('uq_frameworks_owner_key', 'frameworks', ['organization_id', 'key'], unique=True,
                    sqlite_where=sa.text('organization_id IS NOT NULL'),
                    postgresql_where=sa.text('organization_id IS NOT NULL'))
    with op.batch_alter_table('control_mappings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('organization_id', sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_control_mappings_organization_id_organizations'),
                                    'organizations', ['organization_id'], ['id'], ondelete='CASCADE')
        batch_op.drop_constraint('uq_control_mappings_pair', type_='unique')
    op.create_index('uq_control_mappings_shared_pair', 'control_mappings', ['source_id', 'target_id', 'relation'],
                    unique=True, sqlite_where=sa.text('organization_id IS NULL'),
                    postgresql_where=sa.text('organization_id IS NULL'))
    op.create_index('uq_control_mappings_owner_pair', 'control_mappings',
                    ['organization_id', 'source_id', 'target_id', 'relation'], unique=True,
                    sqlite_where=sa.text('organization_id IS NOT NULL'),
                    postgresql_where=sa.text('organization_id IS NOT NULL'))


def _importer_orgs(conn: sa.Connection) -> dict[uuid.UUID, uuid.UUID]:
    """framework id -> organization of the admin whose event imported it first."""
    admins = {uid: org for uid, org, role in conn.execute(sa.select(_users.c.id, _users.c.organization_id,
                                                                      _users.c.role)) if role == "admin"}
    first = (sa.select(_events.c.stream, sa.func.min(_events.c.position).label("position"))
             .where(_events.c.type == "framework.imported", _events.c.stream.like("framework:%"))
             .group_by(_events.c.stream).subquery())
    query = (sa.select(_events.c.stream, _events.c.actor_id)
             .join(first, sa.and_(first.c.stream == _events.c.stream, first.c.position == _events.c.position)))
    out: dict[uuid.UUID, uuid.UUID] = {}
    for stream, actor in conn.execute(query):
        try:
            framework_id = uuid.UUID(stream.removeprefix("framework:"))
            user_id = uuid.UUID(actor or "")
        except ValueError:  # the CLI ("cli") or a malformed stream: shared
            continue
        if user_id in admins:
            out[framework_id] = admins[user_id]
    return out


def _data_up() -> None:
    conn = op.get_bind()
    candidates = _importer_orgs(conn)
    if candidates:
        version_fw = {a: b for a, b in conn.execute(sa.select(_versions.c.id, _versions.c.framework_id))}
        control_fw = {cid: version_fw[vid] for cid, vid in conn.execute(sa.select(_controls.c.id, _controls.c.version_id))
                      if vid in version_fw}
        users = {a: b for a, b in conn.execute(sa.select(_users.c.id, _users.c.organization_id))}
        # Other organizations depending on a candidate keep it shared.
        for org, version_id in conn.execute(sa.select(_projects.c.organization_id, _projects.c.framework_version_id)
                                            .where(_projects.c.framework_version_id.is_not(None))):
            fw = version_fw.get(version_id)
            if fw in candidates and candidates[fw] != org:
                del candidates[fw]
        for source, target, creator in conn.execute(
                sa.select(_mappings.c.source_id, _mappings.c.target_id, _mappings.c.created_by)
                .where(_mappings.c.created_by.is_not(None))):
            for end in (source, target):
                fw = control_fw.get(end)
                if fw in candidates and users.get(creator) != candidates[fw]:
                    del candidates[fw]
        for fw, org in candidates.items():
            conn.execute(sa.update(_frameworks).where(_frameworks.c.id == fw).values(organization_id=org))
    owners = {a: b for a, b in conn.execute(sa.select(_frameworks.c.id, _frameworks.c.organization_id))}
    version_owner = {vid: owners.get(fw) for vid, fw in conn.execute(sa.select(_versions.c.id, _versions.c.framework_id))}
    control_owner = {cid: version_owner.get(vid)
                     for cid, vid in conn.execute(sa.select(_controls.c.id, _controls.c.version_id))}
    org_admins = {uid: org for uid, org, role in conn.execute(
        sa.select(_users.c.id, _users.c.organization_id, _users.c.role)) if role == "admin"}
    by_owner: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    doomed: list[uuid.UUID] = []
    for mid, source, target, creator in conn.execute(
            sa.select(_mappings.c.id, _mappings.c.source_id, _mappings.c.target_id, _mappings.c.created_by)):
        ends = {o for o in (control_owner.get(source), control_owner.get(target)) if o is not None}
        if len(ends) > 1:
            doomed.append(mid)
        elif ends:
            by_owner[ends.pop()].append(mid)
        elif creator in org_admins:
            by_owner[org_admins[creator]].append(mid)
    for start in range(0, len(doomed), 500):
        conn.execute(sa.delete(_mappings).where(_mappings.c.id.in_(doomed[start:start + 500])))
    for org, ids in by_owner.items():
        for start in range(0, len(ids), 500):
            conn.execute(sa.update(_mappings).where(_mappings.c.id.in_(ids[start:start + 500]))
                         .values(organization_id=org))


def upgrade() -> None:
    _schema_up()
    _data_up()


def downgrade() -> None:
    op.drop_index('uq_control_mappings_owner_pair', table_name='control_mappings')
    op.drop_index('uq_control_mappings_shared_pair', table_name='control_mappings')
    with op.batch_alter_table('control_mappings', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_control_mappings_pair', ['source_id', 'target_id', 'relation'])
        batch_op.drop_constraint(batch_op.f('fk_control_mappings_organization_id_organizations'), type_='foreignkey')
        batch_op.drop_column('organization_id')
    op.drop_index('uq_frameworks_owner_key', table_name='frameworks')
    op.drop_index('uq_frameworks_shared_key', table_name='frameworks')
    with op.batch_alter_table('frameworks', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_frameworks_key'), ['key'])
        batch_op.drop_constraint(batch_op.f('fk_frameworks_organization_id_organizations'), type_='foreignkey')
        batch_op.drop_column('organization_id')
