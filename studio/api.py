"""What every route shares: the container, the caller, paging, If-Match, the envelope,
and the exception handlers that keep every error inside the envelope."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from studio.domains.users.repository import load_principal
from studio.errors import AppError
from studio.gateway.envelope import as_app_error, envelope_bytes, error_body, request_id_of
from studio.principal import AuthInfo, Principal

T = TypeVar("T")


def container(request: Request) -> Any:
    return request.app.state.container


def request_id(request: Request) -> str:
    return request_id_of(request.scope)


async def current_auth(request: Request) -> AuthInfo:
    """The credential the authentication middleware proved (no database work, no thread)."""
    auth = request.scope.get("state", {}).get("auth")
    if auth is None:
        raise AppError("unauthenticated")
    return auth


def principal_of(request: Request, auth: AuthInfo) -> Principal:
    """The authenticated caller with their role as stored right now."""
    with container(request).db.read() as conn:
        principal = load_principal(conn, auth)
    if principal is None:
        raise AppError("invalid_token", "the session has ended or the user is inactive")
    return principal


def current_principal(request: Request, auth: Annotated[AuthInfo, Depends(current_auth)]) -> Principal:
    return principal_of(request, auth)


# A handler on a hot path takes `CurrentAuth` and calls `principal_of` itself, in the same
# thread as its own database work: `CurrentPrincipal`, a sync dependency, costs a
# thread-pool hop of its own.
CurrentAuth = Annotated[AuthInfo, Depends(current_auth)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def run_read(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a short read: inline on SQLite, in a worker thread on PostgreSQL.

    A SQLite read of one page is a local file read of tens of microseconds (WAL readers
    never wait for writers), cheaper than the two thread switches of a pool hop; a
    PostgreSQL round trip can stall, and must not stall the event loop with it.
    """
    db = container(request).db
    if db.dialect == "sqlite":
        return fn(*args, **kwargs)
    state = request.app.state
    limiter = getattr(state, "read_limiter", None)
    if limiter is None:
        # No more reads in flight than the pool keeps connections: past that, every extra
        # thread opens an overflow connection and closes it again on return (a new
        # PostgreSQL backend per request), which cost more than waiting for a pooled one.
        limiter = state.read_limiter = anyio.CapacityLimiter(db.engine.pool.size())
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=limiter)


class Paging:
    def __init__(self, limit: int = 50, cursor: str | None = None):
        self.limit = limit
        self.cursor = cursor


# Dependencies that only parse the request are `async def`: FastAPI runs a plain `def`
# dependency (and a class used as one) in the thread pool, one hop per dependency.
async def paging(
    limit: Annotated[int, Query(ge=1, le=200, description="Items per page")] = 50,
    cursor: Annotated[str | None, Query(max_length=512, description="nextCursor of the previous page")] = None,
) -> Paging:
    return Paging(limit, cursor)


PageParams = Annotated[Paging, Depends(paging)]


async def if_match(
    if_match: Annotated[
        str | None,
        Header(description="Expected version (from `version`); a mismatch answers 409", max_length=40),
    ] = None,
) -> int | None:
    if if_match is None:
        return None
    value = if_match.strip().strip('"').removeprefix("W/").strip('"')
    if not value.isdigit():
        raise AppError("invalid_parameter", "If-Match must be the object's version number",
                       details=[{"field": "If-Match", "message": "expected an integer version"}])
    return int(value)


def ok(request: Request, data: Any, status: int = 200) -> Response:
    return Response(envelope_bytes(request_id(request), data), status_code=status,
                    media_type="application/json")


def page(request: Request, items: list[Any], next_cursor: str | None) -> Response:
    return ok(request, {"items": items, "nextCursor": next_cursor})


def no_content(request: Request) -> Response:
    return ok(request, None)


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _error_response(request: Request, err: AppError) -> Response:
    return Response(error_body(err, request_id(request)), status_code=err.status,
                    media_type="application/json", headers=err.headers or None)


async def _validation_handler(request: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        err = AppError("invalid_json", f"malformed JSON: {first.get('ctx', {}).get('error', 'invalid')}")
        return _error_response(request, err)
    details = []
    for e in errors:
        message = "unknown field" if e.get("type") == "extra_forbidden" else e.get("msg", "invalid")
        details.append({"field": _field_of(tuple(e.get("loc", ()))), "message": message,
                        "type": e.get("type")})
    outside_body = all(tuple(e.get("loc", ("",)))[:1] in (("path",), ("query",), ("header",))
                       for e in errors)
    code = "invalid_parameter" if outside_body else "validation_error"
    return _error_response(request, AppError(code, "invalid request: " + "; ".join(
        f"{d['field']}: {d['message']}" for d in details[:5]), details=details))


async def _http_handler(request: Request, exc: StarletteHTTPException) -> Response:
    if isinstance(exc, AppError):
        return _error_response(request, exc)
    code = {
        400: "validation_error", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
        405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
        415: "unsupported_media_type", 429: "rate_limited", 503: "service_unavailable",
    }.get(exc.status_code, "internal_error" if exc.status_code >= 500 else "validation_error")
    message = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    err = AppError(code, message, headers=dict(exc.headers or {}))
    err.status = exc.status_code
    return _error_response(request, err)


async def _other_handler(request: Request, exc: Exception) -> Response:
    return _error_response(request, as_app_error(exc))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_handler)  # type: ignore[arg-type]
    from studio.db import DatabaseUnavailable

    app.add_exception_handler(DatabaseUnavailable, _other_handler)
