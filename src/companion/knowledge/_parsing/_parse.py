"""Parsing one file: check its size, detect its format, hand it to that format's parser."""

from __future__ import annotations

import time
from collections.abc import Callable

from companion.knowledge._errors import FileTooLarge
from companion.knowledge._parsing._context import DocumentBuilder, ParseContext
from companion.knowledge._parsing._detect import (
    claimed_format,
    detect_format,
    split_content_type,
)
from companion.knowledge._parsing._docx import parse_docx
from companion.knowledge._parsing._html import parse_html
from companion.knowledge._parsing._markdown import parse_markdown
from companion.knowledge._parsing._pdf import parse_pdf
from companion.knowledge._parsing._records import parse_csv, parse_jsonl
from companion.knowledge._parsing._results import Format, ParsedDocument, ParseLimits, ParseResult

__all__ = ["parse_file"]

_DEFAULT_LIMITS = ParseLimits()


def _parse_text(data: bytes, context: ParseContext) -> list[ParsedDocument]:
    builder = DocumentBuilder(context)
    builder.add(context.decode(data).replace("\r\n", "\n").replace("\r", "\n"))
    return [builder.build(title=context.stem)]


_PARSERS: dict[Format, Callable[[bytes, ParseContext], list[ParsedDocument]]] = {
    "pdf": parse_pdf,
    "docx": parse_docx,
    "html": parse_html,
    "markdown": parse_markdown,
    "text": _parse_text,
    "csv": parse_csv,
    "jsonl": parse_jsonl,
}


def parse_file(
    data: bytes,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    limits: ParseLimits = _DEFAULT_LIMITS,
    clock: Callable[[], float] = time.monotonic,
) -> ParseResult:
    """The documents in one file, with the problems met on the way.

    Bad content is reported, never raised: a bad CSV row or JSON line, pages without text, the
    point where a limit stopped the reading. Only a file that yields nothing usable raises, with a
    typed error: `FileTooLarge` (413), `UnsupportedFormat` (415), `CorruptFile`, `EncryptedPdf`,
    `ImageOnlyPdf` (422), and `ParserUnavailable` (501) when the `documents` extra is missing.
    Parsing is CPU-bound and synchronous: from async code, call it in a worker thread.
    """
    file = filename or "upload"
    if len(data) > limits.max_file_bytes:
        raise FileTooLarge(
            f"{file}: {len(data):,} bytes; the limit is {limits.max_file_bytes:,} (max_file_bytes)",
            details={"file": file},
        )
    _, charset = split_content_type(content_type)
    context = ParseContext(file, charset=charset, limits=limits, clock=clock)
    if not data.strip():
        context.problem("the file is empty")
        claimed = claimed_format(filename=filename, content_type=content_type)
        return ParseResult(file, claimed or "text", (), context.all_problems())
    fmt = detect_format(data, filename=filename, content_type=content_type)
    documents = [doc for doc in _PARSERS[fmt](data, context) if doc.text.strip()]
    if not documents and not context.problems:
        context.problem("no text found")
    return ParseResult(file, fmt, tuple(documents), context.all_problems())
