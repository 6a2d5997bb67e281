"""Queries of the users domain."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Uuid, bindparam, exists, func, select
from sqlalchemy.engine import Connection, RowMapping

from studio.db.repository import Repository
from studio.domains.auth.models import refresh_tokens
from studio.domains.users.models import organizations, users
from studio.permissions import Role
from studio.principal import AuthInfo, Principal


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

    def scope(self, principal: Principal) -> list[ColumnElement[bool]]:
        """Users visible to the caller: their organization (every one, for super_admin)."""
        if principal.is_super_admin:
            return []
        return [users.c.organization_id == principal.organization_id]


# Run on every authenticated request: built once, with bound parameters.
_CALLER = select(users.c.id, users.c.organization_id, users.c.role, users.c.email, users.c.name,
                 users.c.is_active).where(users.c.id == bindparam("user_id", type_=Uuid()))
_CALLER_IN_SESSION = _CALLER.add_columns(
    exists().where(refresh_tokens.c.family_id == bindparam("session_id", type_=Uuid()),
                   refresh_tokens.c.revoked_at.is_not(None)).label("revoked"))


def load_principal(conn: Connection, auth: AuthInfo) -> Principal | None:
    """The caller as of now: None if the user is gone, inactive, in another organization
    than the credential says, or their web session was revoked."""
    if auth.session_id is None:
        row = conn.execute(_CALLER, {"user_id": auth.user_id}).mappings().first()
    else:
        row = conn.execute(_CALLER_IN_SESSION, {"user_id": auth.user_id,
                                                "session_id": auth.session_id}).mappings().first()
    if row is None or not row["is_active"] or row.get("revoked", False):
        return None
    if row["organization_id"] != auth.organization_id:
        return None
    return Principal(user_id=row["id"], organization_id=row["organization_id"],
                     role=Role(row["role"]), email=row["email"], name=row["name"],
                     via=auth.kind, token_id=auth.token_id)
