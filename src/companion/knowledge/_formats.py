"""Turning files into documents: plain text, Markdown, HTML (through a real parser) and JSON lines."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

import orjson

from companion.knowledge._errors import InvalidDocument
from companion.knowledge._models import DocumentInput

__all__ = ["FORMATS", "Format", "detect_format", "html_to_text", "read_documents"]

Format = Literal["text", "markdown", "html", "jsonl"]
FORMATS: dict[str, Format] = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
# Elements whose content is never visible text.
_SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "head"})
# Elements that end a paragraph: their boundaries become blank lines for the chunker.
_BLOCKS = frozenset(
    "p div section article header footer aside nav main h1 h2 h3 h4 h5 h6 li ul ol table tr "
    "blockquote pre figure figcaption dl dt dd br hr form fieldset details summary".split()
)


def detect_format(path: Path) -> Format | None:
    """The format implied by the file's extension, or None when it is not one we read."""
    return FORMATS.get(path.suffix.lower())


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._skip_depth = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIPPED:
            self._skip_depth += 1
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIPPED:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._skip_depth:
            self.parts.append(data)


def html_to_text(markup: str) -> tuple[str, str | None]:
    """The visible text of an HTML document (paragraphs separated by blank lines) and its title."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" ?\n ?", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    title = " ".join("".join(parser.title_parts).split()) or None
    return text, title


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDocument(f"{source}: not valid UTF-8 (byte {exc.start})") from None


def read_documents(
    path: Path, fmt: Format | None = None, *, base: Path | None = None
) -> Iterator[DocumentInput]:
    """The documents in one file: one per file, or one per line for JSON lines.

    Ids are stable, so ingesting the same files again updates instead of duplicating: the path
    relative to `base` (the file name without it), and `path:line` for JSON lines without an id.
    """
    fmt = fmt or detect_format(path) or "text"
    text = _decode(path.read_bytes(), str(path))
    source = str(path)
    doc_id = str(path.relative_to(base)) if base is not None else path.name
    if fmt == "jsonl":
        yield from _jsonl_documents(text, source, doc_id)
        return
    title: str | None = None
    if fmt == "html":
        text, title = html_to_text(text)
    elif fmt == "markdown":
        heading = re.search(r"^#\s+(.+)$", text, re.M)
        title = heading.group(1).strip() if heading else None
    yield DocumentInput(text=text, id=doc_id, title=title or path.stem, source=source)


def _jsonl_documents(text: str, source: str, doc_id: str) -> Iterator[DocumentInput]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            row: Any = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise InvalidDocument(f"{where}: not valid JSON") from None
        if not isinstance(row, dict):
            raise InvalidDocument(f"{where}: each line must be a JSON object")
        body = row.get("text")
        if not isinstance(body, str):
            raise InvalidDocument(f"{where}: 'text' must be a string")
        metadata = row.get("metadata", {})
        if not isinstance(metadata, dict):
            raise InvalidDocument(f"{where}: 'metadata' must be a JSON object")
        row_id = row.get("id", row.get("_id"))
        yield DocumentInput(
            text=body,
            id=f"{doc_id}:{number}" if row_id is None else str(row_id),
            title=row.get("title") if isinstance(row.get("title"), str) else None,
            metadata=metadata,
            source=where,
        )
