"""Web sessions: a session-length access token in an HttpOnly cookie, renewed while used,
and a CSRF token bound to the session (studio/domains/auth/security.py, shared with the
gateway's check of cookie-authenticated API calls).

Why not the 15-minute access token plus the refresh token in a second cookie? Refresh
tokens rotate with reuse detection: two tabs that wake up together after the access token
expired would both present the same refresh token, and the second presentation revokes
the whole session. Instead the web login starts an ordinary session (a refresh family,
via AuthService.login) and puts a JWT bound to that family (`sid`) in the cookie. The
refresh token itself never reaches the browser. Every request already checks that the
family is not revoked (users.repository.load_principal), so logout, deactivation and
"revoke all" end a web session at once, exactly like an API session. The cookie token
lives `web_session_idle_seconds` and is re-minted (idempotently, no rotation race) on page
views, never beyond the family's own expiry.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from studio.domains.auth.security import (
    AccessTokens,
    constant_time_equal,
    csrf_token,
    csrf_token_valid,
)
from studio.errors import AppError
from studio.gateway.authentication import CSRF_COOKIE, SESSION_COOKIE

CSRF_FIELD = "csrf"
# Re-mint the cookie token at most this often: idle expiry stays accurate to a few minutes
# without signing a token on every page view.
RENEW_AFTER = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class WebSession:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    session_id: uuid.UUID


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def csrf_valid(key: str, session_id: uuid.UUID | None, cookie: str | None,
               field: str | None) -> bool:
    """The form's token equals the cookie's (double submit) and was made for this session."""
    if not cookie or not field or not constant_time_equal(cookie, field):
        return False
    return csrf_token_valid(key, session_id, cookie)


def check_csrf(request: Request, key: str, session_id: uuid.UUID | None, field: str | None) -> None:
    if not csrf_valid(key, session_id, request.cookies.get(CSRF_COOKIE), field):
        raise AppError("csrf_failed", "the form has expired or did not come from this site; "
                                      "reload the page and try again")


def current_csrf(request: Request, key: str, session_id: uuid.UUID | None) -> tuple[str, bool]:
    """The CSRF token to embed in forms, and whether the cookie must be (re)set."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if cookie and csrf_token_valid(key, session_id, cookie):
        return cookie, False
    return csrf_token(key, session_id), True


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    # Readable by scripts on purpose: a script calling /api/ copies it into X-CSRF-Token.
    response.set_cookie(CSRF_COOKIE, token, httponly=False, samesite="lax",
                        secure=_secure(request), path="/")


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    # No Max-Age: a browser session cookie; the token inside carries the real expiry.
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax",
                        secure=_secure(request), path="/")


def clear_cookies(response: Response, request: Request) -> None:
    for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=_secure(request), httponly=http_only,
                               samesite="lax")


def mint(tokens: AccessTokens, session: WebSession, idle: dt.timedelta,
         deadline: dt.datetime) -> str | None:
    """A cookie token for `session` valid for `idle`, never past `deadline`; None if past it."""
    now = dt.datetime.now(dt.UTC)
    ttl = min(idle, deadline - now)
    if ttl <= dt.timedelta(seconds=30):
        return None
    token, _ = tokens.issue(session.user_id, session.organization_id, session.session_id,
                            now=now, ttl=ttl)
    return token


def needs_renewal(tokens: AccessTokens, token: str, idle: dt.timedelta) -> bool:
    """Whether the cookie token was minted more than RENEW_AFTER ago."""
    try:
        claims = tokens.verify(token)
    except AppError:
        return False
    remaining = claims.expires_at - dt.datetime.now(dt.UTC)
    return remaining < idle - RENEW_AFTER
