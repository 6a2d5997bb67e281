"""HTTP endpoints of the auth domain: sessions and personal API tokens."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from limits import parse
from starlette.concurrency import run_in_threadpool
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
from studio.domains.auth.service import API_TOKEN_FIELDS
from studio.errors import AppError
from studio.http.api import CurrentPrincipal, PageParams, container, ok, page, request_id
from studio.http.schemas import Envelope, PageOut
from studio.records import record

router = APIRouter(tags=["auth"])


@router.post("/auth/login", response_model=Envelope[TokenPair])
async def login(request: Request, body: LoginRequest) -> Response:
    """Exchange e-mail and password for an access token and a refresh token."""
    c = container(request)
    client = request.client.host if request.client else "unknown"
    if c.settings.rate_limit_enabled:
        limit = parse(c.settings.rate_limit_login)
        for key in (f"ip:{client}", f"email:{str(body.email).lower()}"):
            decision = await c.limiter.hit(limit, "login", key)
            if not decision.allowed:
                retry = str(decision.reset_after)
                raise AppError("rate_limited", f"too many login attempts; retry in {retry}s",
                               headers={"Retry-After": retry, "RateLimit-Limit": str(decision.limit),
                                        "RateLimit-Remaining": "0", "RateLimit-Reset": retry})
    pair = await run_in_threadpool(
        c.auth.login, str(body.email), body.password, request_id=request_id(request), client_ip=client
    )
    return ok(request, pair)


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
