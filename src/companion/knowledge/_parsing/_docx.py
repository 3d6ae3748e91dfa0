"""DOCX: paragraphs and tables in document order through python-docx, one section per heading with its
heading path (`("Install", "On Debian")`). Word files have no page numbers until laid out, so none.

A heading is a paragraph whose style (or a style it is based on) is `Heading N`, or that has an
outline level, as Word's navigation pane decides. Headers, footers, comments and footnotes are left out.
Before python-docx unpacks anything, the zip's central directory is checked against the limits.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from companion.knowledge._errors import CorruptFile, FileTooLarge
from companion.knowledge._parsing._context import (
    DocumentBuilder,
    ParseContext,
    collapse_spaces,
    require,
)
from companion.knowledge._parsing._results import ParsedDocument

__all__ = ["parse_docx"]

_HEADING_STYLE = re.compile(r"heading\s*([1-9])", re.I)
_WORD_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_OUTLINE_LEVEL = f"./{{{_WORD_NS}}}pPr/{{{_WORD_NS}}}outlineLvl"
_VAL = f"{{{_WORD_NS}}}val"
_PARAGRAPH_STYLE = f"./{{{_WORD_NS}}}pPr/{{{_WORD_NS}}}pStyle"
_DEFAULT_STYLE = f"./{{{_WORD_NS}}}style[@{{{_WORD_NS}}}default='1']"
_STYLE_ID = f"{{{_WORD_NS}}}styleId"
_TYPE = f"{{{_WORD_NS}}}type"


def parse_docx(data: bytes, context: ParseContext) -> list[ParsedDocument]:
    """One document, one section per heading (and one for the text before the first)."""
    _check_archive(data, context)
    docx = require("docx", "DOCX")
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml and zip errors alike
        raise CorruptFile(
            f"{context.file}: not a readable Word document ({type(exc).__name__}: {exc})",
            details={"file": context.file},
        ) from None
    styles = _Styles(document)
    builder = DocumentBuilder(context)
    path: list[str] = []
    body: list[str] = []
    styled_title: str | None = None
    for number, block in enumerate(document.iter_inner_content(), start=1):
        if context.stopped or (number % 64 == 0 and not context.in_time(f"block {number}")):
            break
        if hasattr(block, "rows"):
            body.append(_table_text(block))
            continue
        text = collapse_spaces(block.text)
        if not text:
            continue
        level, style_name = styles.of(block._p)
        if level is None:
            if styled_title is None and style_name == "title":
                styled_title = text
            body.append(text)
            continue
        builder.add("\n\n".join(body), headings=tuple(h for h in path if h))
        del path[level - 1 :]
        path += [""] * (level - 1 - len(path))  # a Heading 3 straight under a Heading 1
        path.append(text)
        body = [text]
    builder.add("\n\n".join(body), headings=tuple(h for h in path if h))
    properties = document.core_properties
    metadata: dict[str, Any] = {}
    if properties.author:
        metadata["author"] = properties.author
    title = (properties.title or "").strip() or styled_title or context.stem
    return [builder.build(title=title, metadata=metadata)]


def _check_archive(data: bytes, context: ParseContext) -> None:
    """Refuse a zip bomb from its central directory: `zipfile` never inflates past these sizes."""
    limits = context.limits
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CorruptFile(
            f"{context.file}: not a readable Word document ({exc})", details={"file": context.file}
        ) from None
    if len(entries) > limits.max_zip_entries:
        raise FileTooLarge(
            f"{context.file}: the DOCX holds {len(entries):,} files; the limit is "
            f"{limits.max_zip_entries:,} (max_zip_entries)",
            details={"file": context.file},
        )
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > limits.max_unpacked_bytes:
        raise FileTooLarge(
            f"{context.file}: the DOCX unpacks to {unpacked:,} bytes; the limit is "
            f"{limits.max_unpacked_bytes:,} (max_unpacked_bytes)",
            details={"file": context.file},
        )


class _Styles:
    """Each paragraph style's heading level, worked out once per style.

    python-docx's `paragraph.style` scans every style for the default one, for each paragraph that
    has no style of its own (1 ms a paragraph, measured on a 1,000-paragraph file); this reads the
    style id from the paragraph's XML and looks it up in a table.
    """

    def __init__(self, document: Any) -> None:
        self._styles = {style.style_id: style for style in document.styles}
        self._default = next(
            (
                style.get(_STYLE_ID)
                for style in document.styles.element.findall(_DEFAULT_STYLE)
                if style.get(_TYPE) == "paragraph"
            ),
            None,
        )
        self._known: dict[str | None, tuple[int | None, str]] = {}

    def of(self, paragraph: Any) -> tuple[int | None, str]:
        """The paragraph's heading level (None for body text) and its style's name, lower-cased."""
        styled = paragraph.findall(_PARAGRAPH_STYLE)
        style_id = styled[0].get(_VAL) if styled else self._default
        if style_id not in self._known:
            self._known[style_id] = self._style_level(self._styles.get(style_id))
        level, name = self._known[style_id]
        own = _outline_level(paragraph)  # direct formatting wins over the style
        return (own or None, name) if own is not None else (level, name)

    @staticmethod
    def _style_level(style: Any) -> tuple[int | None, str]:
        """`Heading N` by name (its own or a base style's), else an outline level, else None."""
        name = str(getattr(style, "name", None) or "").lower()
        for _ in range(10):  # base styles can form a loop in a damaged file
            if style is None:
                break
            match = _HEADING_STYLE.fullmatch(str(style.name or ""))
            if match:
                return int(match.group(1)), name
            level = _outline_level(style.element)
            if level is not None:
                return level or None, name
            style = style.base_style
        return None, name


def _outline_level(element: Any) -> int | None:
    """The outline level of a paragraph or style (1-9), 0 for "body text", None when unset."""
    for node in element.findall(_OUTLINE_LEVEL):
        value = node.get(_VAL, "")
        if value.isdigit():
            return int(value) + 1 if int(value) < 9 else 0
    return None


def _table_text(table: Any) -> str:
    """One line per row, cells separated by ` | ` (merged cells once)."""
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(collapse_spaces(cell.text).split())
            if text and (not cells or cells[-1] != text):
                cells.append(text)
        if cells:
            lines.append(" | ".join(cells))
    return "\n".join(lines)
