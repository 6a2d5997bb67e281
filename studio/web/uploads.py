"""Forms with files, for the pages: fields and any number of files in one multipart body.

The API takes one file per request (studio/documents/upload.py); a person filling in "new
evidence" picks several at once. The body is parsed as it streams in, with the same
pieces as the API: each file goes to its own storage writer through a PipelinedWriter,
its first bytes are checked (`check_head`) before more is stored, and the writer refuses
to grow past the upload limit. Nothing is committed here: the caller commits the files
only when the whole form is valid, and aborts every writer otherwise, so a refused file
leaves nothing behind.

Every problem with a file is collected rather than raised, so the page can list them all
beside the fields the person typed; only a missing or wrong CSRF token (checked before the
first file byte is stored: the hidden field comes first in the form) and a malformed body
end the request at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from studio.documents.detect import EXTENSIONS, LABEL, family, sniff
from studio.documents.names import BadFileName, clean_file_name, extension_of
from studio.documents.storage import ObjectTooLarge, PipelinedWriter, Writer
from studio.errors import AppError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELD_BYTES = 128 * 1024  # a description is at most 20,000 characters
MAX_FIELDS = 200
# What a file field takes, as the browser's file picker offers it (`accept`) and as the
# page says it before anything is sent.
ACCEPT = ".pdf,.docx,.xlsx,.csv,.txt,.text,.log,.md,.markdown,.json,.html,.htm,.png,.jpg,.jpeg"
ACCEPTED_TEXT = "PDF, Word (DOCX), Excel (XLSX), CSV, text, Markdown, JSON, HTML, PNG and JPEG"


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value >= 10 or value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


@dataclass(eq=False)
class ReceivedFile:
    """One file of the form, stored in a writer that is neither committed nor aborted yet."""

    name: str
    declared_type: str | None
    writer: Writer
    pipe: PipelinedWriter
    field: str
    checked: bool = False
    refused: bool = False


@dataclass
class ReceivedForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[ReceivedFile] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)
    status: int = 400  # of the first problem: 413 too large, 415 wrong kind, else 400

    def get(self, name: str) -> str:
        values = self.fields.get(name)
        return values[0] if values else ""

    def getlist(self, name: str) -> list[str]:
        return self.fields.get(name, [])

    def refuse(self, field_name: str, message: str, status: int = 400) -> None:
        if not self.problems:
            self.status = status
        self.problems.append({"field": field_name, "message": message})

    def abort(self) -> None:
        for f in self.files:
            f.writer.abort()  # a no-op for a writer already committed


def name_problem(file_name: str, head: bytes) -> str | None:
    """What is wrong with a file's name given its first bytes, said before it is stored.

    The processor decides for good from the whole file (studio/documents/detect.py); this
    catches the usual mistakes while the person is still on the page: an extension that is
    not accepted, or one that names another kind of file than the content is."""
    ext = extension_of(file_name)
    if not ext:
        return None
    claimed = EXTENSIONS.get(ext)
    if claimed is None:
        return f"files ending in .{ext} are not accepted; accepted are {ACCEPTED_TEXT}"
    kind = sniff(head)
    if kind is None or kind in ("svg", "xml"):
        return None  # check_head refuses these with its own message
    if kind == "zip":
        return None if claimed in ("docx", "xlsx") else (
            f"the file is a ZIP-based document but its name ends in .{ext}")
    if family(claimed) != family(kind):
        return f"the file is {LABEL.get(kind, 'another kind of file')} but its name ends in .{ext}"
    return None


class _Parts:
    """Parser callbacks: fields into a dict, each file part into a writer of its own."""

    def __init__(self, form: ReceivedForm, file_fields: frozenset[str], max_files: int,
                 new_writer: Callable[[], Writer], csrf_ok: Callable[[str], bool]):
        self.form = form
        self.file_fields = file_fields
        self.max_files = max_files
        self.new_writer = new_writer
        self.csrf_ok = csrf_ok
        self.csrf_checked = False
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[str, bytes] = {}
        self.field_name: str | None = None
        self.buffer = bytearray()
        self.file: ReceivedFile | None = None
        self.ended: list[ReceivedFile] = []
        self.skipping = False
        self.too_many = False

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
        self.field_name = None
        self.file = None
        self.skipping = False
        self.buffer = bytearray()

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).decode("latin-1").lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", errors="replace")
        if b"filename" not in options:
            if len(self.form.fields) >= MAX_FIELDS:
                raise AppError("validation_error", "the form has too many fields")
            self.field_name = name
            return
        if not self.csrf_checked:
            # The token comes first in every page's form: no byte of a forged upload is stored.
            raise AppError("csrf_failed", "the form has expired or did not come from this site; "
                                          "reload the page and try again")
        raw_name = options[b"filename"].decode("utf-8", errors="replace")
        self.skipping = True
        if name not in self.file_fields or not raw_name:
            return  # a file input left empty sends a part without a name: nothing chosen
        if len(self.form.files) >= self.max_files:
            if not self.too_many:
                self.form.refuse(name, f"Choose at most {self.max_files} files at once")
                self.too_many = True
            return
        try:
            clean = clean_file_name(raw_name)
        except BadFileName as exc:
            self.form.refuse(name, f"{raw_name[:80]}: {exc}")
            return
        declared = self.headers.get("content-type")
        writer = self.new_writer()
        self.file = ReceivedFile(clean, declared.decode("latin-1")[:255] if declared else None,
                                 writer, PipelinedWriter(writer), name)
        self.form.files.append(self.file)
        self.skipping = False

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.file is not None:
            if not self.file.refused:
                # The chunk is immutable bytes: a view of it is kept until written, not a copy.
                self.file.pipe.queue(memoryview(data)[start:end])
        elif self.field_name is not None and not self.skipping:
            self.buffer += data[start:end]
            if len(self.buffer) > MAX_FIELD_BYTES:
                raise AppError("validation_error", f"the form field {self.field_name!r} is too long")

    def on_part_end(self) -> None:
        if self.file is not None:
            self.ended.append(self.file)
        elif self.field_name is not None and not self.skipping:
            value = self.buffer.decode("utf-8", errors="replace")
            if self.field_name == "csrf" and not self.csrf_checked:
                if not self.csrf_ok(value):
                    raise AppError("csrf_failed", "the form has expired or did not come from "
                                                  "this site; reload the page and try again")
                self.csrf_checked = True
            self.form.fields.setdefault(self.field_name, []).append(value)
        self.file = None
        self.field_name = None


async def _settle(form: ReceivedForm, f: ReceivedFile, check_head: Callable[[Writer], None],
                  ended: bool, limit: int) -> None:
    """Move a file's gathered bytes on (all of them once its part ended) and check its head
    once; a refusal is recorded, the file's writer aborted and its further bytes dropped."""
    if f.refused:
        return
    try:
        if ended:
            await f.pipe.flush()
        elif not await f.pipe.ship():
            return
        else:
            await f.pipe.drain()
        if not f.checked:
            if ended and f.writer.size == 0:
                raise AppError("validation_error", "the file is empty")
            check_head(f.writer)
            problem = name_problem(f.name, f.writer.head)
            if problem:
                raise AppError("unsupported_media_type", problem)
            f.checked = True
    except ObjectTooLarge:
        await _refuse(form, f, f"larger than the upload limit of {human_size(limit)}", 413)
    except AppError as exc:
        await _refuse(form, f, exc.message, exc.status)


