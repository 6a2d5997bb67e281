"""Test files made in code: valid documents of each accepted kind and a hostile corpus.

Run `python -m tests.corpus OUTDIR` to write a hold-out set to a folder (for manual or
benchmark runs against a live server); the test suite builds the same files in memory.
"""

from __future__ import annotations

import io
import struct
import sys
import zipfile
import zlib
from pathlib import Path


def pdf(pages: list[str] | int = 1, *, words_per_page: int = 12) -> bytes:
    """A valid PDF with one line of text per page (hand-built, exact xref offsets)."""
    if isinstance(pages, int):
        pages = [" ".join(f"word{p}x{w}" for w in range(words_per_page)) for p in range(pages)]
    objects: list[bytes] = []
    count = len(pages)
    # 1 catalog, 2 pages, 3 font, then per page: page object, content stream.
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 11 Tf 40 750 Td ({escaped}) Tj ET".encode("latin-1", errors="replace")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def encrypted_pdf(password: str = "secret") -> bytes:  # noqa: S107 - a test fixture
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf(["confidential policy"]))))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def truncated_pdf() -> bytes:
    whole = pdf(3)
    return whole[: len(whole) // 2]


def _zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


CONTENT_TYPES = b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def docx(paragraphs: list[str], pages: int | None = None) -> bytes:
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    entries = {
        "[Content_Types].xml": CONTENT_TYPES,
        "word/document.xml": f'<w:document xmlns:w="{W}"><w:body>{body}</w:body></w:document>'.encode(),
    }
    if pages is not None:
        entries["docProps/app.xml"] = f"<Properties><Pages>{pages}</Pages></Properties>".encode()
    return _zip(entries)


def xlsx(rows: list[list[str]]) -> bytes:
    strings: list[str] = []
    sheet_rows = []
    for r, row in enumerate(rows, 1):
        cells = []
        for value in row:
            strings.append(value)
            cells.append(f'<c r="A{r}" t="s"><v>{len(strings) - 1}</v></c>')
        sheet_rows.append(f'<row r="{r}">{"".join(cells)}</row>')
    shared = "".join(f"<si><t>{s}</t></si>" for s in strings)
    return _zip(
        {
            "[Content_Types].xml": CONTENT_TYPES,
            "xl/workbook.xml": f'<workbook xmlns="{S}"><sheets><sheet name="A" sheetId="1"/></sheets></workbook>'.encode(),
            "xl/sharedStrings.xml": f'<sst xmlns="{S}">{shared}</sst>'.encode(),
            "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{S}"><sheetData>{"".join(sheet_rows)}</sheetData></worksheet>'.encode(),
        }
    )


def zip_bomb_docx(unpacked_bytes: int = 300 * 1024 * 1024) -> bytes:
    """A DOCX whose document part inflates from ~300 KiB to `unpacked_bytes` of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"\0" * (1024 * 1024)
            for _ in range(unpacked_bytes // len(block)):
                member.write(block)
    return buffer.getvalue()


def many_entries_docx(entries: int = 5000) -> bytes:
    files = {
        "[Content_Types].xml": CONTENT_TYPES,
        "word/document.xml": f'<w:document xmlns:w="{W}"><w:body/></w:document>'.encode(),
    }
    files.update({f"word/media/x{i}.bin": b"x" for i in range(entries)})
    return _zip(files, zipfile.ZIP_STORED)


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\0" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def jpeg() -> bytes:
    # SOI, a JFIF APP0 segment, EOI: enough for magic-byte detection.
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


def polyglot_pdf_zip() -> bytes:
    """A PDF with a ZIP archive appended: PDF readers and ZIP readers both accept it."""
    return pdf(["looks like a policy"]) + _zip({"payload.html": b"<script>alert(1)</script>"})


def polyglot_png_html() -> bytes:
    """A PNG signature followed by HTML: a sniffing browser could render it as a page."""
    return b"\x89PNG\r\n\x1a\n<html><script>alert(document.cookie)</script></html>"


HTML_WITH_SCRIPT = (
    b"<!doctype html><html><head><title>Access review</title>"
    b"<script>fetch('/steal?c='+document.cookie)</script><style>p{}</style></head>"
    b"<body><p>Quarterly access review completed</p>"
    b"<img src=x onerror=alert(1)></body></html>"
)
SVG_WITH_SCRIPT = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
    b"<script>alert(1)</script><rect width='10' height='10'/></svg>"
)
EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48


def hold_out() -> dict[str, bytes]:
    """The hostile and edge-case corpus, by file name."""
    return {
        "empty.pdf": b"",
        "truncated.pdf": truncated_pdf(),
        "encrypted.pdf": encrypted_pdf(),
        "bomb.docx": zip_bomb_docx(),
        "many-parts.docx": many_entries_docx(),
        "polyglot.pdf": polyglot_pdf_zip(),
        "polyglot.png": polyglot_png_html(),
        "lying-extension.pdf": png(),
        "script.html": HTML_WITH_SCRIPT,
        "script.svg": SVG_WITH_SCRIPT,
        "setup.exe.pdf": EXECUTABLE,
        "valid.pdf": pdf(3),
        "valid.docx": docx(["Access control policy", "Reviewed quarterly"], pages=1),
        "valid.xlsx": xlsx([["user", "role"], ["alice", "admin"]]),
        "valid.csv": b"user,role\nalice,admin\n",
        "valid.json": b'{"control": "AC-2", "result": "pass"}',
        "valid.md": b"# Policy\n\nAll access is reviewed.\n",
        "valid.png": png(),
        "valid.jpg": jpeg(),
    }


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "corpus")
    target.mkdir(parents=True, exist_ok=True)
    for name, data in hold_out().items():
        (target / name).write_bytes(data)
    print(f"wrote {len(hold_out())} files to {target}")
