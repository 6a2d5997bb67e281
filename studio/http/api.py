"""What every route shares: the container, the caller, paging, If-Match, the envelope,
and the exception handlers that keep every error inside the envelope."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator, WithJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from studio.errors import AppError
from studio.gateway.cache import NO_STORE
from studio.gateway.envelope import (
    as_app_error,
    envelope_bytes,
    error_body,
    log_unexpected,
    request_id_of,
)
from studio.http.methods import MethodGuard, MethodTable, allow_header, route_path
from studio.principal import AuthInfo, Principal
from studio.validation import VISIBLE

if TYPE_CHECKING:
    from studio.bootstrap import Container


def container(request: Request) -> Container:
    c: Container = request.app.state.container  # Starlette's State holds untyped attributes
    return c


def request_id(request: Request) -> str:
    return request_id_of(request.scope)


def current_principal(request: Request) -> Principal:
    """The caller the authentication middleware proved, with their role as stored now, so
    a role change or a deactivation counts from the next request on (401 otherwise)."""
    auth: AuthInfo | None = request.scope.get("state", {}).get("auth")
    if auth is None:
        raise AppError("unauthenticated")
    principal = container(request).auth.principal(auth)
    if principal is None:
        raise AppError("invalid_token", "the session has ended or the user is inactive")
    if principal.is_super_admin:
        # A super_admin reads across organizations, but cache entries are invalidated per
        # organization: never keep theirs, or a write elsewhere would leave them stale.
        request.scope.setdefault("state", {})[NO_STORE] = True
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


class Paging:
    def __init__(self, limit: int = 50, cursor: str | None = None):
        self.limit = limit
        self.cursor = cursor


# What each kind of listing's cursor looks like, so the OpenAPI document says which strings
# can be cursors at all. A keyset cursor (base64url, unpadded) also names its listing's
# ordering, which no schema can check against `sort` and `order`: only a nextCursor the
# server issued for the same ordering is valid. A cursor naming a row (a UUID) or a position
# (digits, within the range of the column it is compared with) is valid whatever its value.
KEYSET_CURSOR = r"^[A-Za-z0-9_-]+$"
UUID_CURSOR = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
POSITION_CURSOR = r"^[0-9]{1,18}$"  # an event's position: a 64-bit integer
ORDINAL_CURSOR = r"^[0-9]{1,9}$"  # a control's place in its catalog: a 32-bit integer
_LIMIT = Query(ge=1, le=200, description="Items per page")


async def paging(
    limit: Annotated[int, _LIMIT] = 50,
    cursor: Annotated[str | None, Query(
        min_length=1, max_length=2048, pattern=KEYSET_CURSOR,
        description="nextCursor of the previous page, for the same sort and order",
    )] = None,
) -> Paging:
    return Paging(limit, cursor)


async def uuid_paging(
    limit: Annotated[int, _LIMIT] = 50,
    cursor: Annotated[str | None, Query(
        pattern=UUID_CURSOR, description="nextCursor of the previous page: the last item's id",
        json_schema_extra={"format": "uuid"},
    )] = None,
) -> Paging:
    return Paging(limit, cursor)


async def position_paging(
    limit: Annotated[int, _LIMIT] = 50,
    cursor: Annotated[str | None, Query(
        pattern=ORDINAL_CURSOR,
        description="nextCursor of the previous page: the last item's position",
    )] = None,
) -> Paging:
    return Paging(limit, cursor)


PageParams = Annotated[Paging, Depends(paging)]
UuidPageParams = Annotated[Paging, Depends(uuid_paging)]
PositionPageParams = Annotated[Paging, Depends(position_paging)]


# -- dates and timestamps in query parameters ------------------------------------------
# Exactly what the OpenAPI formats `date` and `date-time` (RFC 3339) allow; pydantic alone
# would also take numbers as Unix times (`until=0.5`) and timestamps without a time zone.
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_UTC_MIN = dt.datetime.min.replace(tzinfo=dt.UTC)
_UTC_MAX = dt.datetime.max.replace(tzinfo=dt.UTC)
# A year 0000 is a valid RFC 3339 date, but no date Python or the database holds.
_NOT_YEAR_ZERO = "^(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-"


DATE_SCHEMA: dict[str, Any] = {"type": "string", "format": "date", "pattern": _NOT_YEAR_ZERO}


def strict_date(value: str) -> dt.date:
    """Exactly what DATE_SCHEMA allows, or ValueError."""
    if _DATE.fullmatch(value) is None:
        raise ValueError("expected a date as YYYY-MM-DD")
    return dt.date.fromisoformat(value)  # ValueError for a month 13 or a 30 February


def _date(value: Any) -> Any:
    return strict_date(value) if isinstance(value, str) else value


def _date_time(value: Any) -> Any:
    """RFC 3339 date-time with a time zone, in UTC. A filter bound before the year 1 or after
    9999 (possible with an offset, or year 0000) is clamped: it selects the same rows."""
    if not isinstance(value, str):
        return value
    m = _DATE_TIME.fullmatch(value)
    if m is None:
        raise ValueError(
            "expected an RFC 3339 date-time with a time zone, e.g. 2026-01-31T12:00:00Z or "
            "2026-01-31T13:00:00%2B01:00 ('+' percent-encoded)")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m[7] or "0")[:6].ljust(6, "0"))
    offset = dt.timedelta(0)
    if m[9]:
        hours, minutes = int(m[10]), int(m[11])
        if hours > 23 or minutes > 59:
            raise ValueError("the time zone offset is out of range")
        offset = (1 if m[9] == "+" else -1) * dt.timedelta(hours=hours, minutes=minutes)
    leap = second == 60
    if leap:
        second, micro = 59, 999_999  # the leap second itself: the last instant before it
    try:  # year 0000 is checked as a leap year, like 2000
        naive = dt.datetime(year or 2000, month, day, hour, minute, second, micro)
    except ValueError as exc:
        raise ValueError(f"not a valid date-time: {exc}") from None
    if year == 0:
        return _UTC_MIN
    try:
        moment = naive.replace(tzinfo=dt.timezone(offset)).astimezone(dt.UTC)
    except OverflowError:
        return _UTC_MIN if year == 1 else _UTC_MAX
    if leap and (moment.hour, moment.minute) != (23, 59):
        raise ValueError("a leap second (:60) falls at 23:59 UTC")
    return moment


DateQuery = Annotated[
    dt.date, BeforeValidator(_date),
    WithJsonSchema(DATE_SCHEMA),
]
DateTimeQuery = Annotated[
    dt.datetime, BeforeValidator(_date_time),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


async def if_match(
    if_match: Annotated[
        str | None,
        Header(
            description="Expected version (from `version`); a mismatch answers 409",
            max_length=40,
            # No surrounding spaces: HTTP strips them from every header value. Versions are
            # 32-bit integers in the database: nine digits always fit.
            pattern=r'^(W/)?"?[0-9]{1,9}"?$',
        ),
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


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _error_response(request: Request, err: AppError) -> Response:
    return Response(error_body(err, request_id(request)), status_code=err.status,
                    media_type="application/json", headers=err.headers or None)


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    declared = length is not None and length.strip() not in ("", "0")
    return declared or "transfer-encoding" in request.headers


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "string_pattern_mismatch":
        pattern = str(error.get("ctx", {}).get("pattern", ""))
        if pattern == VISIBLE:
            return "must contain at least one visible character"
        return f"must match the pattern {ascii(pattern)}"
    return str(error.get("msg", "invalid"))


async def _validation_handler(request: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    body_errors = any(tuple(e.get("loc", ()))[:1] == ("body",) for e in errors)
    if body_errors and _has_body(request) and not _is_json(request):
        # FastAPI hands a non-JSON body to the model as bytes; say what is actually wrong.
        sent = request.headers.get("content-type") or "none"
        return _error_response(request, AppError(
            "unsupported_media_type",
            f"send the body as Content-Type: application/json (got {sent})",
            details=[{"field": "Content-Type", "message": "expected application/json"}]))
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        err = AppError("invalid_json", f"malformed JSON: {first.get('ctx', {}).get('error', 'invalid')}")
        return _error_response(request, err)
    details = []
    for e in errors:
        message = _message(e)
        details.append({"field": _field_of(tuple(e.get("loc", ()))), "message": message,
                        "type": e.get("type")})
    outside_body = all(tuple(e.get("loc", ("",)))[:1] in (("path",), ("query",), ("header",))
                       for e in errors)
    code = "invalid_parameter" if outside_body else "validation_error"
    if all(tuple(e.get("loc", ())) == ("query", "cursor") for e in errors):
        code = "invalid_cursor"  # what a cursor that is no cursor at all answered before
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
    if exc.status_code == 400 and message == "There was an error parsing the body":
        # FastAPI's answer when the JSON decoder itself fails (e.g. nesting too deep).
        code, message = "invalid_json", "malformed JSON: the body could not be parsed"
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette lists the methods of one route; the path may have more.
        table: MethodTable = request.app.state.methods
        allowed = table.allowed(request.app.router.routes, route_path(request.scope))
        if allowed is not None:
            headers["Allow"] = allow_header(allowed)
        use = headers.get("Allow", "another method")
        message = f"{request.method} is not allowed here; use {use}"
    err = AppError(code, message, headers=headers)
    err.status = exc.status_code
    return _error_response(request, err)


async def _other_handler(request: Request, exc: Exception) -> Response:
    return error_response(request, exc)


def error_response(request: Request, exc: Exception) -> Response:
    """The envelope of an expected error (AppError, DatabaseUnavailable, VersionConflict),
    as the exception handlers answer it."""
    return _error_response(request, as_app_error(exc))


async def _unexpected_handler(request: Request, exc: Exception) -> Response:
    """A bug: log it once with the request id bound, and answer a 500 envelope."""
    log_unexpected(exc)
    return _error_response(request, as_app_error(exc))


def _options(scope: Scope, allowed: frozenset[str]) -> Response:
    """OPTIONS on a routed path: its methods, in `Allow` and in the envelope."""
    methods = sorted(allowed)
    return Response(envelope_bytes(request_id_of(scope), {"methods": methods}),
                    media_type="application/json", headers={"Allow": allow_header(allowed)})


def install_error_handlers(app: FastAPI) -> None:
    """Every error inside the envelope; and the answers about methods: `OPTIONS` with `Allow`,
    `405` with `Allow` listing every method of the path (studio/http/methods.py)."""
    app.state.methods = MethodTable()
    app.router.routes.insert(0, MethodGuard(app.state.methods, _options))
    # Starlette types every handler as taking Exception, though it calls each one only
    # with the class it is registered for.
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_handler)  # type: ignore[arg-type]
    from studio.errors import DatabaseUnavailable, VersionConflict

    app.add_exception_handler(DatabaseUnavailable, _other_handler)
    app.add_exception_handler(VersionConflict, _other_handler)
    # Starlette's ServerErrorMiddleware calls this for any other exception, then re-raises
    # it to the server; ErrorEnvelopeMiddleware sees it already answered and logged.
    app.add_exception_handler(Exception, _unexpected_handler)


# -- the OpenAPI document ---------------------------------------------------------------
_STATUS_TEXT = {
    400: "Invalid input", 401: "Not authenticated", 403: "Not permitted", 404: "Not found",
    409: "Conflict", 413: "Body too large", 415: "Unsupported media type", 429: "Rate limited",
    500: "Unexpected error", 503: "A dependency is down",
}  # fmt: skip
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
_RATE_HEADERS = {
    **_RETRY_AFTER,
    **{name: {"description": text, "schema": {"type": "integer"}} for name, text in (
        ("RateLimit-Limit", "Requests allowed per window"),
        ("RateLimit-Remaining", "Requests left in the window"),
        ("RateLimit-Reset", "Seconds until the window frees capacity"),
    )},
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that answers an error status the rules below cannot infer
    (e.g. 404 for an object named in the body); documented with the error envelope."""
    return {status: {"description": _STATUS_TEXT[status]} for status in statuses}


