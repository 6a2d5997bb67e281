"""Every error the API can answer with: one catalogue, one exception type."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException

# code -> (HTTP status, what it means). docs/api.md lists every code (tests/test_api_docs.py).
ERROR_CATALOGUE: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "The request body is not valid JSON."),
    "validation_error": (400, "One or more fields are invalid; details name each field."),
    "invalid_parameter": (400, "A path or query parameter is invalid (for example not a UUID)."),
    "invalid_cursor": (400, "The pagination cursor is malformed or belongs to another listing."),
    "unauthenticated": (401, "No credentials were sent."),
    "invalid_credentials": (401, "The e-mail address or password is wrong."),
    "invalid_token": (401, "The token is malformed, forged, revoked or for another audience."),
    "token_expired": (401, "The access token has expired; refresh it."),
    "refresh_token_reused": (
        401,
        "A refresh token was presented twice; its whole family has been revoked.",
    ),
    "csrf_failed": (403, "The CSRF token of a cookie session is missing or wrong."),
    "forbidden": (403, "Your role does not allow this action."),
    "not_found": (404, "No such object, or it is in a project you may not see."),
    "method_not_allowed": (405, "The path exists but not with this HTTP method."),
    "conflict": (409, "The object's state does not allow this action now."),
    "version_conflict": (409, "The object changed since you read it (If-Match / version)."),
    "duplicate": (409, "An object with the same unique value already exists."),
    "payload_too_large": (413, "The request body exceeds the configured limit."),
    "unsupported_media_type": (415, "The request body's content type is not accepted."),
    "range_not_satisfiable": (416, "The requested byte range lies outside the file."),
    "rate_limited": (429, "Too many requests; wait for Retry-After seconds."),
    "internal_error": (500, "An unexpected error; the request id identifies it in the logs."),
    "service_unavailable": (503, "A dependency (the database) is unavailable; retry later."),
}


class AppError(HTTPException):
    """An error with a catalogue code; rendered as the envelope's `error` object.

    It is an HTTPException so that frameworks pass it through unchanged (FastAPI turns
    other exceptions raised while reading a body into a generic 400).
    """

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ):
        status, default_message = ERROR_CATALOGUE[code]
        super().__init__(status, message or default_message, headers)
        self.code = code
        self.status = status
        self.message = message or default_message
        self.details = details
        self.headers: dict[str, str] = headers or {}


def not_found(what: str = "object") -> AppError:
    return AppError("not_found", f"{what} not found")


def forbidden(action: str) -> AppError:
    return AppError("forbidden", f"your role does not allow {action!r}")



class DatabaseUnavailable(Exception):
    """The database cannot be reached; the API answers 503."""


class VersionConflict(Exception):
    """A stream moved past the version its writer expected (optimistic concurrency)."""

    def __init__(self, stream: str, expected: int, actual: int):
        super().__init__(f"stream {stream!r} is at version {actual}, expected {expected}")
        self.stream = stream
        self.expected = expected
        self.actual = actual
