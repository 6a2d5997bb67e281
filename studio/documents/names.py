"""File names: what an uploader may call a file, and how a download names it safely."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

MAX_NAME_CHARS = 255


class BadFileName(ValueError):
    """A file name the API refuses; the message tells the uploader why."""


def clean_file_name(raw: str | None) -> str:
    """The name to store, or BadFileName.

    Names are rejected rather than silently rewritten when they carry something no
    legitimate file name needs: path parts, control or bidirectional-override characters
    (which can disguise 'invoice\u202efdp.exe' as 'invoiceexe.pdf'), or excessive length.
    """
    if raw is None:
        raise BadFileName("a file name is required")
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        raise BadFileName("a file name is required")
    if "/" in name or "\\" in name:
        raise BadFileName("the file name must not contain a path ('/' or '\\')")
    if '"' in name:
        # Also what a multipart header cut short by a raw line break looks like.
        raise BadFileName("the file name must not contain '\"'")
    if name in (".", "..") or name.startswith("."):
        raise BadFileName("the file name must not start with '.'")
    for ch in name:
        category = unicodedata.category(ch)
        if category == "Cc":
            raise BadFileName(f"the file name contains a control character (U+{ord(ch):04X})")
        if category in ("Cf", "Zl", "Zp") or unicodedata.bidirectional(ch) in (
            "RLO",
            "LRO",
            "RLE",
            "LRE",
            "PDF",
            "RLI",
            "LRI",
            "FSI",
            "PDI",
        ):
            raise BadFileName(
                f"the file name contains an invisible formatting character (U+{ord(ch):04X})"
            )
    if len(name) > MAX_NAME_CHARS:
        raise BadFileName(f"the file name is longer than {MAX_NAME_CHARS} characters")
    if len(name.encode("utf-8")) > 1020:
        raise BadFileName("the file name is too long")
    return name


def extension_of(name: str) -> str:
    _, dot, ext = name.rpartition(".")
    return ext.lower() if dot else ""


def ascii_fallback(name: str) -> str:
    """A plain-ASCII stand-in for old clients that ignore filename*."""
    decomposed = unicodedata.normalize("NFKD", name)
    out = []
    for ch in decomposed:
        if ch.isascii() and (ch.isalnum() or ch in "._- ()[]+,"):
            out.append(ch)
        elif not unicodedata.combining(ch):
            out.append("_")
    return "".join(out).strip() or "download"


def content_disposition(name: str) -> str:
    """`attachment` with an RFC 6266 / RFC 5987 filename* and an ASCII fallback."""
    return (
        f"attachment; filename=\"{ascii_fallback(name)}\"; filename*=UTF-8''{quote(name, safe='')}"
    )
