"""What a file really is: magic bytes first, the name and declared type only as claims.

Only allowlisted kinds are accepted: PDF, DOCX, XLSX, CSV, plain text, Markdown, JSON,
HTML, PNG and JPEG. Everything else (executables, SVG, other archives, unknown binary)
is refused at upload (415) or fails processing with a reason a person can read.
"""

from __future__ import annotations

import codecs
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from studio.documents.names import extension_of

MIME = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv",
    "text": "text/plain",
    "markdown": "text/markdown",
    "json": "application/json",
    "html": "text/html",
    "png": "image/png",
    "jpeg": "image/jpeg",
}
LABEL = {
    "pdf": "a PDF document",
    "docx": "a Word document (DOCX)",
    "xlsx": "an Excel workbook (XLSX)",
    "csv": "a CSV file",
    "text": "a text file",
    "markdown": "a Markdown file",
    "json": "a JSON file",
    "html": "an HTML page",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "zip": "a ZIP archive",
    "svg": "an SVG image",
    "xml": "an XML file",
}
TEXT_KINDS = frozenset({"csv", "text", "markdown", "json", "html"})
EXTENSIONS = {
    "pdf": "pdf",
    "docx": "docx",
    "xlsx": "xlsx",
    "csv": "csv",
    "txt": "text",
    "text": "text",
    "log": "text",
    "md": "markdown",
    "markdown": "markdown",
    "json": "json",
    "html": "html",
    "htm": "html",
    "png": "png",
    "jpg": "jpeg",
    "jpeg": "jpeg",
}
DECLARED = {
    **{mime: kind for kind, mime in MIME.items()},
    "application/x-pdf": "pdf",
    "image/jpg": "jpeg",
    "image/pjpeg": "jpeg",
    "application/vnd.ms-excel": "csv",  # what Windows browsers declare for .csv
    "text/x-markdown": "markdown",
    "application/xhtml+xml": "html",
    "image/svg+xml": "svg",
    "application/zip": "zip",
    "text/xml": "xml",
    "application/xml": "xml",
}
ACCEPTED = frozenset(MIME)


def family(kind: str) -> str:
    return "text" if kind in TEXT_KINDS else kind


def label(kind: str) -> str:
    return LABEL.get(kind, "an unsupported kind of file")


def sniff(head: bytes) -> str | None:
    """The kind suggested by the first bytes: a kind of ACCEPTED, 'zip' (DOCX or XLSX,
    decided from the archive's entries), 'svg'/'xml' (refused), or None (unknown binary)."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    text = _as_text(head)
    if text is None:
        return None
    start = text.lstrip("\ufeff \t\r\n").lower()
    if start.startswith("<svg") or (start.startswith("<?xml") and "<svg" in start):
        return "svg"
    if start.startswith(("<!doctype html", "<html")) or any(
        tag in start[:2048] for tag in ("<html", "<head", "<body", "<script")
    ):
        return "html"
    if start.startswith("<?xml"):
        return "xml"
    if start.startswith(("{", "[")):
        return "json"
    return "text"


def _as_text(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        # final=False: a multi-byte character cut at the end of the head is not an error.
        return decoder.decode(head.removeprefix(codecs.BOM_UTF8), final=False)
    except UnicodeDecodeError:
        pass
    # Legacy 8-bit text (a CSV exported as Windows-1252): accepted when it has no control
    # bytes besides tab, line breaks and form feed, which binary formats always have.
    if any(b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D) for b in head):
        return None
    return head.decode("cp1252", errors="replace")


@dataclass(frozen=True, slots=True)
class Detection:
    kind: str
    mismatch: str | None  # what disagreed with the content, when something did


class Refused(Exception):
    """The file is not acceptable; the message is for the uploader."""


def detect(
    path: Path, file_name: str, declared: str | None, *, max_zip_entries: int = 2000
) -> Detection:
    """Decide the file's kind from its bytes; refuse disallowed kinds, polyglots and
    extensions that name another kind of file."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8192)
        handle.seek(max(0, size - 65536))
        tail = handle.read()
    if size == 0:
        raise Refused("the file is empty")
    kind = sniff(head)
    if kind is None:
        raise Refused(
            "the file is not one of the accepted types (PDF, DOCX, XLSX, CSV, text, "
            "Markdown, JSON, HTML, PNG, JPEG)"
        )
    if kind in ("svg", "xml"):
        raise Refused(
            f"{label(kind)} is not accepted: it can carry scripts and is not an "
            "evidence format; export it as PDF or PNG"
        )
    if kind == "zip":
        entries = zip_entry_count(tail)
        if entries is not None and entries > max_zip_entries:
            # Checked from the end record before zipfile reads the central directory,
            # which would build one object per entry.
            raise Refused(
                f"the document holds {entries} parts; the limit is {max_zip_entries} "
                "(it may be a ZIP bomb)"
            )
        kind = _office_kind(path)
    elif b"PK\x05\x06" in tail:
        # A ZIP directory at the end of a file that starts as something else: the file
        # reads as two different types depending on the reader (a polyglot).
        raise Refused(f"the file is both {label(kind)} and a ZIP archive; upload each separately")
    if kind in ("pdf", "png", "jpeg") and _has_markup(head):
        raise Refused(
            f"the file starts as {label(kind)} but carries HTML or script; "
            "it is refused as a polyglot"
        )

    ext = extension_of(file_name)
    mismatch = None
    if ext:
        claimed = EXTENSIONS.get(ext)
        if claimed is None:
            raise Refused(f"files ending in .{ext} are not accepted")
        if family(claimed) != family(kind):
            raise Refused(
                f"the file is {label(kind)} but its name ends in .{ext}; "
                "rename it or upload the right file"
            )
        if kind in TEXT_KINDS and claimed != kind:
            if kind == "text" or (kind == "json" and claimed in ("text", "markdown", "csv")):
                kind = claimed  # plain text with a more specific extension
            else:
                mismatch = f"the name ends in .{ext} but the content is {label(kind)}"
    declared_kind = DECLARED.get((declared or "").split(";")[0].strip().lower())
    if declared_kind and family(declared_kind) != family(kind):
        note = f"declared as {declared} but the content is {label(kind)}"
        mismatch = f"{mismatch}; {note}" if mismatch else note
    return Detection(kind, mismatch)


def zip_entry_count(tail: bytes) -> int | None:
    """The entry count a ZIP's end-of-central-directory record declares (ZIP64 included),
    or None when no such record is in the tail."""
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return None
    count: int
    (count,) = struct.unpack_from("<H", tail, at + 10)
    if count != 0xFFFF:
        return count
    at64 = tail.rfind(b"PK\x06\x06", 0, at)
    if at64 < 0 or len(tail) < at64 + 40:
        return None
    count64: int
    (count64,) = struct.unpack_from("<Q", tail, at64 + 32)
    return count64


def _has_markup(head: bytes) -> bool:
    lowered = head.lower()
    return any(marker in lowered for marker in (b"<script", b"<html", b"<!doctype html", b"<body"))


def _office_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise Refused(
            "the file looks like a ZIP-based document but the archive is damaged"
        ) from exc
    if "[Content_Types].xml" in names:
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
    raise Refused("ZIP archives are not accepted, only Word (DOCX) and Excel (XLSX) documents")
