"""Queries of the users domain."""

from __future__ import annotations

import uuid

from sqlalchemy import LABEL_STYLE_TABLENAME_PLUS_COL, Uuid, and_, bindparam, exists, func, select
from sqlalchemy.engine import Connection, RowMapping

from studio.compiled import DriverQuery
from studio.domains.auth.models import refresh_tokens
from studio.domains.projects.models import project_members, projects
from studio.domains.users.models import organizations, users
from studio.permissions import Role
from studio.principal import AuthInfo, Principal
from studio.repository import Repository


class OrganizationRepository(Repository):
    table = organizations
    sortable = frozenset({"created_at", "name"})

    def by_name(self, name: str) -> RowMapping | None:
        return self.conn.execute(select(organizations).where(organizations.c.name == name)).mappings().first()


class UserRepository(Repository):
    table = users
    sortable = frozenset({"created_at", "email", "name"})

    def by_email(self, email: str) -> RowMapping | None:
        query = select(users).where(func.lower(users.c.email) == email.lower())
        return self.conn.execute(query).mappings().first()

    def scope(self, principal: Principal) -> list:
        """Users visible to the caller: their organization (every one, for super_admin)."""
        if principal.is_super_admin:
            return []
        return [users.c.organization_id == principal.organization_id]


# Built once: constructing a select() costs more than running this one-row lookup.
_PRINCIPAL = select(
    users.c.id,
    users.c.organization_id,
    users.c.role,
    users.c.email,
    users.c.name,
    users.c.is_active,
).where(users.c.id == bindparam("user_id"))
_PRINCIPAL_IN_SESSION = _PRINCIPAL.add_columns(
    exists()
    .where(refresh_tokens.c.family_id == bindparam("session_id"), refresh_tokens.c.revoked_at.is_not(None))
    .label("revoked")
)



def _with_project(query):  # type: ignore[no-untyped-def]
    """`query` plus one project (whatever the caller may see of it) and the caller's
    member role in it, outer-joined so that the caller's row comes back either way."""
    project_id = bindparam("project_id", type_=Uuid())
    joined = users.outerjoin(projects, projects.c.id == project_id).outerjoin(
        project_members,
        and_(project_members.c.project_id == projects.c.id, project_members.c.user_id == users.c.id),
    )
    return (query.add_columns(projects, project_members.c.role.label("member_role"))
            .select_from(joined).set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL))


# Run on every authenticated request: compiled once, run on the driver's cursor.
_CALLER = DriverQuery(_PRINCIPAL)
_CALLER_IN_SESSION = DriverQuery(_PRINCIPAL_IN_SESSION)
_CALLER_AND_PROJECT = DriverQuery(_with_project(_PRINCIPAL))
_CALLER_IN_SESSION_AND_PROJECT = DriverQuery(_with_project(_PRINCIPAL_IN_SESSION))
_PROJECT_KEYS = tuple((f"projects_{c.name}", c.name) for c in projects.c)


def load_principal(conn: Connection, auth: AuthInfo, project_id: uuid.UUID | None = None) -> Principal | None:
    """The caller as of now: None if the user is gone, inactive or their session revoked.

    With `project_id`, the same query also loads that project and the caller's member
    role in it (Principal.project), so a project-scoped read needs no second lookup.
    """
    params: dict[str, object] = {"user_id": auth.user_id}
    if auth.session_id is not None:
        params["session_id"] = auth.session_id
    if project_id is None:
        row = (_CALLER if auth.session_id is None else _CALLER_IN_SESSION).first(conn, params)
        prefix = ""
    else:
        params["project_id"] = project_id
        query = _CALLER_AND_PROJECT if auth.session_id is None else _CALLER_IN_SESSION_AND_PROJECT
        row = query.first(conn, params)
        prefix = "users_"
    if row is None or not row[f"{prefix}is_active"] or row.get("revoked", False):
        return None
    if row[f"{prefix}organization_id"] != auth.organization_id:
        return None
    project = None
    if project_id is not None:
        found = None
        if row["projects_id"] is not None:
            found = {name: row[key] for key, name in _PROJECT_KEYS}
        project = (project_id, found, row["member_role"])
    return Principal(
        user_id=row[f"{prefix}id"],
        organization_id=row[f"{prefix}organization_id"],
        role=Role(row[f"{prefix}role"]),
        email=row[f"{prefix}email"],
        name=row[f"{prefix}name"],
        via=auth.kind,
        token_id=auth.token_id,
        project=project,
    )


def new_user_id() -> uuid.UUID:
    return uuid.uuid4()
