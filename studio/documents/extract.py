"""Text extraction, bounded: time per file, pages, ZIP entries and unzipped bytes, text size."""

from __future__ import annotations

import codecs
import html
import json
import logging
import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nh3
from defusedxml import ElementTree as SafeET

log = logging.getLogger("studio.documents")


class ExtractionFailed(Exception):
    """Text could not be extracted; the message is for the uploader."""


@dataclass(frozen=True, slots=True)
class Limits:
    timeout_seconds: float = 60.0
    max_pages: int = 5000
    max_zip_entries: int = 2000
    max_unzipped_bytes: int = 256 * 1024 * 1024
    max_text_chars: int = 5_000_000
    # A ZIP entry that inflates more than this ratio (and past 1 MiB) is a bomb.
    max_ratio: int = 200

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(
            timeout_seconds=settings.processing_timeout_seconds,
            max_pages=settings.processing_max_pages,
            max_zip_entries=settings.processing_max_zip_entries,
            max_unzipped_bytes=settings.processing_max_unzipped_bytes,
            max_text_chars=settings.processing_max_text_chars,
        )


@dataclass(slots=True)
class Extraction:
    text: str
    page_count: int | None
    word_count: int
    truncated: bool
    note: str | None = None


class _Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.until = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.until - time.monotonic())

    def check(self) -> None:
        if time.monotonic() > self.until:
            raise ExtractionFailed(
                f"processing took longer than {self.seconds:g} seconds; "
                "the file is too large or too complex to read"
            )


class _Text:
    """Collects text up to the limit; words are counted over what was kept."""

    def __init__(self, limit: int):
        self.limit = limit
        self.parts: list[str] = []
        self.length = 0
        self.truncated = False

    def add(self, piece: str) -> None:
        if self.truncated or not piece:
            return
        room = self.limit - self.length
        if len(piece) > room:
            piece = piece[:room]
            self.truncated = True
        self.parts.append(piece)
        self.length += len(piece)

    def result(self, page_count: int | None, note: str | None = None) -> Extraction:
        text = "".join(self.parts).replace("\x00", "")
        return Extraction(text, page_count, len(text.split()), self.truncated, note)


def extract(path: Path, kind: str, limits: Limits) -> Extraction:
    """Extract text from a file already detected as `kind`."""
    deadline = _Deadline(limits.timeout_seconds)
    out = _Text(limits.max_text_chars)
    if kind == "pdf":
        return _pdf(path, limits, deadline, out)
    if kind == "docx":
        return _docx(path, limits, deadline, out)
    if kind == "xlsx":
        return _xlsx(path, limits, deadline, out)
    if kind in ("png", "jpeg"):
        return _image(path, deadline, out)
    raw = _read_text(path, limits.max_text_chars)
    if kind == "json":
        return _json(path, raw, deadline, out)
    if kind == "html":
        out.add(_html_text(raw))
        return out.result(None)
    out.add(raw)
    return out.result(None)


# -- PDF ---------------------------------------------------------------------------------
def _pdf(path: Path, limits: Limits, deadline: _Deadline, out: _Text) -> Extraction:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 2048))
        if b"%%EOF" not in handle.read():
            raise ExtractionFailed(
                "the PDF is truncated (it has no end-of-file marker); upload the complete file"
            )
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            # Owner-password-only PDFs open with the empty user password.
            try:
                opened = reader.decrypt("")
            except (FileNotDecryptedError, NotImplementedError, DependencyError) as exc:
                raise ExtractionFailed("the PDF is encrypted; upload an unprotected copy") from exc
            if not opened:
                raise ExtractionFailed("the PDF is password-protected; upload an unprotected copy")
        pages = len(reader.pages)
        if pages > limits.max_pages:
            raise ExtractionFailed(f"the PDF has {pages} pages; the limit is {limits.max_pages}")
        for number, page in enumerate(reader.pages, 1):
            deadline.check()
            out.add(page.extract_text() or "")
            out.add("\n\f\n" if number < pages else "\n")
            if out.truncated:
                break
    except ExtractionFailed:
        raise
    except (
        PdfReadError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,
        OSError,
        ZeroDivisionError,
    ) as exc:
        log.info("pdf_unreadable", extra={"error": repr(exc)})
        raise ExtractionFailed("the PDF is damaged and cannot be read") from exc
    return out.result(pages)


# -- ZIP-based Office formats ----------------------------------------------------------
def _open_office(path: Path, limits: Limits) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExtractionFailed("the document's ZIP container is damaged") from exc
    infos = archive.infolist()
    if len(infos) > limits.max_zip_entries:
        archive.close()
        raise ExtractionFailed(
            f"the document holds {len(infos)} parts; the limit is "
            f"{limits.max_zip_entries} (it may be a ZIP bomb)"
        )
    total = sum(info.file_size for info in infos)
    if total > limits.max_unzipped_bytes:
        archive.close()
        raise ExtractionFailed(
            f"the document unpacks to {total} bytes; the limit is "
            f"{limits.max_unzipped_bytes} (it may be a ZIP bomb)"
        )
    for info in infos:
        if info.file_size > 1024 * 1024 and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            archive.close()
            raise ExtractionFailed(
                f"the part {info.filename!r} is compressed more than "
                f"{limits.max_ratio}:1; the document looks like a ZIP bomb"
            )
    return archive


