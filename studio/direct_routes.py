"""Direct dispatch for the few GET endpoints that serve most requests.

FastAPI's routing, dependency solving and its own middleware stack cost about 0.1 ms of
CPU per request here: 12 % of an evidence page, as much as the authentication, the
authorization query and the envelope together (docs/benchmarks.md). A direct route calls
the same handler code with the same validation, for requests it can answer without that
machinery; everything else goes on to FastAPI, which answers as for any route:

- only GET, on an exact path with canonical UUIDs in its parameters (no root path);
- the handler raises `Fallback` for a request it does not expect (invalid query
  parameters, no credential) before any other work, and FastAPI answers it with its own
  validation errors;
- errors the handler raises (AppError and the other expected ones) become the same
  envelopes FastAPI's exception handlers produce (`studio.api.error_response`); anything
  else propagates to the gateway, which answers a 500 envelope and logs it.

Each direct route has a FastAPI route at the same path that documents the operation and
answers everything the direct one passes on. tests/test_direct_routes.py checks that both
answer a corpus of requests alike.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from studio.api import error_response
from studio.db import DatabaseUnavailable
from studio.errors import AppError
from studio.events.store import VersionConflict
from studio.principal import AuthInfo

Handler = Callable[..., Awaitable[Response]]

_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_PARAM = re.compile(r"\{([a-z_]+)\}")


class Fallback(Exception):
    """Raised by a direct handler before any work: let FastAPI answer this request."""


def _pattern(template: str) -> re.Pattern[str]:
    """`/projects/{project_id}/evidence` -> a pattern whose groups are canonical UUIDs."""
    parts = _PARAM.split(template)
    regex = "".join(f"(?P<{part}>{_UUID})" if i % 2 else re.escape(part) for i, part in enumerate(parts))
    return re.compile(regex + r"\Z")


class DirectRoutes:
    """Serves the given GET paths with their direct handlers, in front of `app`."""

    def __init__(self, app: ASGIApp, routes: Mapping[str, Handler]):
        self.app = app
        self.routes = [(_pattern(template), handler) for template, handler in routes.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            path = scope["path"]
            for pattern, handler in self.routes:
                match = pattern.match(path)
                if match is None:
                    continue
                response = await self._call(handler, scope, receive, match.groupdict())
                if response is not None:
                    await response(scope, receive, send)
                    return
                break
        await self.app(scope, receive, send)

    async def _call(self, handler: Handler, scope: Scope, receive: Receive,
                    params: dict[str, str]) -> Response | None:
        scope["app"] = self.app  # what FastAPI sets: request.app (its state holds the container)
        request = Request(scope, receive)
        try:
            return await handler(request, **{name: uuid.UUID(value) for name, value in params.items()})
        except Fallback:
            return None
        except (AppError, DatabaseUnavailable, VersionConflict) as exc:
            return error_response(request, exc)


def auth_or_fallback(request: Request) -> AuthInfo:
    """The credential the authentication middleware proved; none: FastAPI answers."""
    auth = request.scope.get("state", {}).get("auth")
    if auth is None:
        raise Fallback
    return auth
