"""HTTP endpoints of the frameworks domain: import, browse, search, mappings, neighbourhood."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.formparsers import MultiPartException
from starlette.responses import Response

from studio.domains.frameworks.schemas import (
    DeriveRequest,
    FrameworkDocument,
    FrameworkRef,
    MappingCreate,
    MappingFile,
    MappingUpdate,
)
from studio.domains.users.service import require
from studio.errors import AppError
from studio.http.api import (
    CurrentPrincipal,
    PositionPageParams,
    UuidPageParams,
    container,
    errors,
    ok,
    page,
    request_id,
)
from studio.validation import NO_NUL, VISIBLE, Input, Name

router = APIRouter(tags=["frameworks"])
MAX_IMPORT_BYTES = 50 * 1024 * 1024
FrameworkPath = Annotated[FrameworkRef, Path(description="The framework's id, key or name")]


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its $defs inlined (they would resolve against the document root)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(dict(defs[node["$ref"].rsplit("/", 1)[-1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


class Upload(NamedTuple):
    file_name: str
    content_type: str | None
    data: bytes
    fields: dict[str, Any]


class ImportFields(Input):
    key: Name | None = None
    name: Name | None = None
    version: Name | None = None


def _bad_form(field: str, message: str) -> AppError:
    return AppError("validation_error", f"{field}: {message}", details=[{"field": field, "message": message}])


async def _upload(request: Request, fields_model: type[Input] | None = None) -> Upload:
    """The one `file` part of a multipart body and its text fields, checked like a JSON body
    (unknown fields rejected) so the form means what the OpenAPI document says."""
    sent = request.headers.get("content-type") or ""
    if sent.partition(";")[0].strip().lower() != "multipart/form-data":
        raise AppError("unsupported_media_type", f"send the file as multipart/form-data (got {sent or 'none'})",
                       details=[{"field": "Content-Type", "message": "expected multipart/form-data"}])
    try:
        form = await request.form()
    except (MultiPartException, ValueError, KeyError) as exc:
        raise AppError("validation_error", f"malformed multipart body: {exc}") from exc
    try:
        return await _read_form(form, fields_model)
    finally:
        await form.close()


async def _read_form(form: Any, fields_model: type[Input] | None) -> Upload:
    file: StarletteUpload | str | None = None
    fields: dict[str, Any] = {}
    for name, value in form.multi_items():
        if name in fields or (name == "file" and file is not None):
            raise _bad_form(name, "sent more than once")
        if name == "file":
            file = value
        elif isinstance(value, StarletteUpload):
            raise _bad_form(name, "must be a text field, not a file")
        else:
            fields[name] = value
    if file is None:
        raise _bad_form("file", "the file part is required")
    if fields_model is not None:
        try:
            fields = fields_model.model_validate(fields).model_dump(exclude_none=True)
        except ValidationError as exc:
            e = exc.errors()[0]
            raise _bad_form(".".join(map(str, e["loc"])) or "body",
                            "unknown field" if e["type"] == "extra_forbidden" else e["msg"]) from exc
    elif fields:
        raise _bad_form(next(iter(fields)), "unknown field")
    if isinstance(file, str):  # a text part: its text is the file
        return Upload("upload", None, _checked(file.encode()), fields)
    data = await run_in_threadpool(file.file.read, MAX_IMPORT_BYTES + 1)
    return Upload(file.filename or "upload", file.content_type, _checked(data), fields)


def _checked(data: bytes) -> bytes:
    if len(data) > MAX_IMPORT_BYTES:
        raise AppError("payload_too_large", "framework files are limited to 50 MB")
    if not data:
        raise _bad_form("file", "the file is empty")
    return data


# The role is checked before a possibly large upload is read.
async def import_upload(request: Request, principal: CurrentPrincipal) -> Upload:
    require(principal, "frameworks.manage")
    return await _upload(request, ImportFields)


async def mappings_upload(request: Request, principal: CurrentPrincipal) -> Upload:
    require(principal, "frameworks.manage")
    return await _upload(request)


_TEXT_FIELD = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": VISIBLE}
def _file_upload_body(file_schema: dict[str, Any], description: str,
                      **fields: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI request body of a multipart upload: a required `file` part documented by
    `file_schema` (as JSON), plus optional text `fields`."""
    return {
        "required": True,
        "content": {"multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "additionalProperties": False,
                "properties": {
                    "file": {**_inline(file_schema), "description": description},
                    **fields,
                },
            },
            "encoding": {"file": {"contentType": "application/json"}},
        }},
    }


