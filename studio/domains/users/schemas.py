"""Request and response bodies of the users domain."""

from __future__ import annotations

import uuid

from pydantic import Field, StrictBool

from studio.permissions import Role
from studio.validation import Email, Input, Name, Output, Patch


class UserCreate(Input):
    email: Email
    name: Name
    role: Role
    password: str = Field(min_length=12, max_length=256)
    organizationId: uuid.UUID | None = Field(  # noqa: N815
        default=None, description="super_admin only: create the user in another organization"
    )


class UserUpdate(Patch):
    name: Name | None = None
    role: Role | None = None
    isActive: StrictBool | None = None  # noqa: N815
    password: str | None = Field(default=None, min_length=12, max_length=256)


class UserRead(Output):
    id: uuid.UUID
    organizationId: uuid.UUID  # noqa: N815
    email: str
    name: str
    role: Role
    isActive: bool  # noqa: N815
    createdAt: str  # noqa: N815
    updatedAt: str  # noqa: N815
    version: int


class OrganizationRead(Output):
    id: uuid.UUID
    name: str
    createdAt: str  # noqa: N815
