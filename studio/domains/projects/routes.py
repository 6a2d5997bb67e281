"""HTTP endpoints of the projects domain."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from studio.domains.projects.schemas import (
    MemberAdd,
    MemberRead,
    ProjectCreate,
    ProjectRead,
    ProjectStatus,
    ProjectUpdate,
)
from studio.http.api import (
    CurrentPrincipal,
    PageParams,
    UuidPageParams,
    container,
    errors,
    if_match,
    ok,
    page,
    request_id,
)
from studio.http.schemas import Envelope, PageOut

router = APIRouter(tags=["projects"])


@router.get("/projects", response_model=Envelope[PageOut[ProjectRead]])
def list_projects(
    request: Request,
    principal: CurrentPrincipal,
    paging: PageParams,
    status: ProjectStatus | None = None,
    sort: Annotated[str, Query(pattern="^(created_at|updated_at|name)$")] = "created_at",
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
) -> Response:
    """Projects the caller may see."""
    items, cursor = container(request).projects.list(
        principal, cursor=paging.cursor, limit=paging.limit, sort=sort, desc=order == "desc",
        status=status.value if status else None)
    return page(request, items, cursor)


@router.post("/projects", response_model=Envelope[ProjectRead], status_code=201, responses=errors(404))
def create_project(request: Request, principal: CurrentPrincipal, body: ProjectCreate) -> Response:
    """Open a project against a framework."""
    return ok(request, container(request).projects.create(principal, body, request_id=request_id(request)), 201)


@router.get("/projects/{project_id}", response_model=Envelope[ProjectRead])
def get_project(request: Request, principal: CurrentPrincipal, project_id: uuid.UUID) -> Response:
    return ok(request, container(request).projects.get(principal, project_id))


@router.patch("/projects/{project_id}", response_model=Envelope[ProjectRead])
def update_project(request: Request, principal: CurrentPrincipal, project_id: uuid.UUID,
                   body: ProjectUpdate, expected: int | None = Depends(if_match)) -> Response:
    """Rename, re-describe or change the status of a project."""
    return ok(request, container(request).projects.update(
        principal, project_id, body, expected_version=expected, request_id=request_id(request)))


@router.delete("/projects/{project_id}", response_model=Envelope[None])
def delete_project(request: Request, principal: CurrentPrincipal, project_id: uuid.UUID) -> Response:
    """Delete a project with its evidence (admins)."""
    container(request).projects.delete(principal, project_id, request_id=request_id(request))
    return ok(request, None)


@router.get("/projects/{project_id}/members", response_model=Envelope[PageOut[MemberRead]])
def list_members(request: Request, principal: CurrentPrincipal, project_id: uuid.UUID,
                 paging: UuidPageParams) -> Response:
    items, cursor = container(request).projects.members(principal, project_id, cursor=paging.cursor,
                                                         limit=paging.limit)
    return page(request, items, cursor)


@router.put("/projects/{project_id}/members", response_model=Envelope[MemberRead])
def add_member(request: Request, principal: CurrentPrincipal, project_id: uuid.UUID,
               body: MemberAdd) -> Response:
    """Add a member to the project, or change their role in it."""
    return ok(request, container(request).projects.add_member(principal, project_id, body,
                                                              request_id=request_id(request)))


@router.delete("/projects/{project_id}/members/{user_id}", response_model=Envelope[None])
def remove_member(request: Request, principal: CurrentPrincipal, project_id: uuid.UUID,
                  user_id: uuid.UUID) -> Response:
    container(request).projects.remove_member(principal, project_id, user_id, request_id=request_id(request))
    return ok(request, None)