_IMPORT_BODY = _file_upload_body(
    FrameworkDocument.model_json_schema(),
    "The framework file. Shown here: the custom format as JSON (Content-Type "
    "application/json). Also accepted, by file name or Content-Type: OSCAL catalogs "
    "as .json, .yaml or .xml, the custom format as .yaml or .csv (docs/frameworks.md). "
    "Control refs are unique across the whole file, children included.",
    key={**_TEXT_FIELD, "description": "Framework key (default: from the name)"},
    name={**_TEXT_FIELD, "description": "Overrides the file's framework name"},
    version={**_TEXT_FIELD, "description": "Overrides the file's version"},
)
_MAPPINGS_BODY = _file_upload_body(
    MappingFile.model_json_schema(),
    "The mappings. Shown here: the rows as JSON (Content-Type application/json). "
    "Also accepted: the same columns as CSV with a header row (docs/frameworks.md).",
)


@router.post("/frameworks/import", status_code=201, openapi_extra={"requestBody": _IMPORT_BODY},
             responses={200: {"description": "The same file was imported before: nothing changed"}})
def import_framework(request: Request, principal: CurrentPrincipal,
                     upload: Annotated[Upload, Depends(import_upload)]) -> Response:
    """Import an OSCAL catalog (JSON, YAML, XML) or a custom CSV/YAML/JSON framework as a new version."""
    require(principal, "frameworks.manage")
    result = container(request).frameworks.import_file(
        principal, upload.file_name, upload.data, **upload.fields, content_type=upload.content_type,
        request_id=request_id(request))
    return ok(request, result, 200 if result["unchanged"] else 201)


@router.get("/frameworks")
def list_frameworks(request: Request, principal: CurrentPrincipal) -> Response:
    return ok(request, container(request).frameworks.list(principal))


@router.get("/frameworks/{framework}")
def show_framework(request: Request, principal: CurrentPrincipal, framework: FrameworkPath) -> Response:
    """A framework (by id or key) with its versions."""
    return ok(request, container(request).frameworks.show(principal, framework))


@router.get("/frameworks/{framework}/controls")
def list_controls(
    request: Request, principal: CurrentPrincipal, framework: FrameworkPath, paging: PositionPageParams,
    version_id: Annotated[uuid.UUID | None, Query(alias="versionId")] = None,
    q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL, description="words that must all appear in the control text")] = None,
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
def list_mappings(request: Request, principal: CurrentPrincipal, paging: UuidPageParams,
                  control_id: Annotated[uuid.UUID | None, Query(alias="controlId")] = None,
                  version_id: Annotated[uuid.UUID | None, Query(alias="versionId")] = None) -> Response:
    items, cursor = container(request).frameworks.list_mappings(
        principal, control_id=control_id, version_id=version_id, cursor=paging.cursor, limit=paging.limit)
    return page(request, items, cursor)


@router.post("/mappings", status_code=201, responses=errors(404))
def create_mapping(request: Request, principal: CurrentPrincipal, body: MappingCreate) -> Response:
    """Map one control onto another (sourceId and targetId differ)."""
    result = container(request).frameworks.create_mapping(
        principal, body.sourceId, body.targetId, body.relation.value, body.strength, body.origin.value,
        body.note, request_id=request_id(request))
    return ok(request, result, 201)


@router.patch("/mappings/{mapping_id}")
def update_mapping(request: Request, principal: CurrentPrincipal, mapping_id: uuid.UUID,
                   body: MappingUpdate) -> Response:
    changes = {k: (v.value if hasattr(v, "value") else v) for k, v in body.model_dump(exclude_unset=True).items()}
    return ok(request, container(request).frameworks.update_mapping(principal, mapping_id, changes,
                                                                    request_id=request_id(request)))


@router.delete("/mappings/{mapping_id}")
def delete_mapping(request: Request, principal: CurrentPrincipal, mapping_id: uuid.UUID) -> Response:
    container(request).frameworks.delete_mapping(principal, mapping_id, request_id=request_id(request))
    return ok(request, None)


@router.post("/mappings/import", openapi_extra={"requestBody": _MAPPINGS_BODY}, responses=errors(404))
def import_mappings(request: Request, principal: CurrentPrincipal,
                    upload: Annotated[Upload, Depends(mappings_upload)]) -> Response:
    """Import mappings from CSV or JSON; every bad row is reported and nothing is written."""
    return ok(request, container(request).frameworks.import_mappings(
        principal, upload.data, content_type=upload.content_type, request_id=request_id(request)))


@router.post("/mappings/derive", responses=errors(404))
def derive_mappings(request: Request, principal: CurrentPrincipal, body: DeriveRequest) -> Response:
    """Map controls with the same catalog id in two frameworks as equal (for example LOW -> MODERATE);
    source and target differ."""
    return ok(request, container(request).frameworks.derive_equal(principal, body.source, body.target,
                                                                  request_id=request_id(request)))
