"""The response envelope every endpoint answers with, as OpenAPI models."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class ErrorBody(BaseModel):
    code: str = Field(description="A code from the error catalogue (docs/api.md)")
    message: str = Field(description="What went wrong, for people")
    details: Any = Field(
        default=None, description="For invalid input: one {field, message, type} per bad field"
    )


class ErrorEnvelope(BaseModel):
    """The envelope of every error response."""

    success: Literal[False]
    data: None
    error: ErrorBody
    timestamp: str = Field(description="ISO-8601 UTC, e.g. 2026-01-31T12:00:00.000000Z")
    requestId: str  # noqa: N815 - wire name fixed by the API guide


class Envelope(BaseModel, Generic[T]):
    """The response envelope of every endpoint."""

    success: bool
    data: T | None = None
    error: ErrorBody | None = None
    timestamp: str
    requestId: str  # noqa: N815 - wire name fixed by the API guide


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    nextCursor: str | None = None  # noqa: N815
