"""Authentication: who sent this request (bearer JWT, API token, or web session cookie).

The middleware proves the credential and stores an AuthInfo in the request state. The
user's current role is loaded by the handler in its own database work, so that role
changes and deactivations take effect on the very next request.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from studio.domains.auth.security import API_TOKEN_PREFIX, constant_time_equal, csrf_token_valid
from studio.errors import AppError
from studio.gateway.envelope import send_error
from studio.principal import AuthInfo

SESSION_COOKIE = "studio_session"
CSRF_COOKIE = "studio_csrf"
CSRF_HEADER = b"x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _cookies(scope: Scope) -> dict[str, str]:
    jar: dict[str, str] = {}
    for key, value in scope["headers"]:
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, val = part.strip().partition("=")
                if name:
                    jar[name] = val
    return jar


class AuthenticationMiddleware:
    """Resolves credentials; rejects requests to protected paths that carry none (401).

    `verify_jwt` is CPU-only; `resolve_api_token` touches the database and so runs in a
    worker thread. A cookie session calling a protected path with an unsafe method must
    also send its CSRF token in the X-CSRF-Token header: equal to the studio_csrf cookie
    (double submit) and made for this very session (a MAC of the session id under
    `csrf_key`), so a token copied from or planted by another session fails. HTML form posts
    to pages outside the API cannot send headers; the web routes check the same token in a
    form field instead (studio/web/session.py).
    """

    def __init__(
        self,
        app: ASGIApp,
        verify_jwt: Callable[[str, str], AuthInfo],
        resolve_api_token: Callable[[str], AuthInfo | None],
        csrf_key: str,
        protected_prefix: str = "/api/",
        public_paths: frozenset[str] = frozenset(),
    ):
        self.app = app
        self.verify_jwt = verify_jwt
        self.resolve_api_token = resolve_api_token
        self.csrf_key = csrf_key
        self.protected_prefix = protected_prefix
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        protected = path.startswith(self.protected_prefix) and path not in self.public_paths
        try:
            auth = await self._authenticate(scope, protected)
        except AppError as err:
            if protected:
                await send_error(scope, send, err)
                return
            auth = None
        if auth is None and protected:
            await send_error(
                scope,
                send,
                AppError(
                    "unauthenticated",
                    "send `Authorization: Bearer <access token or API token>`",
                    headers={"WWW-Authenticate": 'Bearer realm="studio"'},
                ),
            )
            return
        scope.setdefault("state", {})["auth"] = auth
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, protected: bool) -> AuthInfo | None:
        sent = [v for k, v in scope["headers"] if k == b"authorization"]
        if len(sent) > 1:
            # A proxy and this app could each read a different one: refuse the ambiguity.
            raise AppError("invalid_token", "send exactly one Authorization header")
        header = sent[0] if sent else None
        if header is not None:
            scheme, _, token = header.decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise AppError("invalid_token", "use the Bearer scheme")
            if token.startswith(API_TOKEN_PREFIX):
                info = await run_in_threadpool(self.resolve_api_token, token)
                if info is None:
                    raise AppError("invalid_token", "unknown, revoked or expired API token")
                return info
            return self.verify_jwt(token, "jwt")
        cookies = _cookies(scope)
        session = cookies.get(SESSION_COOKIE)
        if not session:
            return None
        info = self.verify_jwt(session, "session")
        if protected and scope["method"] not in SAFE_METHODS:
            csrf_sent: str = next(
                (v for k, v in scope["headers"] if k == CSRF_HEADER), b""
            ).decode("latin-1")
            expected = cookies.get(CSRF_COOKIE, "")
            if (not expected or not csrf_sent or not constant_time_equal(csrf_sent, expected)
                    or info.session_id is None
                    or not csrf_token_valid(self.csrf_key, info.session_id, csrf_sent)):
                raise AppError("csrf_failed", "send this session's studio_csrf cookie value "
                                              "in the X-CSRF-Token header")
        return info


