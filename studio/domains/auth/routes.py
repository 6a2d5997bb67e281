"""HTTP endpoints of the auth domain: sessions and personal API tokens."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from studio.domains.auth.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenRead,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    TokenPair,
)
from studio.domains.auth.security import device_token
from studio.domains.auth.service import API_TOKEN_FIELDS
from studio.gateway.rate_limit import DEVICE_COOKIE, LoginThrottle, set_device_cookie
from studio.http.api import CurrentPrincipal, PageParams, container, ok, page, request_id
from studio.http.schemas import Envelope, PageOut
from studio.records import record

router = APIRouter(tags=["auth"])


@router.post("/auth/login", response_model=Envelope[TokenPair])
async def login(request: Request, body: LoginRequest) -> Response:
    """Exchange e-mail and password for an access token and a refresh token.

    Failed logins are throttled per address, per account and address, and per account for
    devices that never logged in to it; a client that keeps cookies gets a "known device"
    cookie here, which lets it log in while strangers have spent the account's budget."""
    c = container(request)
    client = request.client.host if request.client else "unknown"
    email = str(body.email).lower()

    def check() -> dict[str, Any]:
        return c.auth.login(str(body.email), body.password, request_id=request_id(request),
                            client_ip=client)

    throttle = LoginThrottle.from_settings(c.limiter, c.settings)
    pair = await throttle.login(check, client=client, email=email,
                                device_cookie=request.cookies.get(DEVICE_COOKIE))
    response = ok(request, pair)
    set_device_cookie(response, device_token(c.settings.signing_key, email),
                      secure=request.url.scheme == "https")
    return response


@router.post("/auth/refresh", response_model=Envelope[TokenPair])
def refresh(request: Request, body: RefreshRequest) -> Response:
    """Rotate a refresh token. Presenting a rotated one again revokes the whole session."""
    return ok(request, container(request).auth.refresh(body.refreshToken, request_id=request_id(request)))


@router.post("/auth/logout", response_model=Envelope[None])
def logout(request: Request, principal: CurrentPrincipal, body: LogoutRequest | None = None) -> Response:
    """End the current session: its refresh tokens and access tokens stop working."""
    auth = request.scope["state"]["auth"]
    container(request).auth.logout(principal, auth.session_id, body.refreshToken if body else None,
                                   request_id=request_id(request))
    return ok(request, None)


@router.get("/tokens", response_model=Envelope[PageOut[ApiTokenRead]])
def list_tokens(request: Request, principal: CurrentPrincipal, paging: PageParams) -> Response:
    """List your personal API tokens (never their secrets)."""
    result = container(request).auth.list_api_tokens(principal, cursor=paging.cursor, limit=paging.limit)
    return page(request, [record(r, API_TOKEN_FIELDS) for r in result.items], result.next_cursor)


@router.post("/tokens", response_model=Envelope[ApiTokenCreated], status_code=201)
def create_token(request: Request, principal: CurrentPrincipal, body: ApiTokenCreate) -> Response:
    """Create a personal API token for scripts; the secret is shown in this response only."""
    created = container(request).auth.create_api_token(principal, body, request_id=request_id(request))
    return ok(request, created, 201)


@router.delete("/tokens/{token_id}", response_model=Envelope[None])
def revoke_token(request: Request, principal: CurrentPrincipal, token_id: uuid.UUID) -> Response:
    """Revoke one of your API tokens; it stops working at once."""
    container(request).auth.revoke_api_token(principal, token_id, request_id=request_id(request))
    return ok(request, None)
