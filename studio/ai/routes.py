"""HTTP endpoints of the AI service."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from studio.ai.schemas import DecisionCreate, MappingRequest, QualityOverrideCreate
from studio.ai.service import AiService
from studio.domains.users.service import require
from studio.errors import AppError
from studio.http.api import CurrentPrincipal, container, errors, ok, request_id
from studio.http.schemas import Envelope
from studio.validation import VISIBLE_NO_NUL

router = APIRouter(tags=["ai"])


def _ai(request: Request) -> AiService:
    return container(request).ai


@router.get("/ai/status", response_model=Envelope[dict[str, Any]])
def ai_status(request: Request, principal: CurrentPrincipal) -> Response:
    """Which embedding model is active (or why the preferred one is not) and what is indexed."""
    return ok(request, _ai(request).status())


@router.get("/evidence/{evidence_id}/analysis", response_model=Envelope[dict[str, Any]])
def evidence_analysis(request: Request, principal: CurrentPrincipal, evidence_id: uuid.UUID) -> Response:
    """The evidence's suggestions, quality score with one sentence per signal, and overrides."""
    return ok(request, _ai(request).analysis(principal, evidence_id))


@router.post("/ai/suggestions/{suggestion_id}/decision", response_model=Envelope[dict[str, Any]])
def decide_suggestion(request: Request, principal: CurrentPrincipal, suggestion_id: uuid.UUID,
                      body: DecisionCreate) -> Response:
    """Accept (links the evidence to the control) or dismiss a control suggestion."""
    return ok(request, _ai(request).decide(principal, suggestion_id, body.decision.value,
                                           request_id=request_id(request)))


@router.get("/ai/suggestions/metrics", response_model=Envelope[dict[str, Any]])
def suggestion_metrics(request: Request, principal: CurrentPrincipal) -> Response:
    """How often people accepted the model's suggestions, by rank."""
    return ok(request, _ai(request).suggestion_metrics(principal))


@router.post("/evidence/{evidence_id}/quality-override", response_model=Envelope[dict[str, Any]])
def override_quality(request: Request, principal: CurrentPrincipal, evidence_id: uuid.UUID,
                     body: QualityOverrideCreate) -> Response:
    """Replace the computed quality score with a reviewer's, keeping both on record."""
    reason = body.reason.strip()
    if not reason:
        raise AppError("validation_error", details=[{"field": "reason", "message": "must not be blank"}])
    return ok(request, _ai(request).override_quality(principal, evidence_id, body.score, reason,
                                                     request_id=request_id(request)))


@router.get("/ai/search", response_model=Envelope[dict[str, Any]])
def search(request: Request, principal: CurrentPrincipal,
           q: Annotated[str, Query(min_length=1, max_length=2000, pattern=VISIBLE_NO_NUL, description="What to look for")],
           kind: Annotated[str, Query(pattern="^(evidence|control)$")] = "evidence",
           limit: Annotated[int, Query(ge=1, le=50)] = 10) -> Response:
    """Evidence in your projects, or controls, ranked by meaning."""
    if not q.strip():
        raise AppError("invalid_parameter", details=[{"field": "q", "message": "must not be blank"}])
    return ok(request, {"items": _ai(request).search(principal, q, kind=kind, limit=limit)})


@router.post("/ai/mappings", response_model=Envelope[dict[str, Any]], status_code=201, responses=errors(404))
def suggest_mappings(request: Request, principal: CurrentPrincipal, body: MappingRequest) -> Response:
    """Propose control pairs between two imported frameworks (admins)."""
    require(principal, "frameworks.manage")
    # Frameworks the caller's organization sees, by the names the index uses.
    source, target = _ai(request).catalog_names(principal.organization_id, body.source, body.target)
    created = _ai(request).suggest_mappings(source, target)
    return ok(request, {"created": created,
                        "items": _ai(request).mapping_suggestions(source, target)}, 201)


@router.post("/ai/mappings/{mapping_id}/decision", response_model=Envelope[dict[str, Any]])
def decide_mapping(request: Request, principal: CurrentPrincipal, mapping_id: uuid.UUID,
                   body: DecisionCreate) -> Response:
    """Accept or dismiss a proposed mapping."""
    return ok(request, _ai(request).decide_mapping(principal, mapping_id, body.decision.value,
                                                   request_id=request_id(request)))

