"""Who is calling: resolved once per request by the authentication middleware."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from studio.permissions import ORG_WIDE, Role


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    role: Role
    email: str
    name: str
    via: str  # "jwt", "api_token" or "session"
    token_id: uuid.UUID | None = None

    @property
    def org_wide(self) -> bool:
        return self.role in ORG_WIDE

    @property
    def is_super_admin(self) -> bool:
        return self.role == Role.SUPER_ADMIN

    def project_role(self, member_role: str | None) -> str | None:
        """The role that counts in a project: the member role, or the admin's own role."""
        if self.org_wide:
            return self.role.value
        return member_role

    def metadata(self) -> dict[str, str]:
        """Who acts, for the events of a write. Not the events' organization: an event belongs
        to the organization of the object it changes, which the unit of work reads from
        its stream; the actor's own is kept as `actor_organization` where it differs."""
        return {"actor": str(self.user_id), "actor_organization": str(self.organization_id)}


@dataclass(frozen=True, slots=True)
class AuthInfo:
    """What the authentication middleware proved: the credential, not yet the user's role.

    The role is read from the database by the handler on every request, so a role change
    or a deactivation takes effect on the next request rather than at token expiry.
    """

    user_id: uuid.UUID
    organization_id: uuid.UUID
    kind: str  # "jwt", "api_token" or "session"
    session_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None
