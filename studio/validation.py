"""Boundary types every domain validates its input with: normalized names, sanitized rich text,
scores, control references, e-mail addresses, and the base input and output models."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, ClassVar

import nh3
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

# C0/C1 control characters and the bidirectional overrides that let text lie about itself.
_CONTROL_CHARS = "\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[{_CONTROL_CHARS}]")
# Characters that draw nothing: Unicode's default-ignorable code points (soft hyphen, zero-width
# space, joiners, word joiner, bidi marks, invisible operators, BOM, variation selectors,
# Hangul fillers, tags) plus the blank Braille pattern and the interlinear annotation marks.
# A name made only of these looks empty, so it is refused like an empty one.
_INVISIBLE_CHARS = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
)
# Trimmed from the ends of names, like spaces, so "\u200bAdmin" cannot pose as "Admin". At the
# end only those that modify nothing before them: a variation selector, joiner or tag there
# belongs to an emoji ("\u2764\ufe0f", flags).
_LEADING_BLANK = re.compile(f"^[\\s{_INVISIBLE_CHARS}]+")
_TRAILING_BLANK = re.compile(
    "[\\s\u00ad\u061c\u115f\u180e\u200b\u200e\u200f\u2060-\u2064\u2800\u3164\ufeff\uffa0]+$")
_CONTROL_KEEP_NEWLINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

RICH_TEXT_TAGS = {
    "p", "br", "strong", "em", "b", "i", "u", "ul", "ol", "li", "code", "pre",
    "blockquote", "a", "h3", "h4", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip


def clean_plain(value: str) -> str:
    """NFC-normalize, drop control characters, trim spaces and invisible characters: for names
    and titles."""
    text = _CONTROL.sub("", unicodedata.normalize("NFC", value))
    return _TRAILING_BLANK.sub("", _LEADING_BLANK.sub("", text))


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


# At least one character that survives clean_plain, so the OpenAPI document tells clients
# the same rule the validator applies (literal characters: every regex dialect reads them).
VISIBLE = f"[^\\s{_CONTROL_CHARS}{_INVISIBLE_CHARS}]"

# A query or path text: anything but NUL, which no identifier holds and PostgreSQL text refuses.
NO_NUL = "^[^\x00]*$"
VISIBLE_NO_NUL = f"^[^\x00]*{VISIBLE}[^\x00]*$"

Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=VISIBLE),
    AfterValidator(clean_plain),
    AfterValidator(_nonempty),
]
RichText = Annotated[str, StringConstraints(max_length=20_000), AfterValidator(clean_rich)]
Comment = Annotated[str, StringConstraints(max_length=5_000), AfterValidator(clean_rich)]
# Request bodies take numbers and booleans as JSON has them: `true` is not 1, "3" is not 3.
Score = Annotated[float, Strict(), Field(ge=0, le=100)]


def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON number")
    return value


# With `int`: a JSON Schema integer, 30 or 30.0, never true or "30" (30.5 fails as a
# fraction). Put it after any Field(ge=..., le=...), or the bounds leave the JSON schema.
JsonNumber = BeforeValidator(_json_number)
ControlRef = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._()\-]*$"),
]


def _email(value: str) -> str:
    try:
        # Syntax only, never DNS: a self-hosted installation may have no resolver, and
        # intranet (dotless) and .test domains are real addresses on private networks.
        return validate_email(value, check_deliverability=False, globally_deliverable=False,
                              test_environment=True).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid e-mail address: {exc}") from None


Email = Annotated[
    str,
    StringConstraints(min_length=3, max_length=320),
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 320}),
]


class Input(BaseModel):
    """Base of every request body: unknown fields are rejected (no mass assignment)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _patch_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    nullable: frozenset[str] = getattr(model, "nullable_fields", frozenset())
    schema["minProperties"] = 1
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf")
        if name in nullable or not options:
            continue
        kept = [o for o in options if o.get("type") != "null"]
        if len(kept) == 1:
            prop.pop("anyOf")
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept
        if prop.get("default", 0) is None:
            prop.pop("default")


class Patch(Input):
    """Base of partial updates: at least one field, and null only where it clears a value
    (the fields named in `nullable_fields`); the JSON schema says the same."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_patch_schema)
    nullable_fields: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _at_least_one_field(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if not data:
                raise ValueError("send at least one field to change")
            nulls = sorted(k for k, v in data.items() if v is None and k in cls.model_fields
                           and k not in cls.nullable_fields)
            if nulls:
                raise ValueError(f"{', '.join(nulls)} cannot be null; leave a field out to keep it")
        return data


class Output(BaseModel):
    model_config = ConfigDict(extra="forbid")
