"""Documents from files: what one uploaded file gave, and the documents its parsed content becomes.

The parsers (`_parsing`) know formats; this module knows how a parsed file is stored: named by the
file (and line), with the file and format in its metadata, cut into parts between sections when it
is longer than a document may be, and how an HTML or Markdown text sent as JSON is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from companion.errors import CompanionError
from companion.knowledge._errors import InvalidDocument
from companion.knowledge._models import DocumentInput, DocumentSection
from companion.knowledge._parsing import ParsedDocument, ParseProblem, parse_file

__all__ = ["FileIngest", "document_from_content", "documents_from"]


@dataclass(frozen=True, slots=True)
class FileIngest:
    """What one file gave: its format, the documents written and unchanged (their ids), and every
    problem met (a bad row, a page without text, a document refused), by file, line and page."""

    file: str
    format: str | None
    document_ids: tuple[str, ...]
    written: int
    unchanged: int
    chunks_written: int
    problems: tuple[ParseProblem, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "file": self.file,
            "format": self.format,
            "document_ids": list(self.document_ids),
            "written": self.written,
            "unchanged": self.unchanged,
            "chunks_written": self.chunks_written,
            "problems": [problem.to_dict() for problem in self.problems],
        }


async def document_from_content(
    text: str,
    content_type: str,
    *,
    id: str | None = None,
    title: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    source: str | None = None,
) -> DocumentInput:
    """A document whose `text` is HTML, Markdown or plain text (`content_type`), parsed as an
    uploaded file of that type would be: visible text, title and headings kept as sections."""
    name = id or "document"
    try:
        parsed = await asyncio.to_thread(
            parse_file, text.encode("utf-8"), filename=name, content_type=content_type
        )
    except CompanionError as exc:
        raise InvalidDocument(f"{content_type} content: {exc.message}") from None
    if parsed.format not in ("html", "markdown", "text"):
        raise InvalidDocument(
            f"content_type {content_type!r} is read as {parsed.format}; send such files to "
            "`POST /v1/collections/{c}/files`"
        )
    if len(parsed.documents) != 1:
        problems = "; ".join(p.message for p in parsed.problems) or "no text"
        raise InvalidDocument(f"{content_type} content gave no document: {problems}")
    [document] = parsed.documents
    sections = tuple(
        DocumentSection(section.start_char, section.end_char, section.page, section.headings)
        for section in document.sections
    )
    extra = dict(metadata or {})
    return DocumentInput(document.text, id, title or document.title, extra, source, sections)


def documents_from(
    parsed: ParsedDocument, filename: str, fmt: str, extra: Mapping[str, Any], max_bytes: int
) -> list[DocumentInput]:
    """The documents to store for one parsed from `filename`, named by the file (and line).

    A document longer than `max_bytes` (a long PDF) is stored in parts, cut between sections and
    named `file#2`, `file#3`...: each part keeps its pages and headings.
    """
    doc_id = parsed.id or (filename if parsed.line is None else f"{filename}:{parsed.line}")
    metadata = {**parsed.metadata, **extra, "file": filename, "format": fmt}
    sections = [
        DocumentSection(section.start_char, section.end_char, section.page, section.headings)
        for section in parsed.sections
    ] or [DocumentSection(0, len(parsed.text))]
    parts: list[list[DocumentSection]] = [[]]
    size = 0
    for section in sections:
        length = len(parsed.text[section.start_char : section.end_char].encode())
        if parts[-1] and size + length > max_bytes:
            parts.append([])
            size = 0
        parts[-1].append(section)
        size += length
    documents = []
    for number, part in enumerate(parts, start=1):
        start, end = part[0].start_char, part[-1].end_char
        shifted = tuple(
            DocumentSection(x.start_char - start, x.end_char - start, x.page, x.headings)
            for x in part
        )
        name = doc_id if number == 1 else f"{doc_id}#{number}"
        extra_part = {**metadata, "part": number} if len(parts) > 1 else metadata
        text = parsed.text[start:end]
        documents.append(
            DocumentInput(
                text, name, parsed.title, extra_part, filename, shifted if parsed.sections else ()
            )
        )
    return documents
