"""Streaming request bodies into a storage writer: raw bodies and multipart/form-data.

Neither path holds the file: chunks go to the writer as they arrive (batched per
ASYNC_BATCH, uncopied, and written from a worker thread). multipart/form-data is parsed with
python-multipart's streaming parser, not Starlette's request.form(), which would spool
the whole file to a temporary file before the handler could refuse it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from studio.documents.names import BadFileName, clean_file_name
from studio.documents.storage import PipelinedWriter, Writer
from studio.errors import AppError

if TYPE_CHECKING:
    # The parser's callback table; python-multipart defines it for type checkers only.
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELD_BYTES = 1024


def bad_name(exc: BadFileName) -> AppError:
    return AppError(
        "validation_error",
        f"invalid file name: {exc}",
        details=[{"field": "filename", "message": str(exc)}],
    )


def parse_effective_date(value: str | None) -> dt.date | None:
    if value is None or not value.strip():
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise AppError(
            "validation_error",
            "effectiveDate must be a date (YYYY-MM-DD)",
            details=[{"field": "effectiveDate", "message": "expected YYYY-MM-DD"}],
        ) from exc


async def stream_raw(
    chunks: AsyncIterator[bytes], writer: Writer, check_head: Callable[[Writer], None]
) -> None:
    """Write a raw body; `check_head` sees the first bytes once and may refuse them."""
    pipe = PipelinedWriter(writer)
    checked = False
    try:
        async for chunk in chunks:
            if await pipe.add(chunk) and not checked:
                await pipe.drain()
                check_head(writer)
                checked = True
        await pipe.flush()
    finally:
        await pipe.settle()
    if not checked:
        check_head(writer)


@dataclass
class MultipartUpload:
    file_name: str | None = None
    content_type: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


class _Parts:
    """Callback state for the streaming parser: routes the file part's bytes to `pipe`."""

    def __init__(self, allowed_fields: frozenset[str], pipe: PipelinedWriter):
        self.allowed_fields = allowed_fields
        self.result = MultipartUpload()
        self.pipe = pipe
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[str, bytes] = {}
        self.current: str | None = None  # "file", a field name, or None
        self.field_buffer = bytearray()
        self.files_seen = 0

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": lambda d, s, e: self.header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self.header_value.extend(d[s:e]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.headers = {}
        self.current = None
        self.field_buffer = bytearray()

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).decode("latin-1").lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", errors="replace")
        if b"filename" in options:
            if name != "file":
                raise AppError(
                    "validation_error",
                    f"unexpected file field {name!r}; send it as 'file'",
                    details=[{"field": name or "file", "message": "unknown field"}],
                )
            self.files_seen += 1
            if self.files_seen > 1:
                raise AppError(
                    "validation_error",
                    "send one file per request",
                    details=[{"field": "file", "message": "more than one file"}],
                )
            raw_name = options[b"filename"].decode("utf-8", errors="replace")
            try:
                self.result.file_name = clean_file_name(raw_name)
            except BadFileName as exc:
                raise bad_name(exc) from exc
            declared = self.headers.get("content-type")
            self.result.content_type = declared.decode("latin-1")[:255] if declared else None
            self.current = "file"
        elif name in self.allowed_fields:
            self.current = name
        else:
            raise AppError(
                "validation_error",
                f"unknown form field {name!r}",
                details=[{"field": name or "?", "message": "unknown field"}],
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.current == "file":
            # `data` is the received chunk (or the parser's boundary constant), both
            # immutable bytes: a view of it is kept until the batch is written, not a copy.
            self.pipe.queue(memoryview(data)[start:end])
        elif self.current is not None:
            self.field_buffer += data[start:end]
            if len(self.field_buffer) > MAX_FIELD_BYTES:
                raise AppError(
                    "validation_error",
                    f"the form field {self.current!r} is too long",
                    details=[{"field": self.current, "message": "too long"}],
                )

    def on_part_end(self) -> None:
        if self.current and self.current != "file":
            self.result.fields[self.current] = self.field_buffer.decode("utf-8", errors="replace")
        self.current = None


async def stream_multipart(
    content_type: str | None,
    chunks: AsyncIterator[bytes],
    writer: Writer,
    check_head: Callable[[Writer], None],
    allowed_fields: frozenset[str] = frozenset({"effectiveDate"}),
) -> MultipartUpload:
    """Parse multipart/form-data with one 'file' part, writing that part to `writer`."""
    mime, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise AppError(
            "unsupported_media_type",
            "send the file as multipart/form-data (field 'file'), or use "
            "PUT .../files/raw with the file as the body",
        )
    pipe = PipelinedWriter(writer)
    parts = _Parts(allowed_fields, pipe)
    try:
        parser = MultipartParser(boundary, parts.callbacks())
    except MultipartParseError as exc:
        raise AppError("validation_error", f"malformed multipart body: {exc}") from exc
    checked = False
    try:
        async for chunk in chunks:
            try:
                parser.write(bytes(chunk))  # no copy for bytes; the views above need bytes
            except MultipartParseError as exc:
                raise AppError("validation_error", f"malformed multipart body: {exc}") from exc
            if await pipe.ship() and not checked:
                await pipe.drain()
                check_head(writer)
                checked = True
        # The parser does not check that the closing boundary arrived; a cut-off body must
        # not be stored as if it were the whole file.
        if parser.state != MultipartState.END:
            raise AppError(
                "validation_error", "the multipart body is incomplete (no closing boundary)"
            )
        await pipe.flush()
    finally:
        await pipe.settle()
    if parts.result.file_name is None:
        raise AppError(
            "validation_error",
            "the form has no file",
            details=[{"field": "file", "message": "required"}],
        )
    if not checked:
        check_head(writer)
    return parts.result
