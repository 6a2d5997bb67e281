"""HTTP endpoints of the evidence domain."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from studio.domains.evidence.schemas import (
    EvidenceCreate,
    EvidenceRead,
    EvidenceStatus,
    EvidenceUpdate,
    ReviewCreate,
    ReviewRead,
)
from studio.http.api import CurrentPrincipal, PageParams, container, if_match, ok, page, request_id
from studio.http.schemas import Envelope, PageOut
from studio.validation import NO_NUL

router = APIRouter(tags=["evidence"])


class ReviewOutcome(BaseModel):
    evidence: EvidenceRead
    review: ReviewRead


@router.get("/projects/{project_id}/evidence", response_model=Envelope[PageOut[EvidenceRead]])
def list_evidence(
    request: Request,
    principal: CurrentPrincipal,
    project_id: uuid.UUID,
    paging: PageParams,
    status: EvidenceStatus | None = None,
    control_id: Annotated[str | None, Query(alias="controlId", max_length=64, pattern=NO_NUL)] = None,
    sort: Literal["created_at", "updated_at", "title"] = "created_at",
    order: Literal["asc", "desc"] = "desc",
) -> Response:
    """A project's evidence, newest first."""
    items, cursor = container(request).evidence.list_for_project(
        principal, project_id, cursor=paging.cursor, limit=paging.limit, sort=sort,
        desc=order == "desc", status=status.value if status else None, control_id=control_id)
    return page(request, items, cursor)


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
