"""Benchmark rows of file parsing: a generated text PDF and Word file through `parse_file`, reported.

The figure is the time per page (per paragraph for the Word file); the note gives the rate, pages/s.
Both files are generated once, deterministically: the PDF by reportlab (the `bench` extra), about
2,900 characters of Zipf-drawn words a page in 48 lines, with an outline entry every 10 pages; the
Word file by python-docx, a heading every 10 paragraphs.
"""

from __future__ import annotations

import functools
import io
import random
import statistics
import time

from companion.bench._case import Case
from companion.errors import FeatureUnavailable
from companion.knowledge._parsing import parse_file

__all__ = ["cases"]

_GROUP = "documents"
_PAGES, _QUICK_PAGES = 200, 40
_LINES_PER_PAGE, _WORDS_PER_LINE = 48, 13
_VOCABULARY = 5000


def cases(*, quick: bool = False) -> list[Case]:
    """PDF pages per second (the issue's "PDF ingest" row) and Word paragraphs per second."""
    pages = _QUICK_PAGES if quick else _PAGES
    paragraphs = pages * 5
    return [
        Case(
            _GROUP,
            f"PDF ingest: parse a {pages}-page text PDF (PDFium), time per page "
            "(pages/s in the note)",
            ours=lambda: _Parse(make_pdf(pages), "bench.pdf", pages, "pages"),
            seed_figure="445 pages/s (pypdf 138, pdfminer.six 20, same PDF)",
            reported=True,
        ),
        Case(
            _GROUP,
            f"DOCX ingest: parse a {paragraphs}-paragraph Word file, time per paragraph "
            "(paragraphs/s in the note)",
            ours=lambda: _Parse(make_docx(paragraphs), "bench.docx", paragraphs, "paragraphs"),
            reported=True,
        ),
    ]


class _Parse:
    """One parse of the whole file per call; returns the time per unit (page or paragraph) in ns."""

    def __init__(self, data: bytes, filename: str, units: int, unit_name: str) -> None:
        self._data = data
        self._filename = filename
        self._units = units
        self._unit_name = unit_name
        self._rates: list[float] = []

    def __call__(self) -> float:
        started = time.perf_counter_ns()
        result = parse_file(self._data, filename=self._filename)
        per_unit_ns = (time.perf_counter_ns() - started) / self._units
        if result.problems or not result.documents:
            raise RuntimeError(f"the bench file did not parse cleanly: {result.problems}")
        self._rates.append(1e9 / per_unit_ns)
        return per_unit_ns

    def note(self) -> str:
        """The median rate."""
        rate = statistics.median(self._rates) if self._rates else 0.0
        return f"{rate:,.0f} {self._unit_name}/s"


def _lines(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible text, not a secret
    words = [f"w{rank}" for rank in range(1, _VOCABULARY + 1)]
    weights = [1 / rank for rank in range(1, _VOCABULARY + 1)]
    drawn = rng.choices(words, weights, k=count * _WORDS_PER_LINE)
    return [
        " ".join(drawn[start : start + _WORDS_PER_LINE])
        for start in range(0, len(drawn), _WORDS_PER_LINE)
    ]


@functools.cache
def make_pdf(pages: int) -> bytes:
    """A text PDF of `pages` pages, the same for the same count."""
    try:
        from reportlab.pdfgen import canvas  # type: ignore[import-untyped]
    except ImportError:
        raise FeatureUnavailable(
            "the documents bench writes its PDF with reportlab: pip install 'companion[bench]'"
        ) from None
    lines = _lines(pages * _LINES_PER_PAGE, seed=19)
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, invariant=True)
    for page in range(pages):
        if page % 10 == 0:
            pdf.bookmarkPage(f"part-{page}")
            pdf.addOutlineEntry(f"Part {page // 10 + 1}", f"part-{page}", level=0)
            pdf.drawString(72, 810, f"Part {page // 10 + 1}")
        text = pdf.beginText(72, 790)
        text.setFont("Helvetica", 9)
        for line in lines[page * _LINES_PER_PAGE : (page + 1) * _LINES_PER_PAGE]:
            text.textLine(line)
        pdf.drawText(text)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


@functools.cache
def make_docx(paragraphs: int) -> bytes:
    """A Word file of `paragraphs` paragraphs of 4 lines' words, a heading before every 10th."""
    try:
        import docx
    except ImportError:
        raise FeatureUnavailable(
            "the documents bench needs python-docx: pip install 'companion[documents]'"
        ) from None
    lines = _lines(paragraphs * 4, seed=20)
    document = docx.Document()
    for index in range(paragraphs):
        if index % 10 == 0:
            document.add_heading(f"Section {index // 10 + 1}", level=1 + (index // 10) % 2)
        document.add_paragraph(" ".join(lines[index * 4 : index * 4 + 4]))
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