def _xml_events(archive: zipfile.ZipFile, name: str, deadline: _Deadline) -> Iterator[Any]:
    # ZipExtFile stops at the declared size, and the declared sizes were checked above,
    # so a lying header cannot make this read more than the limit.
    try:
        with archive.open(name) as member:
            for count, (_, element) in enumerate(
                SafeET.iterparse(member, events=("end",), forbid_dtd=True)
            ):
                if count % 2000 == 0:
                    deadline.check()
                yield element
    except (SafeET.ParseError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ExtractionFailed(f"the document part {name!r} is damaged") from exc
    except Exception as exc:  # defusedxml's DTD/entity refusals
        if type(exc).__module__.startswith("defusedxml"):
            raise ExtractionFailed(
                "the document uses XML entities or a DTD, which are refused"
            ) from exc
        raise


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _docx(path: Path, limits: Limits, deadline: _Deadline, out: _Text) -> Extraction:
    with _open_office(path, limits) as archive:
        for element in _xml_events(archive, "word/document.xml", deadline):
            name = _local(element.tag)
            if name == "t":
                out.add(element.text or "")
            elif name == "tab":
                out.add("\t")
            elif name in ("br", "cr", "p"):
                out.add("\n")
            if name == "p":
                element.clear()
        pages = None
        if "docProps/app.xml" in archive.namelist():
            for element in _xml_events(archive, "docProps/app.xml", deadline):
                if _local(element.tag) == "Pages" and (element.text or "").strip().isdigit():
                    pages = int(element.text.strip())
    if pages is not None and pages > limits.max_pages:
        raise ExtractionFailed(f"the document has {pages} pages; the limit is {limits.max_pages}")
    return out.result(pages)


def _xlsx(path: Path, limits: Limits, deadline: _Deadline, out: _Text) -> Extraction:
    with _open_office(path, limits) as archive:
        names = archive.namelist()
        shared: list[str] = []
        if "xl/sharedStrings.xml" in names:
            for element in _xml_events(archive, "xl/sharedStrings.xml", deadline):
                if _local(element.tag) == "si":
                    shared.append(
                        "".join(t.text or "" for t in element.iter() if _local(t.tag) == "t")
                    )
                    element.clear()
        sheets = sorted(
            (n for n in names if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n)),
            key=lambda n: int(re.sub(r"\D", "", n.rpartition("/")[2])),
        )
        if len(sheets) > limits.max_pages:
            raise ExtractionFailed(
                f"the workbook has {len(sheets)} sheets; the limit is {limits.max_pages}"
            )
        for sheet in sheets:
            for element in _xml_events(archive, sheet, deadline):
                name = _local(element.tag)
                if name == "c":
                    out.add(_cell_text(element, shared) + "\t")
                    element.clear()
                elif name == "row":
                    out.add("\n")
                    element.clear()
            if out.truncated:
                break
    return out.result(len(sheets))


def _cell_text(cell: Any, shared: list[str]) -> str:
    kind = cell.get("t")
    value = next((c.text or "" for c in cell if _local(c.tag) == "v"), "")
    if kind == "s":
        try:
            return shared[int(value)]
        except (ValueError, IndexError):
            return ""
    if kind == "inlineStr":
        return "".join(t.text or "" for t in cell.iter() if _local(t.tag) == "t")
    return value


# -- text formats --------------------------------------------------------------------------
TEXT_BLOCK = 1024 * 1024


def _read_text(path: Path, max_chars: int) -> str:
    """The file's first max_chars + 1 characters (one more shows the cut): UTF-8 decoded
    block by block, so a large file costs about the kept text, not 4 bytes per character."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pieces: list[str] = []
    count = 0
    with path.open("rb") as handle:
        try:
            while count <= max_chars:
                block = handle.read(TEXT_BLOCK)
                if not block:
                    break  # a cut through the last character is dropped, not a reason for cp1252
                piece = decoder.decode(block)
                pieces.append(piece)
                count += len(piece)
        except UnicodeDecodeError:
            # Not UTF-8: legacy 8-bit text, one character per byte.
            handle.seek(0)
            return handle.read(max_chars + 1).decode("cp1252", errors="replace")
    return "".join(pieces).removeprefix("\ufeff")


def _json(path: Path, raw: str, deadline: _Deadline, out: _Text) -> Extraction:
    complete = path.stat().st_size <= len(raw.encode("utf-8", errors="replace")) + 3
    try:
        value = json.loads(raw) if complete else None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ExtractionFailed(f"the JSON is not valid: {exc}") from exc
    if value is None and not complete:
        out.add(raw)
        return out.result(None, "the JSON is larger than the text limit; kept as plain text")
    stack = [value]
    seen = 0
    while stack and not out.truncated:
        item = stack.pop()
        seen += 1
        if seen % 10000 == 0:
            deadline.check()
        if isinstance(item, dict):
            for key, val in reversed(list(item.items())):
                stack.append(val)
                stack.append(str(key))
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif item is not None:
            out.add(f"{item}\n")
    return out.result(None)


def _html_text(raw: str) -> str:
    cleaned = nh3.clean(
        raw,
        tags=set(),
        clean_content_tags={"script", "style", "template", "noscript"},
        strip_comments=True,
    )
    text = html.unescape(cleaned)
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


# -- images ----------------------------------------------------------------------------------
OCR_UNAVAILABLE = "OCR unavailable: the tesseract program is not installed, so no text was read"


def _image(path: Path, deadline: _Deadline, out: _Text) -> Extraction:
    binary = shutil.which("tesseract")
    if binary is None:
        return out.result(1, OCR_UNAVAILABLE)
    try:
        done = subprocess.run(  # noqa: S603 - fixed program, our own temporary path
            [binary, str(path), "-"],
            capture_output=True,
            timeout=max(1.0, deadline.remaining()),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ExtractionFailed("reading the image's text (OCR) took too long") from exc
    if done.returncode != 0:
        raise ExtractionFailed("the image could not be read by OCR (it may be damaged)")
    out.add(done.stdout.decode("utf-8", errors="replace"))
    return out.result(1)
