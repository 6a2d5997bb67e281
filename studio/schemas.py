"""Shared boundary types: normalized names, sanitized rich text, the response envelope."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Generic, TypeVar

import nh3
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

# C0/C1 control characters and the bidirectional overrides that let text lie about itself.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_KEEP_NEWLINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

RICH_TEXT_TAGS = {
    "p", "br", "strong", "em", "b", "i", "u", "ul", "ol", "li", "code", "pre",
    "blockquote", "a", "h3", "h4", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip


def clean_plain(value: str) -> str:
    """NFC-normalize, drop control characters, trim: for names and titles."""
    return _CONTROL.sub("", unicodedata.normalize("NFC", value)).strip()


def clean_rich(value: str) -> str:
    """NFC-normalize, drop control characters except newlines and tabs, sanitize HTML."""
    text = _CONTROL_KEEP_NEWLINES.sub("", unicodedata.normalize("NFC", value))
    return nh3.clean(
        text,
        tags=RICH_TEXT_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    ).strip()


def _nonempty(value: str) -> str:
    if not value:
        raise ValueError("must contain at least one visible character")
    return value


Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255),
    AfterValidator(clean_plain),
    AfterValidator(_nonempty),
]
RichText = Annotated[str, StringConstraints(max_length=20_000), AfterValidator(clean_rich)]
Comment = Annotated[str, StringConstraints(max_length=5_000), AfterValidator(clean_rich)]
Score = Annotated[float, Field(ge=0, le=100)]
ControlRef = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._()\-]*$"),
]


class Input(BaseModel):
    """Base of every request body: unknown fields are rejected (no mass assignment)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Output(BaseModel):
    model_config = ConfigDict(extra="forbid")


T = TypeVar("T")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


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
