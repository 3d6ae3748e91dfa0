"""Which format a file is: its first bytes when they are a PDF or a zip, else its declared content
type, else its extension, else a look at its text.

The content wins over the name: a PDF named `notes.txt` is read as a PDF, and a file named or declared
`.pdf` that does not start like one is `CorruptFile` rather than indexed as garbage text.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePath

from companion.knowledge._errors import CorruptFile, UnsupportedFormat
from companion.knowledge._parsing._results import Format

__all__ = [
    "CONTENT_TYPES",
    "EXTENSIONS",
    "claimed_format",
    "detect_format",
    "split_content_type",
]

CONTENT_TYPES: dict[str, Format] = {
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "csv",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/jsonlines": "jsonl",
    "text/plain": "text",
}
EXTENSIONS: dict[str, Format] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "text",
    ".text": "text",
}
# Types that say nothing about the content: the extension or the bytes decide. `text/plain` is
# what many clients send for any text file (a `.md` or `.csv` among them).
_VAGUE = frozenset({"", "application/octet-stream", "binary/octet-stream", "text/plain"})
# Binary formats we recognise only to say why they are refused.
_REFUSED: tuple[tuple[bytes, str], ...] = (
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "a legacy Office file (.doc, .xls, .ppt): save it as .docx",
    ),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "gzip-compressed: unpack it first"),
    (b"{\\rtf", "an RTF file: save it as .docx"),
)
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_HTML_START = re.compile(rb"\A\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S)


def split_content_type(value: str | None) -> tuple[str, str | None]:
    """`text/csv; charset=latin-1` as (`text/csv`, `latin-1`)."""
    if not value:
        return "", None
    media, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, raw = param.partition("=")
        if key.strip().lower() == "charset" and raw.strip():
            charset = raw.strip().strip('"').lower()
    return media.strip().lower(), charset


def claimed_format(*, filename: str | None, content_type: str | None) -> Format | None:
    """The format the declared content type or else the extension names (`text/plain` last)."""
    media, _ = split_content_type(content_type)
    declared = None if media in _VAGUE else CONTENT_TYPES.get(media)
    named = EXTENSIONS.get(PurePath(filename).suffix.lower()) if filename else None
    return declared or named or ("text" if media == "text/plain" else None)


def _zip_kind(data: bytes) -> str:
    """`docx` for a Word document, else what the zip is (for the refusal's message)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return "a damaged zip archive"
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        return "an Excel workbook (.xlsx): export it as CSV"
    if "ppt/presentation.xml" in names:
        return "a PowerPoint presentation (.pptx): export it as PDF"
    if "content.xml" in names:
        return "an OpenDocument file: save it as .docx or PDF"
    return "a zip archive: unpack it and upload its files"


def _sniff(data: bytes) -> str | None:
    """`pdf`, `docx`, a refusal's reason for other binary files, or None for text."""
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    for magic, reason in _REFUSED:
        if data.startswith(magic):
            return reason
    return None


def detect_format(
    data: bytes, *, filename: str | None = None, content_type: str | None = None
) -> Format:
    """The format to parse `data` as; `UnsupportedFormat` or `CorruptFile` when there is none."""
    file = filename or "upload"
    media, charset = split_content_type(content_type)
    claimed = claimed_format(filename=filename, content_type=content_type)
    sniffed = _sniff(data)
    if sniffed == "pdf":
        return "pdf"
    if sniffed == "docx":
        return "docx"
    if claimed in ("pdf", "docx"):
        expected = "%PDF-" if claimed == "pdf" else "a zip holding word/document.xml"
        found = f"it is {sniffed}" if sniffed else "it does not start with " + expected
        raise CorruptFile(
            f"{file}: named or declared {claimed.upper()}, but {found}", details={"file": file}
        )
    if sniffed is not None:
        raise UnsupportedFormat(f"{file}: {sniffed}", details={"file": file})
    if claimed is None and media not in _VAGUE:
        raise UnsupportedFormat(
            f"{file}: content type {media!r} is not one we read (PDF, DOCX, HTML, Markdown, text, "
            "CSV, JSON lines)",
            details={"file": file},
        )
    wide = (charset or "").startswith(("utf-16", "utf-32")) or data.startswith(_WIDE_BOMS)
    if b"\x00" in data[:8192] and not wide:
        raise UnsupportedFormat(f"{file}: binary content, not text", details={"file": file})
    if claimed is not None:
        return claimed
    return "html" if _HTML_START.match(data[:4096]) else "text"
