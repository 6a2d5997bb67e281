"""HTTP endpoints of evidence files: streaming upload, listing, metadata, text, download."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response, StreamingResponse

from studio.documents.detect import MIME
from studio.documents.names import MAX_NAME_CHARS, BadFileName, clean_file_name, content_disposition
from studio.documents.service import DocumentService, check_head
from studio.documents.storage import ObjectNotFound, ObjectTooLarge, Storage, Writer
from studio.documents.upload import bad_name, parse_effective_date, stream_multipart, stream_raw
from studio.errors import AppError
from studio.http.api import (
    DATE_SCHEMA,
    CurrentPrincipal,
    DateQuery,
    PageParams,
    container,
    ok,
    page,
    request_id,
    strict_date,
)

# clean_file_name's rule as a pattern, so the OpenAPI document refuses what the API refuses:
# surrounding white space (str.strip's) is dropped; then no leading '.', no path, no quotes,
# no control, format or line/paragraph separator character (Unicode categories Cc, Cf, Zl, Zp,
# which include the bidirectional controls). Literal characters: every regex dialect reads them.
# tests/test_schemathesis.py checks these lists against the running Python's Unicode database.
FILE_NAME_SPACE = (0x09, 0x0D), (0x1C, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680), \
    (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)
FILE_NAME_FORBIDDEN = (0x00, 0x1F), (0x7F, 0x9F), (0xAD, 0xAD), (0x600, 0x605), (0x61C, 0x61C), \
    (0x6DD, 0x6DD), (0x70F, 0x70F), (0x890, 0x891), (0x8E2, 0x8E2), (0x180E, 0x180E), \
    (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF), \
    (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x13438), \
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F)


def _class(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


_SPACE = _class(FILE_NAME_SPACE)
_NOT_IN_NAME = '/\\\\"' + _class(FILE_NAME_FORBIDDEN)
_FIRST, _LAST = f"[^.{_SPACE}{_NOT_IN_NAME}]", f"[^{_SPACE}{_NOT_IN_NAME}]"
FILE_NAME_PATTERN = f"^[{_SPACE}]*{_FIRST}([^{_NOT_IN_NAME}]*{_LAST})?[{_SPACE}]*$"

router = APIRouter(tags=["evidence files"])

# Content types a download may carry; anything else (HTML included) is served as bytes.
DOWNLOAD_TYPES = frozenset(MIME.values()) - {"text/html"}

_UPLOAD_DOC: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "The stored revision (processing pending) and any revisions with "
        "identical content in the project."
    },
    400: {"description": "Empty file, bad file name, malformed body."},
    404: {"description": "No such evidence, or in a project you may not see."},
    409: {"description": "The evidence is in review or approved."},
    413: {"description": "Larger than STUDIO_MAX_UPLOAD_BYTES."},
    415: {"description": "Not an accepted file type."},
}


def _service(request: Request) -> DocumentService:
    return container(request).documents


async def _receive_file(
    request: Request, writer: Writer, receive: Any, validate: Any = None
) -> Any:
    """Run a streaming receive, turning storage limits into API errors; abort on any failure.

    `validate` checks what arrived with the file (form fields may follow the file part)
    before the object is committed, so a refusal leaves nothing behind."""
    svc = _service(request)
    try:
        result = await receive()
        checked = validate(result) if validate else None
        stored = await run_in_threadpool(svc.finish, writer)
    except ObjectTooLarge as exc:
        raise AppError(
            "payload_too_large", f"the file exceeds the upload limit of {exc.limit} bytes"
        ) from exc
    finally:
        writer.abort()  # no-op after a commit; removes every trace otherwise
    return checked, stored


def _effective_date(raw: str | None) -> dt.date | None:
    """The multipart field as the document states it: empty for none, or exactly YYYY-MM-DD
    (a date parser alone would also take 20260131 or padding)."""
    if raw:
        try:
            strict_date(raw)
        except ValueError as exc:
            raise AppError(
                "validation_error",
                "effectiveDate must be a date (YYYY-MM-DD)",
                details=[{"field": "effectiveDate", "message": "expected YYYY-MM-DD"}],
            ) from exc
    return parse_effective_date(raw)


@router.post(
    "/evidence/{evidence_id}/files",
    status_code=201,
    responses=_UPLOAD_DOC,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "effectiveDate": {
                                "description": "YYYY-MM-DD, or empty for none",
                                "anyOf": [DATE_SCHEMA, {"type": "string", "maxLength": 0}],
                            },
                        },
                    }
                }
            },
        }
    },
)
async def upload_file(
    request: Request, principal: CurrentPrincipal, evidence_id: uuid.UUID
) -> Response:
    """Upload a file (multipart/form-data, field 'file'); a known name makes a new revision."""
    svc = _service(request)
    await run_in_threadpool(svc.upload_target, principal, evidence_id)
    writer = await run_in_threadpool(svc.new_writer)
    (form, effective), stored = await _receive_file(
        request,
        writer,
        lambda: stream_multipart(
            request.headers.get("content-type"), request.stream(), writer, check_head
        ),
        lambda form: (form, _effective_date(form.fields.get("effectiveDate"))),
    )
    body = await run_in_threadpool(
        lambda: svc.record(
            principal,
            evidence_id,
            stored,
            file_name=form.file_name,
            declared_type=form.content_type,
            effective_date=effective,
            request_id=request_id(request),
        )
    )
    return ok(request, body, 201)


@router.put(
    "/evidence/{evidence_id}/files/raw",
    status_code=201,
    responses=_UPLOAD_DOC,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_raw(
    request: Request,
    principal: CurrentPrincipal,
    evidence_id: uuid.UUID,
    filename: Annotated[
        str,
        Query(
            # Documented, not enforced here: the handler refuses with a clearer message.
            json_schema_extra={"pattern": FILE_NAME_PATTERN, "maxLength": MAX_NAME_CHARS},
            description="The file's name: no path, no leading '.', no quotes, control or "
            "invisible formatting characters, at most 255 characters (also after Unicode "
            "NFC normalisation, which lengthens a few rare characters)",
        ),
    ],
    effective_date: Annotated[DateQuery | None, Query(alias="effectiveDate")] = None,
) -> Response:
    """Upload a file as the raw request body (for scripts with an API token)."""
    try:
        if len(filename) > MAX_NAME_CHARS:  # as sent, white space included, as documented
            raise BadFileName(f"the file name is longer than {MAX_NAME_CHARS} characters")
        name = clean_file_name(filename)
    except BadFileName as exc:
        raise bad_name(exc) from exc
    svc = _service(request)
    declared_length = request.headers.get("content-length", "")
    if declared_length.isdigit() and int(declared_length) > svc.max_upload_bytes:
        raise AppError(
            "payload_too_large",
            f"the file exceeds the upload limit of {svc.max_upload_bytes} bytes",
        )
    await run_in_threadpool(svc.upload_target, principal, evidence_id)
    writer = await run_in_threadpool(svc.new_writer)
    _, stored = await _receive_file(
        request, writer, lambda: stream_raw(request.stream(), writer, check_head)
    )
    declared = request.headers.get("content-type")
    body = await run_in_threadpool(
        lambda: svc.record(
            principal,
            evidence_id,
            stored,
            file_name=name,
            declared_type=declared,
            effective_date=effective_date,
            request_id=request_id(request),
        )
    )
    return ok(request, body, 201)


@router.get("/evidence/{evidence_id}/files")
def list_files(
    request: Request,
    principal: CurrentPrincipal,
    evidence_id: uuid.UUID,
    paging: PageParams,
) -> Response:
    """Every file revision of an evidence item, newest first, with its processing status."""
    items, cursor = _service(request).list_for_evidence(
        principal, evidence_id, cursor=paging.cursor, limit=paging.limit
    )
    return page(request, items, cursor)


@router.get("/files/{file_id}")
def get_file(request: Request, principal: CurrentPrincipal, file_id: uuid.UUID) -> Response:
    """One file revision: size, hash, detected type, processing status and counts."""
    return ok(request, _service(request).get(principal, file_id))


@router.get("/files/{file_id}/text")
def get_file_text(request: Request, principal: CurrentPrincipal, file_id: uuid.UUID) -> Response:
    """The text extracted from a file revision."""
    return ok(request, _service(request).text(principal, file_id))


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single byte range asked for (inclusive), None for the whole file.

    Unparseable or multi-range headers are ignored (RFC 9110 allows serving the whole
    representation); a syntactically valid range that cannot be satisfied raises 416.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


def _unsatisfiable(size: int) -> AppError:
    err = AppError(
        "range_not_satisfiable",
        f"the file has {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )
    return err


@router.get(
    "/files/{file_id}/content",
    responses={
        200: {
            "content": {"application/octet-stream": {}},
            "description": "The file, as an attachment.",
        },
        206: {"description": "The requested byte range."},
        307: {"description": "Redirect to a short-lived pre-signed URL (S3 with presigning on)."},
        404: {"description": "No such file, or in a project you may not see."},
        416: {"description": "The range lies outside the file."},
    },
)
def download_file(request: Request, principal: CurrentPrincipal, file_id: uuid.UUID) -> Response:
    """Download a file revision (Range requests supported)."""
    c = container(request)
    row = _service(request).for_download(principal, file_id)
    storage: Storage = c.storage
    media_type = (
        row["detected_type"]
        if row["detected_type"] in DOWNLOAD_TYPES
        else "application/octet-stream"
    )
    if c.settings.s3_presign_downloads:
        url = storage.presigned_url(
            row["storage_key"],
            filename=row["file_name"],
            content_type=media_type,
            expires_seconds=c.settings.s3_presign_ttl_seconds,
        )
        if url:
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    size = row["size"]
    selected = parse_range(request.headers.get("range"), size)
    start, end = selected if selected else (0, size - 1)
    try:
        chunks: Iterator[bytes] = storage.open(row["storage_key"], start, end)
    except ObjectNotFound as exc:
        raise AppError("not_found", "the file's content is missing from storage") from exc
    headers = {
        "Content-Disposition": content_disposition(row["file_name"]),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start + 1),
        "ETag": f'"{row["sha256"]}"',
        "Cache-Control": "private, no-store",
    }
    status = 200
    if selected:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(chunks, status_code=status, media_type=media_type, headers=headers)
