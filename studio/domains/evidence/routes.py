"""HTTP endpoints of the evidence domain."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from studio.api import (
    CurrentAuth,
    CurrentPrincipal,
    PageParams,
    container,
    if_match,
    ok,
    page,
    principal_of,
    query_model,
    query_of,
    query_parameters,
    request_id,
    run_read,
)
from studio.direct_routes import Fallback, auth_or_fallback
from studio.domains.evidence.schemas import (
    EvidenceCreate,
    EvidenceRead,
    EvidenceStatus,
    EvidenceUpdate,
    ReviewCreate,
    ReviewRead,
)
from studio.principal import AuthInfo
from studio.schemas import NO_NUL, Envelope, PageOut

router = APIRouter(tags=["evidence"])


class ReviewOutcome(BaseModel):
    evidence: EvidenceRead
    review: ReviewRead


class EvidenceListQuery(BaseModel):
    """The evidence list's query parameters (the most requested endpoint: see query_model)."""

    limit: int = Field(50, ge=1, le=200, description="Items per page")
    cursor: str | None = Field(None, max_length=512, description="nextCursor of the previous page")
    status: EvidenceStatus | None = None
    controlId: str | None = Field(None, max_length=64, pattern=NO_NUL)
    sort: Literal["created_at", "updated_at", "title"] = "created_at"
    order: Literal["asc", "desc"] = "desc"


@router.get("/projects/{project_id}/evidence", response_model=Envelope[PageOut[EvidenceRead]],
            openapi_extra=query_parameters(EvidenceListQuery))
async def list_evidence(
    request: Request,
    auth: CurrentAuth,
    project_id: uuid.UUID,
    query: Annotated[EvidenceListQuery, query_model(EvidenceListQuery)],
) -> Response:
    """A project's evidence, newest first."""
    return await _evidence_page(request, auth, project_id, query)


async def list_evidence_direct(request: Request, project_id: uuid.UUID) -> Response:
    """`list_evidence` as a direct route (studio/direct_routes.py): the most requested
    endpoint. Invalid query parameters go to the FastAPI route, which explains them."""
    auth = auth_or_fallback(request)
    try:
        query = query_of(EvidenceListQuery, request)
    except ValidationError:
        raise Fallback from None
    return await _evidence_page(request, auth, project_id, query)


async def _evidence_page(request: Request, auth: AuthInfo, project_id: uuid.UUID,
                         query: EvidenceListQuery) -> Response:
    def read() -> tuple[list[dict[str, Any]], str | None]:
        evidence = container(request).evidence
        with container(request).db.read() as conn:
            page = evidence.page_request(
                conn, project_id, cursor=query.cursor, limit=query.limit, sort=query.sort,
                desc=query.order == "desc", status=query.status.value if query.status else None,
                control_id=query.controlId)
            # The caller, the project and the page in one statement (one round trip); the
            # page is served only if the caller may read the project's evidence.
            return evidence.read_page(principal_of(request, auth, project_id, along=page), project_id, page)

    items, cursor = await run_read(request, read)
    return page(request, items, cursor)


# Served by DirectRoutes in front of FastAPI (paths under the API prefix).
DIRECT_ROUTES = {"/projects/{project_id}/evidence": list_evidence_direct}


@router.post("/projects/{project_id}/evidence", response_model=Envelope[EvidenceRead], status_code=201)
def create_evidence(request: Request, principal: CurrentPrincipal, project_id: uuid.UUID,
                    body: EvidenceCreate) -> Response:
    """Record a piece of evidence for a control of the project."""
    return ok(request, container(request).evidence.create(principal, project_id, body,
                                                          request_id=request_id(request)), 201)


@router.get("/evidence/{evidence_id}", response_model=Envelope[EvidenceRead])
def get_evidence(request: Request, principal: CurrentPrincipal, evidence_id: uuid.UUID) -> Response:
    return ok(request, container(request).evidence.get(principal, evidence_id))


@router.patch("/evidence/{evidence_id}", response_model=Envelope[EvidenceRead])
def update_evidence(request: Request, principal: CurrentPrincipal, evidence_id: uuid.UUID,
                    body: EvidenceUpdate, expected: int | None = Depends(if_match)) -> Response:
    """Edit pending or rejected evidence; reviewers may override the quality score."""
    return ok(request, container(request).evidence.update(
        principal, evidence_id, body, expected_version=expected, request_id=request_id(request)))


@router.delete("/evidence/{evidence_id}", response_model=Envelope[None])
def delete_evidence(request: Request, principal: CurrentPrincipal, evidence_id: uuid.UUID) -> Response:
    container(request).evidence.delete(principal, evidence_id, request_id=request_id(request))
    return ok(request, None)


@router.post("/evidence/{evidence_id}/submit", response_model=Envelope[EvidenceRead])
def submit_evidence(request: Request, principal: CurrentPrincipal, evidence_id: uuid.UUID) -> Response:
    """Send evidence to review."""
    return ok(request, container(request).evidence.submit(principal, evidence_id, request_id=request_id(request)))


@router.post("/evidence/{evidence_id}/review", response_model=Envelope[ReviewOutcome])
def review_evidence(request: Request, principal: CurrentPrincipal, evidence_id: uuid.UUID,
                    body: ReviewCreate) -> Response:
    """Approve or reject evidence in review (auditors, managers, admins; not your own)."""
    return ok(request, container(request).evidence.review(principal, evidence_id, body,
                                                          request_id=request_id(request)))


@router.get("/evidence/{evidence_id}/reviews", response_model=Envelope[PageOut[ReviewRead]])
def list_reviews(request: Request, principal: CurrentPrincipal, evidence_id: uuid.UUID,
                 paging: PageParams) -> Response:
    items, cursor = container(request).evidence.reviews(principal, evidence_id, cursor=paging.cursor,
                                                         limit=paging.limit)
    return page(request, items, cursor)
