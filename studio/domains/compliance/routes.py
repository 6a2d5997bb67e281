"""HTTP endpoints of compliance: control links, applicability, score, statuses and coverage."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from studio.domains.compliance.schemas import Applicability, ControlLinks, VersionMove
from studio.http.api import CurrentPrincipal, DateQuery, container, ok, request_id
from studio.validation import NO_NUL

router = APIRouter(tags=["compliance"])


@router.get("/evidence/{evidence_id}/controls")
def get_evidence_controls(request: Request, principal: CurrentPrincipal, evidence_id: uuid.UUID) -> Response:
    return ok(request, container(request).compliance.linked_controls(principal, evidence_id))


@router.put("/evidence/{evidence_id}/controls")
def put_evidence_controls(request: Request, principal: CurrentPrincipal, evidence_id: uuid.UUID,
                          body: ControlLinks) -> Response:
    """Link evidence to further controls of its project's framework (replaces the set)."""
    return ok(request, container(request).compliance.link_controls(principal, evidence_id, body.controlRefs,
                                                                   request_id=request_id(request)))


@router.get("/evidence/{evidence_id}/coverage")
def evidence_coverage(request: Request, principal: CurrentPrincipal, evidence_id: uuid.UUID,
                      depth: Annotated[int, Query(ge=0, le=3)] = 2) -> Response:
    """Controls the evidence covers directly and through mappings, with the explaining path."""
    return ok(request, container(request).compliance.evidence_coverage(principal, evidence_id, depth))


@router.put("/projects/{project_id}/framework-version")
def move_framework_version(request: Request, principal: CurrentPrincipal, project_id: uuid.UUID,
                           body: VersionMove) -> Response:
    """Assess the project against another framework version (admins)."""
    return ok(request, container(request).compliance.move_version(principal, project_id, body.frameworkVersionId,
                                                                  request_id=request_id(request)))


@router.put("/projects/{project_id}/controls/{ref}/applicability")
def set_applicability(request: Request, principal: CurrentPrincipal, project_id: uuid.UUID,
                      ref: Annotated[str, Path(max_length=120, pattern=NO_NUL)], body: Applicability) -> Response:
    return ok(request, container(request).compliance.set_applicability(
        principal, project_id, ref, body.applicable, body.reason, request_id=request_id(request)))


@router.get("/projects/{project_id}/score")
def project_score(request: Request, principal: CurrentPrincipal, project_id: uuid.UUID,
                  at: Annotated[DateQuery | None, Query(description="a past date: the score as of that day")] = None) -> Response:
    return ok(request, container(request).compliance.score(principal, project_id, at))


@router.get("/projects/{project_id}/controls")
def project_controls(request: Request, principal: CurrentPrincipal, project_id: uuid.UUID) -> Response:
    """Each control with its status (covered, partial, expired, missing, not_applicable) and why."""
    return ok(request, container(request).compliance.control_statuses(principal, project_id))


@router.get("/projects/{project_id}/renewals")
def renewals(request: Request, principal: CurrentPrincipal, project_id: uuid.UUID,
             within: Annotated[int, Query(ge=0, le=3650, description="days ahead")] = 30) -> Response:
    """Approved evidence that has expired or expires soon: due for renewal."""
    return ok(request, container(request).compliance.renewals(principal, project_id, within))


@router.get("/projects/{project_id}/mapped-coverage")
def mapped_coverage(request: Request, principal: CurrentPrincipal, project_id: uuid.UUID,
                    source_project_id: Annotated[uuid.UUID | None, Query(alias="sourceProjectId")] = None,
                    control_id: Annotated[uuid.UUID | None, Query(alias="controlId")] = None) -> Response:
    """What this project already has covered through mappings from other projects' evidence."""
    return ok(request, container(request).compliance.mapped_coverage(principal, project_id, source_project_id,
                                                                     control_id))
