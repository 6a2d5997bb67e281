"""The one permission table: which role may take which action.

Organization-level actions are checked against the user's role. Project-level actions
are checked against the caller's role *in that project* (project_members.role); admins
and super_admins act on every project of their organization (all organizations, for
super_admin) with their own role. Membership itself is enforced in repository queries:
a project the caller may not see does not exist for them (404).
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SUPER_ADMIN = "super_admin"
    ADMIN = "admin"
    MANAGER = "manager"
    AUDITOR = "auditor"
    CUSTOMER = "customer"
    VIEWER = "viewer"


class ProjectRole(StrEnum):
    MANAGER = "manager"
    AUDITOR = "auditor"
    CUSTOMER = "customer"
    VIEWER = "viewer"


# Roles that see every project of their organization without membership.
ORG_WIDE = frozenset({Role.SUPER_ADMIN, Role.ADMIN})

_ALL = frozenset(Role)
_ADMINS = frozenset({Role.SUPER_ADMIN, Role.ADMIN})

PERMISSIONS: dict[str, frozenset[Role]] = {
    # organization level (user's own role)
    "users.read": _ADMINS | {Role.MANAGER},
    "users.manage": _ADMINS,
    "projects.create": _ADMINS | {Role.MANAGER},
    "tokens.manage_own": _ALL,
    "events.read": _ADMINS,
    "frameworks.read": _ALL,
    "frameworks.manage": _ADMINS,
    # project level (role in the project)
    "project.read": _ALL,
    "project.update": _ADMINS | {Role.MANAGER},
    "project.delete": _ADMINS,
    "project.members.read": _ADMINS | {Role.MANAGER, Role.AUDITOR},
    "project.members.manage": _ADMINS | {Role.MANAGER},
    "evidence.read": _ALL,
    "evidence.create": _ADMINS | {Role.MANAGER, Role.CUSTOMER},
    "evidence.update": _ADMINS | {Role.MANAGER},
    "evidence.update_own": _ADMINS | {Role.MANAGER, Role.CUSTOMER},
    "evidence.delete": _ADMINS | {Role.MANAGER},
    "evidence.delete_own": _ADMINS | {Role.MANAGER, Role.CUSTOMER},
    "evidence.submit": _ADMINS | {Role.MANAGER, Role.CUSTOMER},
    "evidence.review": _ADMINS | {Role.MANAGER, Role.AUDITOR},
    "project.controls.manage": _ADMINS | {Role.MANAGER},
    "project.framework.move": _ADMINS,
}


def allowed(role: str, action: str) -> bool:
    """Whether `role` may take `action`; unknown actions are denied."""
    roles = PERMISSIONS.get(action)
    return roles is not None and role in roles
