"""Request and response bodies of the auth domain."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field

from studio.domains.users.schemas import UserRead
from studio.validation import Email, Input, JsonNumber, Name, Output


class LoginRequest(Input):
    email: Email
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(Input):
    refreshToken: str = Field(min_length=1, max_length=512)  # noqa: N815


class LogoutRequest(Input):
    refreshToken: str | None = Field(default=None, max_length=512)  # noqa: N815


class TokenPair(Output):
    accessToken: str  # noqa: N815
    tokenType: str = "Bearer"  # noqa: N815
    expiresAt: str  # noqa: N815
    refreshToken: str  # noqa: N815
    refreshExpiresAt: str  # noqa: N815
    user: UserRead


class ApiTokenCreate(Input):
    name: Name
    expiresInDays: Annotated[int, Field(ge=1, le=3650), JsonNumber] | None = None  # noqa: N815


class ApiTokenRead(Output):
    id: uuid.UUID
    name: str
    prefix: str
    createdAt: str  # noqa: N815
    expiresAt: str | None = None  # noqa: N815
    lastUsedAt: str | None = None  # noqa: N815
    revokedAt: str | None = None  # noqa: N815


class ApiTokenCreated(ApiTokenRead):
    token: str = Field(description="Shown once; store it now. Send as `Authorization: Bearer`.")
