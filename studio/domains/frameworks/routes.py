"""HTTP endpoints of the frameworks domain: import, browse, search, mappings, neighbourhood."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from starlette.responses import Response

from studio.api import CurrentPrincipal, PageParams, container, ok, page, request_id
from studio.domains.frameworks.schemas import DeriveRequest, MappingCreate, MappingUpdate
from studio.domains.users.service import require
from studio.errors import AppError

router = APIRouter(tags=["frameworks"])
MAX_IMPORT_BYTES = 50 * 1024 * 1024
Text = Annotated[str | None, Form(max_length=255)]


def _read_upload(file: UploadFile) -> bytes:
    data = file.file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise AppError("payload_too_large", "framework files are limited to 50 MB")
    if not data:
        raise AppError("validation_error", "the file is empty", details=[{"field": "file", "message": "empty"}])
    return data


@router.post("/frameworks/import", status_code=201)
def import_framework(request: Request, principal: CurrentPrincipal, file: Annotated[UploadFile, File()],
                     key: Text = None, name: Text = None, version: Text = None) -> Response:
    """Import an OSCAL catalog (JSON, YAML, XML) or a custom CSV/YAML framework as a new version."""
    # Check the role before reading a possibly large upload.
    require(principal, "frameworks.manage")
    data = _read_upload(file)
    result = container(request).frameworks.import_file(principal, file.filename or "upload", data, key=key, name=name, version=version,
                             request_id=request_id(request))
    return ok(request, result, 200 if result["unchanged"] else 201)


@router.get("/frameworks")
def list_frameworks(request: Request, principal: CurrentPrincipal) -> Response:
    return ok(request, container(request).frameworks.list(principal))


@router.get("/frameworks/{framework}")
def show_framework(request: Request, principal: CurrentPrincipal, framework: str) -> Response:
    """A framework (by id or key) with its versions."""
    return ok(request, container(request).frameworks.show(principal, framework))


@router.get("/frameworks/{framework}/controls")
def list_controls(
    request: Request, principal: CurrentPrincipal, framework: str, paging: PageParams,
    version_id: Annotated[uuid.UUID | None, Query(alias="versionId")] = None,
    q: Annotated[str | None, Query(max_length=200, description="words that must all appear in the control text")] = None,
    parent_id: Annotated[uuid.UUID | None, Query(alias="parentId")] = None,
    kind: Annotated[str | None, Query(pattern="^(family|control)$")] = None,
) -> Response:
    """Controls in catalog order (latest version unless versionId), with full-text search."""
    items, cursor = container(request).frameworks.controls(
        principal, framework, version_id=version_id, search=q, parent_id=parent_id, kind=kind,
        cursor=paging.cursor, limit=paging.limit)
    return page(request, items, cursor)


@router.get("/controls/{control_id}")
def get_control(request: Request, principal: CurrentPrincipal, control_id: uuid.UUID) -> Response:
    return ok(request, container(request).frameworks.control(principal, control_id))


@router.get("/controls/{control_id}/neighbourhood")
def control_neighbourhood(request: Request, principal: CurrentPrincipal, control_id: uuid.UUID) -> Response:
    """Parent, children, catalog links and mappings of a control."""
    return ok(request, container(request).frameworks.neighbourhood(principal, control_id))


@router.get("/mappings")
def list_mappings(request: Request, principal: CurrentPrincipal, paging: PageParams,
                  control_id: Annotated[uuid.UUID | None, Query(alias="controlId")] = None,
                  version_id: Annotated[uuid.UUID | None, Query(alias="versionId")] = None) -> Response:
    items, cursor = container(request).frameworks.list_mappings(
        principal, control_id=control_id, version_id=version_id, cursor=paging.cursor, limit=paging.limit)
    return page(request, items, cursor)


@router.post("/mappings", status_code=201)
def create_mapping(request: Request, principal: CurrentPrincipal, body: MappingCreate) -> Response:
    result = container(request).frameworks.create_mapping(
        principal, body.sourceId, body.targetId, body.relation.value, body.strength, body.origin.value,
        body.note, request_id=request_id(request))
    return ok(request, result, 201)


@router.patch("/mappings/{mapping_id}")
def update_mapping(request: Request, principal: CurrentPrincipal, mapping_id: uuid.UUID,
                   body: MappingUpdate) -> Response:
    changes = {k: (v.value if hasattr(v, "value") else v) for k, v in body.model_dump(exclude_unset=True).items()
               if v is not None}
    if not changes:
        raise AppError("validation_error", "nothing to update",
                       details=[{"field": "body", "message": "send at least one field"}])
    return ok(request, container(request).frameworks.update_mapping(principal, mapping_id, changes,
                                                                    request_id=request_id(request)))


@router.delete("/mappings/{mapping_id}")
def delete_mapping(request: Request, principal: CurrentPrincipal, mapping_id: uuid.UUID) -> Response:
    container(request).frameworks.delete_mapping(principal, mapping_id, request_id=request_id(request))
    return ok(request, None)


@router.post("/mappings/import")
def import_mappings(request: Request, principal: CurrentPrincipal, file: Annotated[UploadFile, File()]) -> Response:
    """Import mappings from CSV; every bad line is reported and nothing is written."""
    require(principal, "frameworks.manage")
    return ok(request, container(request).frameworks.import_mappings(principal, _read_upload(file),
                                                                      request_id=request_id(request)))


@router.post("/mappings/derive")
def derive_mappings(request: Request, principal: CurrentPrincipal, body: DeriveRequest) -> Response:
    """Map controls with the same catalog id in two frameworks as equal (for example LOW -> MODERATE)."""
    return ok(request, container(request).frameworks.derive_equal(principal, body.source, body.target,
                                                                  request_id=request_id(request)))