def _error_statuses(path: str, method: str, operation: dict[str, Any], api_prefix: str) -> set[int]:
    """The error statuses the gateway and the handlers can really answer for an operation."""
    if not path.startswith(api_prefix):
        return {503} if path == "/readyz" else set()
    declared = {int(s) for s in operation.get("responses", {}) if s.isdigit() and int(s) in _STATUS_TEXT}
    statuses = {401, 403, 429, 500, 503} | declared
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(400)
    if "{" in path:
        statuses.add(404)
    if method != "get":
        statuses |= {400, 409, 413}  # an unexpected body, a duplicate or a stale version
    if operation.get("requestBody"):
        statuses.add(415)
    return statuses


def _drop_null(schema: dict[str, Any]) -> None:
    """A query or header parameter is absent or a string, never JSON null: say so."""
    options = schema.get("anyOf")
    if not options:
        return
    kept = [o for o in options if o.get("type") != "null"]
    if len(kept) == 1:
        schema.pop("anyOf")
        schema.update(kept[0])
    else:
        schema["anyOf"] = kept


ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "An access token from POST /api/v1/auth/login, or a personal API token "
                   "(stp_...) from POST /api/v1/tokens",
}


def _authenticated_operations(api: FastAPI) -> set[tuple[str, str]]:
    """(path, method) of the operations whose handler needs the caller: exactly those the
    authentication layer protects (every /api/v1 path but login and refresh)."""
    from fastapi.routing import APIRoute, iter_route_contexts

    def calls(dependant: Any) -> Any:  # a FastAPI Dependant and the ones it depends on
        yield dependant.call
        for sub in dependant.dependencies:
            yield from calls(sub)

    found = set()
    for route in iter_route_contexts(api.routes):
        original = route.original_route
        if isinstance(original, APIRoute) and current_principal in set(calls(original.dependant)):
            found |= {(str(route.path_format), m.lower()) for m in route.methods or ()}
    return found


