"""PDF: the text of each page through PDFium (pypdfium2), one section per page with its page number and
the heading path of the PDF's outline (bookmarks) at that page.

Chosen over pypdf and pdfminer.six by measurement (docs/dependencies.md): on a 235-page text PDF 445
pages/s against 138 and 20, with the same text. PDFium is not thread-safe, not even across documents,
so one lock serialises every PDFium call in the process; it releases the GIL while it works.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from companion.knowledge._errors import CorruptFile, EncryptedPdf, ImageOnlyPdf
from companion.knowledge._parsing._context import DocumentBuilder, ParseContext, require
from companion.knowledge._parsing._results import ParsedDocument

__all__ = ["parse_pdf"]

_PDFIUM_LOCK = threading.Lock()
_MAX_OUTLINE_ENTRIES = 10_000
_MAX_OUTLINE_DEPTH = 8
_MIN_PART_CHARS = 16  # a shorter stretch before a heading on a page (a page number) joins it
# PDFium marks a word hyphenated at a line's end with \x02 before the line break: join the halves.
# Titles writers fill in on their own: the file's name says more.
_PLACEHOLDER_TITLE = re.compile(r"\s*(?:untitled\b|microsoft (?:word|powerpoint) - )", re.I)
_SOFT_HYPHEN = re.compile(r"\x02\r?\n?")


def parse_pdf(data: bytes, context: ParseContext) -> list[ParsedDocument]:
    """One document, one section per page that has text."""
    pdfium = require("pypdfium2", "PDF")
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise _open_error(pdfium, exc, context.file) from None
        try:
            return [_read(pdfium, pdf, context)]
        finally:
            pdf.close()


def _open_error(pdfium: Any, exc: Any, file: str) -> Exception:
    code = getattr(exc, "err_code", None)
    if code in (pdfium.raw.FPDF_ERR_PASSWORD, pdfium.raw.FPDF_ERR_SECURITY):
        return EncryptedPdf(
            f"{file}: the PDF is encrypted and needs a password to open; "
            "save an unencrypted copy and upload that",
            details={"file": file},
        )
    return CorruptFile(f"{file}: not a readable PDF ({exc})", details={"file": file})


def _read(pdfium: Any, pdf: Any, context: ParseContext) -> ParsedDocument:
    count = len(pdf)
    if count == 0:
        raise CorruptFile(f"{context.file}: the PDF has no pages", details={"file": context.file})
    pages = min(count, context.limits.max_pages)
    if count > pages:
        context.problem(
            f"the PDF has {count:,} pages; only the first {pages:,} were read (max_pages)"
        )
    outline = _outline(pdf, pages)
    builder = DocumentBuilder(context)
    images_only: list[int] = []
    headings: tuple[str, ...] = ()  # in force where the page starts
    for index in range(pages):
        if context.stopped or not context.in_time(f"page {index + 1} of {count}"):
            break
        text, has_images = _page_text(pdfium, pdf, index)
        marks = outline.get(index, [])
        for part, path in _split_page(text, marks, headings):
            builder.add(part, page=index + 1, headings=path)
        headings = marks[-1] if marks else headings
        if not text and has_images:
            images_only.append(index + 1)
    if builder.empty and not context.stopped:
        raise ImageOnlyPdf(
            f"{context.file}: no page has a text layer (a scanned or image-only PDF?); "
            "run OCR on it (for example ocrmypdf) and upload the result",
            details={"file": context.file},
        )
    if images_only:
        context.problem(
            f"page(s) {_ranges(images_only)} have images but no text layer (scanned?); "
            "their text is missing",
            page=images_only[0],
        )
    info = _info(pdf)
    metadata: dict[str, Any] = {"pages": count}
    if info.get("Author"):
        metadata["author"] = info["Author"]
    title = info.get("Title", "")
    if _PLACEHOLDER_TITLE.match(title):
        title = ""
    return builder.build(title=title or context.stem, metadata=metadata)


def _page_text(pdfium: Any, pdf: Any, index: int) -> tuple[str, bool]:
    """The page's text, cleaned, and whether it has image objects (looked for only without text)."""
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            raw = textpage.get_text_bounded()
        finally:
            textpage.close()
        text = _clean(raw)
        if text:
            return text, False
        images = page.get_objects(filter=(pdfium.raw.FPDF_PAGEOBJ_IMAGE,), max_depth=2)
        return "", next(iter(images), None) is not None
    finally:
        page.close()


def _clean(raw: str) -> str:
    text = _SOFT_HYPHEN.sub("", raw).replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _outline(pdf: Any, pages: int) -> dict[int, list[tuple[str, ...]]]:
    """The heading paths of the outline's bookmarks, by the page they point to, in outline order."""
    marks: dict[int, list[tuple[str, ...]]] = {}
    path: list[str] = []
    for number, bookmark in enumerate(pdf.get_toc(max_depth=_MAX_OUTLINE_DEPTH)):
        if number >= _MAX_OUTLINE_ENTRIES:
            break
        del path[bookmark.level :]
        path.append(" ".join(bookmark.get_title().split()))
        dest = bookmark.get_dest()
        target = dest.get_index() if dest is not None else None
        if target is not None and 0 <= target < pages and path[-1]:
            marks.setdefault(target, []).append(tuple(part for part in path if part))
    return marks


def _split_page(
    text: str, marks: list[tuple[str, ...]], inherited: tuple[str, ...]
) -> list[tuple[str, tuple[str, ...]]]:
    """The page cut where its bookmarks' titles start lines (a bookmark not found starts where
    the previous one did), each part with its heading path."""
    cuts = [(0, inherited)]
    position = 0
    for path in marks:
        words = r"\s+".join(re.escape(word) for word in path[-1].split())
        # The title at a line's start, perhaps after a number the bookmark leaves out ("2.3").
        found = re.compile(rf"^[^\S\n]*(?:[\w.]*\d[\w.]*[^\S\n]+)?{words}", re.M | re.I).search(
            text, position
        )
        position = found.start() if found else position
        cuts.append((position, path))
    ends = [start for start, _ in cuts[1:]] + [len(text)]
    parts = [(text[start:end], path) for (start, path), end in zip(cuts, ends, strict=True)]
    merged: list[tuple[str, tuple[str, ...]]] = []
    for part, path in parts:
        before = ""
        if merged and len(merged[-1][0].strip()) < _MIN_PART_CHARS:
            before = merged.pop()[0]  # a running header or page number joins what follows
        merged.append((before + part, path))
    return merged


def _info(pdf: Any) -> dict[str, str]:
    try:
        info = pdf.get_metadata_dict(skip_empty=True)
    except Exception:  # a damaged info dictionary costs the title, not the text
        return {}
    return {key: " ".join(str(value).split()) for key, value in info.items()}


def _ranges(numbers: list[int]) -> str:
    """`[1, 2, 3, 7]` as `1-3, 7`."""
    spans: list[str] = []
    start = previous = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        spans.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ", ".join(spans)
