"""Form errors for the pages, in the shape the error summary and the fields read: each
detail names the form field (its `name`), so the summary links to it and the message
appears beside it."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from studio.errors import AppError


def problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def invalid(problems: list[dict[str, str]], status: int = 400) -> AppError:
    code = {413: "payload_too_large", 415: "unsupported_media_type"}.get(status, "validation_error")
    return AppError(code, "please correct the problems below", details=problems)


def from_validation(exc: ValidationError, messages: dict[str, str] | None = None) -> list[dict[str, str]]:
    """One problem per field pydantic refused; `messages` says a field's problem in the
    words of the page ("Enter a title") instead of the validator's."""
    found: list[dict[str, str]] = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        field = loc[0] if loc else ""
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if field and messages and field in messages:
            message = messages[field]
        found.append(problem(field, sentence(message)))
    return found


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def detail_problems(err: AppError, default_field: str) -> list[dict[str, str]]:
    """A service's error as form problems: its details when they name fields, else its message."""
    details: Any = err.details
    if isinstance(details, list) and details and all(isinstance(d, dict) for d in details):
        return [problem(str(d.get("field") or default_field), sentence(str(d.get("message", err.message))))
                for d in details]
    return [problem(default_field, sentence(err.message))]