def document_errors(api: FastAPI, api_prefix: str) -> None:
    """Document the error envelope on every operation, in place of FastAPI's 422 (never sent:
    invalid input answers 400), so clients and contract tests see the real responses; and the
    bearer token on every operation that needs one."""
    from fastapi.openapi.utils import get_openapi

    from studio.errors import ERROR_CATALOGUE
    from studio.http.schemas import ErrorEnvelope

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        schema = get_openapi(title=api.title, version=api.version, description=api.description,
                             routes=api.routes, tags=api.openapi_tags)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        error_schema = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(error_schema.pop("$defs", {}))
        components["ErrorEnvelope"] = error_schema
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        schema["components"]["securitySchemes"] = {"bearer": BEARER}
        authenticated = _authenticated_operations(api)
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if (path, method) in authenticated:
                    operation["security"] = [{"bearer": []}]
                for parameter in operation.get("parameters", []):
                    _drop_null(parameter.get("schema", {}))
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status in sorted(_error_statuses(path, method, operation, api_prefix)):
                    codes = ", ".join(
                        f"`{code}`" for code, (st, _) in ERROR_CATALOGUE.items() if st == status
                    )
                    response: dict[str, Any] = {
                        "description": f"{_STATUS_TEXT[status]}: {codes}",
                        "content": {"application/json": {"schema": ERROR_REF}},
                    }
                    if status == 429:
                        response["headers"] = _RATE_HEADERS
                    elif status == 503:
                        response["headers"] = _RETRY_AFTER
                    declared = responses.get(str(status)) or {}
                    if declared.get("description", _STATUS_TEXT[status]) != _STATUS_TEXT[status]:
                        response["description"] = f"{declared['description']} ({codes})"
                    responses[str(status)] = {**declared, **response}
        api.openapi_schema = schema
        return schema

    # FastAPI's documented way to customise the schema; its class declares a method here.
    api.openapi = openapi  # type: ignore[method-assign]
