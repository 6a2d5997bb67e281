"""The response envelope: built once in bytes, and guaranteed on every error.

Wire form: {"success", "error", "timestamp", "requestId", "data"}. `data` comes last on
purpose: the response cache keeps only the bytes after `"data":` and splices a fresh
prefix (this request's id and time) in front when it serves a hit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from studio.errors import AppError, DatabaseUnavailable, VersionConflict
from studio.events.envelope import iso_utc

log = structlog.get_logger("studio.gateway")

JSON_HEADERS = [(b"content-type", b"application/json")]
DATA_MARKER = b',"data":'


def _now() -> str:
    return iso_utc(dt.datetime.now(dt.UTC))


def request_id_of(scope: Scope) -> str:
    request_id: str = scope.get("state", {}).get("request_id", "")
    return request_id


def envelope_prefix(request_id: str, error: dict[str, Any] | None = None) -> bytes:
    head = orjson.dumps(
        {"success": error is None, "error": error, "timestamp": _now(), "requestId": request_id}
    )
    return head[:-1] + DATA_MARKER


def envelope_bytes(request_id: str, data: Any, error: dict[str, Any] | None = None) -> bytes:
    return envelope_prefix(request_id, error) + orjson.dumps(data) + b"}"


def error_body(err: AppError, request_id: str) -> bytes:
    return envelope_bytes(
        request_id, None, {"code": err.code, "message": err.message, "details": err.details}
    )


async def send_error(scope: Scope, send: Send, err: AppError) -> None:
    """Answer with an error envelope from inside a middleware."""
    body = error_body(err, request_id_of(scope))
    headers = [
        *JSON_HEADERS,
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in err.headers.items()),
    ]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def as_app_error(exc: BaseException) -> AppError:
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, VersionConflict):
        return AppError("version_conflict", str(exc),
                        details=[{"stream": exc.stream, "expected": exc.expected, "actual": exc.actual}])
    if isinstance(exc, DatabaseUnavailable):
        return AppError("service_unavailable", "the database is unavailable", headers={"Retry-After": "5"})
    return AppError("internal_error")


def log_unexpected(exc: BaseException) -> None:
    """Log an unexpected exception once (the request id is bound in the context)."""
    if getattr(exc, "_studio_logged", False):
        return
    log.error("unhandled_error", error=repr(exc), exc_info=exc)
    with contextlib.suppress(AttributeError):  # exceptions with __slots__ cannot be marked
        setattr(exc, "_studio_logged", True)  # noqa: B010 - a mark no exception type declares


class ErrorEnvelopeMiddleware:
    """Turns any exception from the layers inside it into an envelope (never a bare 500)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            err = as_app_error(exc)
            if err.code == "internal_error":
                log_unexpected(exc)
            if started:
                # The response is out (the framework answered with our 500 envelope and
                # re-raised, or a stream broke midway) and the error is logged: re-raising
                # would only make the server print an unstructured second traceback.
                return
            await send_error(scope, send, err)
