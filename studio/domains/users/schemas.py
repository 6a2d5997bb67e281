"""Request and response bodies of the users domain."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AfterValidator, Field, StrictBool, ValidationInfo
from pydantic_core import PydanticCustomError

from studio.domains.auth.passwords import MAX_LENGTH, MIN_LENGTH, password_problem
from studio.permissions import Role
from studio.validation import Email, Input, Name, Output, Patch


def _acceptable(password: str, info: ValidationInfo) -> str:
    # The fields declared before `password` (e-mail, name) are validated by now.
    problem = password_problem(password, email=info.data.get("email"), name=info.data.get("name"))
    if problem:
        raise PydanticCustomError("weak_password", problem)
    return password


# Checked for strength here; against the stored e-mail and name by the service on a change.
NewPassword = Annotated[
    str,
    Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH,
          description="Refused (with the reason) when common, predictable, or containing the "
                      "user's e-mail address or name. No composition rules."),
    AfterValidator(_acceptable),
]


class UserCreate(Input):
    email: Email
    name: Name
    role: Role
    password: NewPassword
    organizationId: uuid.UUID | None = Field(  # noqa: N815
        default=None, description="super_admin only: create the user in another organization"
    )


class UserUpdate(Patch):
    name: Name | None = None
    role: Role | None = None
    isActive: StrictBool | None = None  # noqa: N815
    password: NewPassword | None = None


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
