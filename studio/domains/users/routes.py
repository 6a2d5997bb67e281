"""HTTP endpoints of the users domain."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from studio.domains.users.schemas import OrganizationRead, UserCreate, UserRead, UserUpdate
from studio.http.api import CurrentPrincipal, PageParams, container, if_match, ok, page, request_id
from studio.http.schemas import Envelope, PageOut

router = APIRouter(tags=["users"])


@router.get("/me", response_model=Envelope[UserRead])
def me(request: Request, principal: CurrentPrincipal) -> Response:
    """The caller's own user record."""
    return ok(request, container(request).users.get(principal, principal.user_id))


@router.get("/organizations/current", response_model=Envelope[OrganizationRead])
def current_organization(request: Request, principal: CurrentPrincipal) -> Response:
    """The caller's organization."""
    return ok(request, container(request).users.organization(principal))


@router.get("/users", response_model=Envelope[PageOut[UserRead]])
def list_users(
    request: Request,
    principal: CurrentPrincipal,
    paging: PageParams,
    sort: Annotated[str, Query(pattern="^(created_at|email|name)$")] = "created_at",
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
) -> Response:
    """Users of the caller's organization."""
    items, cursor = container(request).users.list(principal, cursor=paging.cursor, limit=paging.limit,
                                                  sort=sort, desc=order == "desc")
    return page(request, items, cursor)


@router.post("/users", response_model=Envelope[UserRead], status_code=201)
def create_user(request: Request, principal: CurrentPrincipal, body: UserCreate) -> Response:
    """Create a user (admins)."""
    return ok(request, container(request).users.create(principal, body, request_id=request_id(request)), 201)


@router.get("/users/{user_id}", response_model=Envelope[UserRead])
def get_user(request: Request, principal: CurrentPrincipal, user_id: uuid.UUID) -> Response:
    return ok(request, container(request).users.get(principal, user_id))


@router.patch("/users/{user_id}", response_model=Envelope[UserRead])
def update_user(request: Request, principal: CurrentPrincipal, user_id: uuid.UUID, body: UserUpdate,
                expected: int | None = Depends(if_match)) -> Response:
    """Change a user's name, role, password or active flag; a role change applies at once."""
    return ok(request, container(request).users.update(principal, user_id, body, expected_version=expected,
                                                       request_id=request_id(request)))


@router.delete("/users/{user_id}", response_model=Envelope[None])
def delete_user(request: Request, principal: CurrentPrincipal, user_id: uuid.UUID) -> Response:
    """Deactivate a user and revoke their sessions and tokens (the record stays for audit)."""
    container(request).users.delete(principal, user_id, request_id=request_id(request))
    return ok(request, None)