async def _refuse(form: ReceivedForm, f: ReceivedFile, message: str, status: int) -> None:
    f.refused = True
    await f.pipe.settle()  # drops what it gathered; no write outlives the abort below
    f.writer.abort()
    form.refuse(f.field, f"{f.name}: {message}", status)


async def receive_form(content_type: str | None, chunks: AsyncIterator[bytes], *,
                       new_writer: Callable[[], Writer], check_head: Callable[[Writer], None],
                       csrf_ok: Callable[[str], bool], limit: int, max_files: int,
                       file_fields: frozenset[str] = frozenset({"files"})) -> ReceivedForm:
    """Parse a multipart/form-data page form as it streams in (see the module's docstring)."""
    mime, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise AppError("unsupported_media_type", "the form must be sent as multipart/form-data")
    form = ReceivedForm()
    parts = _Parts(form, file_fields, max_files, new_writer, csrf_ok)
    try:
        parser = MultipartParser(boundary, parts.callbacks())
    except MultipartParseError as exc:
        raise AppError("validation_error", f"malformed form: {exc}") from exc
    try:
        async for chunk in chunks:
            try:
                parser.write(bytes(chunk))
            except MultipartParseError as exc:
                raise AppError("validation_error", f"malformed form: {exc}") from exc
            ended, parts.ended = parts.ended, []
            for f in ended:
                await _settle(form, f, check_head, True, limit)
            if parts.file is not None:
                await _settle(form, parts.file, check_head, False, limit)
        if parser.state != MultipartState.END:
            raise AppError("validation_error", "the form arrived incomplete; please send it again")
        if not parts.csrf_checked:
            raise AppError("csrf_failed", "the form has expired or did not come from this site; "
                                          "reload the page and try again")
    except BaseException:
        for f in form.files:
            await f.pipe.settle()
        form.abort()
        raise
    for f in form.files:
        await f.pipe.settle()
        if f.refused:
            f.writer.abort()
    form.files = [f for f in form.files if not f.refused]
    if form.problems:
        form.abort()
    return form
