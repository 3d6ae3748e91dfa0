"""Parsing real files of every format, generated here: sections with pages and heading paths, problems
with their line numbers, and the limits that bound one file."""

from __future__ import annotations

import io
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from companion.knowledge._errors import (
    CorruptFile,
    EncryptedPdf,
    FileTooLarge,
    ImageOnlyPdf,
    ParserUnavailable,
    UnsupportedFormat,
)
from companion.knowledge._parsing import (
    ParsedDocument,
    ParseLimits,
    ParseProblem,
    Section,
    detect_format,
    parse_file,
)

# -- generated files ---------------------------------------------------------------------------


def make_pdf(
    pages: list[str],
    *,
    outline: tuple[tuple[int, int, str], ...] = (),
    image_pages: tuple[int, ...] = (),
    encrypt: object = None,
    title: str | None = None,
) -> bytes:
    """A PDF written by reportlab: one string per page (lines split on newlines), bookmarks given as
    (page, level, title), and pages holding only an image."""
    from PIL import Image
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, encrypt=encrypt)
    if title:
        pdf.setTitle(title)
    for number, text in enumerate(pages, start=1):
        for mark_page, level, heading in outline:
            if mark_page == number:
                key = f"{number}-{heading}"
                pdf.bookmarkPage(key)
                pdf.addOutlineEntry(heading, key, level=level)
        y = 800
        for line in text.split("\n"):
            pdf.drawString(72, y, line)
            y -= 14
        if number in image_pages:
            pdf.drawInlineImage(Image.new("RGB", (40, 40), (200, 30, 30)), 72, 400, 200, 200)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def make_docx() -> bytes:
    """A Word file with a title, nested headings, a table and a custom outline-level heading style."""
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    document = docx.Document()
    document.core_properties.title = "Operator handbook"
    document.add_paragraph("Read this first.")
    document.add_heading("Install", level=1)
    document.add_paragraph("Get the package from the registry.")
    document.add_heading("On Debian", level=2)
    document.add_paragraph("apt install companion")
    table = document.add_table(rows=2, cols=2)
    for row, (name, value) in zip(
        table.rows, [("setting", "default"), ("port", "8000")], strict=True
    ):
        row.cells[0].text, row.cells[1].text = name, value
    document.add_heading("On macOS", level=2)
    document.add_paragraph("brew install companion")
    chapter = document.styles.add_style("Chapter", WD_STYLE_TYPE.PARAGRAPH)
    level = OxmlElement("w:outlineLvl")
    level.set(qn("w:val"), "0")
    chapter.element.get_or_add_pPr().append(level)
    document.add_paragraph("Configure", style="Chapter")
    document.add_paragraph("Settings come from the environment.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


HTML = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Tides guide</title>
<style>body { color: red }</style><script>var tracking = "tracking script";</script></head>
<body>
<header><a href="/">Home</a> | <a href="/about">About</a></header>
<nav><ul><li>Menu item</li><li>Another menu item</li></ul></nav>
<article>
<h1>The Moon</h1>
<p>The Moon orbits the Earth every 27.3 days.</p>
<h2>Tides</h2>
<p>It causes the <b>tides</b>, twice a day.<br>Spring tides are strongest.</p>
<script>document.write("injected")</script>
<h3>Neap tides</h3>
<table><tr><th>kind</th><th>range</th></tr><tr><td>neap</td><td>small</td></tr></table>
<pre>line one
    indented line</pre>
<div hidden>secret hidden text</div>
<h2>Eclipses</h2>
<p>Sometimes the Moon hides the Sun.</p>
</article>
<footer>Copyright footer text</footer>
</body></html>"""

MARKDOWN = b"""---
title: Field guide
tags: [birds, field]
year: 2024
published: 2024-05-01
---
Preamble before any heading.

# Birds

Birds have feathers.

## Owls

Owls hunt at night.

```sh
# not a heading, a shell comment
```

### Barn owl

The barn owl has a pale face.

Setext section
--------------

Underlined headings count too.
"""


def pdf_result(data: bytes, **kwargs: object) -> tuple[ParsedDocument, tuple[ParseProblem, ...]]:
    result = parse_file(data, filename="doc.pdf", **kwargs)  # type: ignore[arg-type]
    assert result.format == "pdf"
    [document] = result.documents
    return document, result.problems


def assert_spans(document: ParsedDocument) -> None:
    for section in document.sections:
        assert document.text[section.start_char : section.end_char] == section.text


# -- PDF ---------------------------------------------------------------------------------------


def test_pdf_pages_become_sections_with_page_numbers_and_outline_headings() -> None:
    pages = [f"Page {n} talks about topic{n}.\nA second line on page {n}." for n in range(1, 6)]
    outline = ((1, 0, "Introduction"), (3, 0, "Usage"), (4, 1, "Advanced"))
    document, problems = pdf_result(make_pdf(pages, outline=outline, title="The manual"))
    assert problems == ()
    assert document.title == "The manual"
    assert document.metadata["pages"] == 5
    assert [s.page for s in document.sections] == [1, 2, 3, 4, 5]
    assert [s.headings for s in document.sections] == [
        ("Introduction",),
        ("Introduction",),
        ("Usage",),
        ("Usage", "Advanced"),
        ("Usage", "Advanced"),
    ]
    assert "topic4" in document.sections[3].text
    assert "topic4" not in document.sections[2].text
    assert_spans(document)
    assert document.section_at(document.sections[2].start_char + 3) == document.sections[2]
    assert document.section_at(document.sections[0].end_char) is None  # the blank line between


def test_pdf_page_is_cut_where_its_bookmarks_titles_start_lines() -> None:
    pages = ["Preface text.", "3\nend of the preface.\n2.1 Install\nGet it.\nConfigure\nSet it."]
    outline = ((1, 0, "Preface"), (2, 0, "Install"), (2, 0, "Configure"))
    document, _ = pdf_result(make_pdf(pages, outline=outline))
    assert [(s.page, s.headings, s.text) for s in document.sections] == [
        (1, ("Preface",), "Preface text."),
        (2, ("Preface",), "3\nend of the preface."),
        (2, ("Install",), "2.1 Install\nGet it."),
        (2, ("Configure",), "Configure\nSet it."),
    ]
    assert_spans(document)


def test_pdf_without_title_is_named_after_its_file() -> None:
    document, _ = pdf_result(make_pdf(["Some text."]))
    assert document.title == "doc"


def test_encrypted_pdf_says_so() -> None:
    with pytest.raises(EncryptedPdf, match="encrypted and needs a password"):
        parse_file(make_pdf(["Secret page."], encrypt="secret"), filename="locked.pdf")


def test_pdf_restricted_by_an_owner_password_only_is_read() -> None:
    from reportlab.lib.pdfencrypt import StandardEncryption

    restricted = StandardEncryption("", ownerPassword="owner", canPrint=0, canCopy=0)
    document, _ = pdf_result(make_pdf(["Readable though restricted."], encrypt=restricted))
    assert "Readable though restricted." in document.text


def test_image_only_pdf_says_it_has_no_text_layer() -> None:
    data = make_pdf(["", ""], image_pages=(1, 2))
    with pytest.raises(ImageOnlyPdf, match="no page has a text layer") as caught:
        parse_file(data, filename="scan.pdf")
    assert caught.value.status == 422
    assert "OCR" in str(caught.value)


def test_pdf_pages_that_are_only_images_are_reported_and_the_rest_kept() -> None:
    data = make_pdf(["Text on one.", "", "", "Text on four."], image_pages=(2, 3))
    document, problems = pdf_result(data)
    assert [s.page for s in document.sections] == [1, 4]
    [problem] = problems
    assert problem.page == 2
    assert "page(s) 2-3 have images but no text layer" in problem.message


def test_pdf_beyond_max_pages_is_read_up_to_the_limit() -> None:
    data = make_pdf([f"page {n}" for n in range(1, 8)])
    document, problems = pdf_result(data, limits=ParseLimits(max_pages=3))
    assert [s.page for s in document.sections] == [1, 2, 3]
    assert document.metadata["pages"] == 7
    assert "only the first 3 were read (max_pages)" in problems[0].message


class TickingClock:
    """One second passes at every reading of the clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_pdf_reading_stops_at_the_time_limit() -> None:
    data = make_pdf([f"page {n}" for n in range(1, 6)])
    document, problems = pdf_result(
        data, limits=ParseLimits(time_limit_s=2.5), clock=TickingClock()
    )
    assert [s.page for s in document.sections] == [1, 2]
    assert "at page 3 of 5 (time_limit_s=2.5)" in problems[0].message


def test_damaged_pdf_is_corrupt() -> None:
    data = make_pdf(["whole"])[:400]
    with pytest.raises(CorruptFile, match="not a readable PDF"):
        parse_file(data, filename="cut.pdf")


def test_pdfs_parse_correctly_from_many_threads() -> None:
    files = [make_pdf([f"file {f} page {p}" for p in range(1, 4)]) for f in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda data: parse_file(data, filename="x.pdf"), files * 5))
    for index, result in enumerate(results):
        assert f"file {index % 4} page 3" in result.documents[0].text


# -- DOCX --------------------------------------------------------------------------------------


def test_docx_sections_carry_their_heading_path() -> None:
    result = parse_file(make_docx(), filename="handbook.docx")
    assert result.format == "docx"
    assert result.problems == ()
    [document] = result.documents
    assert document.title == "Operator handbook"
    by_path = {s.headings: s.text for s in document.sections}
    assert list(by_path) == [(), ("Install",), ("Install", "On Debian"), ("Install", "On macOS"),
                             ("Configure",)]  # fmt: skip
    assert by_path[()] == "Read this first."
    assert by_path[("Install", "On Debian")] == (
        "On Debian\n\napt install companion\n\nsetting | default\nport | 8000"
    )
    assert by_path[("Configure",)] == "Configure\n\nSettings come from the environment."
    assert all(s.page is None for s in document.sections)
    assert_spans(document)


def _zip_with(data: bytes, extra: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            target.writestr(item, source.read(item))
        for name, content in extra.items():
            target.writestr(name, content)
    return buffer.getvalue()


def test_docx_zip_bomb_is_refused_before_unpacking() -> None:
    bomb = _zip_with(make_docx(), {"word/media/bomb.bin": bytes(20 * 2**20)})
    assert len(bomb) < 200_000  # 20 MiB of zeros deflate to about 20 KiB
    with pytest.raises(FileTooLarge, match=r"unpacks to 2.*max_unpacked_bytes"):
        parse_file(bomb, filename="bomb.docx", limits=ParseLimits(max_unpacked_bytes=2**20 * 10))
    many = _zip_with(make_docx(), {f"word/media/{n}.bin": b"" for n in range(100)})
    with pytest.raises(FileTooLarge, match="max_zip_entries"):
        parse_file(many, filename="many.docx", limits=ParseLimits(max_zip_entries=50))


def test_docx_that_is_not_a_zip_is_corrupt() -> None:
    with pytest.raises(CorruptFile, match="DOCX"):
        parse_file(b"just some words", filename="report.docx")


# -- HTML --------------------------------------------------------------------------------------


def test_html_keeps_visible_text_under_its_headings() -> None:
    result = parse_file(HTML, filename="moon.html")
    [document] = result.documents
    assert document.title == "Tides guide"
    assert document.metadata == {"lang": "en"}
    for junk in ("tracking", "injected", "Menu item", "Home", "color", "secret hidden", "footer"):
        assert junk not in document.text, junk
    by_path = {s.headings: s.text for s in document.sections}
    assert list(by_path) == [
        ("The Moon",),
        ("The Moon", "Tides"),
        ("The Moon", "Tides", "Neap tides"),
        ("The Moon", "Eclipses"),
    ]
    assert by_path[("The Moon", "Tides")] == (
        "Tides\n\nIt causes the tides, twice a day.\nSpring tides are strongest."
    )
    assert by_path[("The Moon", "Tides", "Neap tides")] == (
        "Neap tides\n\nkind | range\n\nneap | small\n\nline one\n    indented line"
    )
    assert_spans(document)


def test_html_uses_its_declared_charset_and_main_element() -> None:
    markup = (
        '<html><head><meta charset="iso-8859-1"></head><body><div>Sidebar</div>'
        "<main><p>Caf\xe9 cr\xe8me</p></main></body></html>"
    ).encode("latin-1")
    [document] = parse_file(markup, filename="cafe.htm").documents
    assert document.text == "Café crème"
    assert document.title == "cafe"


# -- Markdown ----------------------------------------------------------------------------------


def test_markdown_headings_nest_and_front_matter_is_metadata() -> None:
    result = parse_file(MARKDOWN, filename="birds.md")
    assert result.problems == ()
    [document] = result.documents
    assert document.title == "Field guide"
    assert document.metadata == {
        "tags": ["birds", "field"],
        "year": 2024,
        "published": "2024-05-01",
    }
    assert "title:" not in document.text
    assert [s.headings for s in document.sections] == [
        (),
        ("Birds",),
        ("Birds", "Owls"),
        ("Birds", "Owls", "Barn owl"),
        ("Birds", "Setext section"),
    ]
    owls = document.sections[2].text
    assert owls.startswith("## Owls")
    assert "# not a heading" in owls
    assert_spans(document)


TRICKY_MARKDOWN = """\
Title
=====
    # indented: code, no heading
~~~
# in a tilde fence
~~~
<!--
# in an HTML comment
-->
- a list item
  # inside the item: no top-level heading
> # quoted heading

Paragraph line
continued
---
#NoSpace is a paragraph
## [Linked `code` **bold**](http://x) ![badge](b.svg) ##
#
"""


@pytest.mark.parametrize("name", ["tricky", "docs"])
def test_markdown_headings_agree_with_a_commonmark_parser(name: str) -> None:
    from markdown_it import MarkdownIt

    from companion.knowledge._parsing._markdown import find_headings

    root = Path(__file__).parents[2]
    texts = [MARKDOWN.decode(), TRICKY_MARKDOWN]
    if name == "docs":
        texts = [path.read_text() for path in sorted([*root.glob("*.md"), *root.glob("docs/*.md")])]
    parser = MarkdownIt("commonmark")
    for text in texts:
        tokens = parser.parse(text)
        expected = []
        for index, token in enumerate(tokens):
            if token.type == "heading_open" and token.level == 0 and token.map:
                words = "".join(
                    " " if child.type == "softbreak" else child.content
                    for child in tokens[index + 1].children or []
                    if child.type in ("text", "code_inline", "softbreak")
                )
                if words.strip():
                    expected.append((token.map[0], int(token.tag[1]), " ".join(words.split())))
        assert find_headings(text.split("\n")) == expected
    if name == "tricky":
        assert [title for _, _, title in expected] == [
            "Title", "Paragraph line continued", "Linked code bold"
        ]  # fmt: skip


def test_markdown_with_bad_front_matter_reports_it_and_keeps_the_text() -> None:
    data = b"---\ntitle: [unclosed\n---\n# Heading\n\nBody.\n"
    result = parse_file(data, filename="notes.md")
    [document] = result.documents
    assert document.title == "Heading"
    [problem] = result.problems
    assert problem.line == 2
    assert "front matter is not valid YAML" in problem.message


# -- CSV and JSON lines --------------------------------------------------------------------------


def test_csv_rows_are_documents_and_bad_rows_are_reported_with_their_line() -> None:
    data = (
        b"id,title,text,year,zip\n"
        b"a1,Leave,Employees get 25 days of leave.,2024,01234\n"
        b"a2,Broken,too,many,fields,here\n"
        b'a3,Quoted,"Expenses, receipts and\nreimbursement",2023,99\n'
        b"a4,Empty,,2022,1\n"
        b"a5,Last,Bonuses are paid in March.,2021,7\n"
    )
    result = parse_file(data, filename="policies.csv")
    ids = [doc.id for doc in result.documents]
    assert ids == ["a1", "a3", "a5"]
    first = result.documents[0]
    assert first.title == "Leave"
    assert first.text == "Employees get 25 days of leave."
    assert first.metadata == {"year": 2024, "zip": "01234"}
    assert first.line == 2
    assert result.documents[1].text == "Expenses, receipts and\nreimbursement"
    assert result.documents[2].line == 7
    assert [(p.file, p.line) for p in result.problems] == [("policies.csv", 3), ("policies.csv", 6)]
    assert "6 fields, the header 5" in result.problems[0].message
    assert "'text' column is empty" in result.problems[1].message


def test_csv_without_text_column_reads_rows_as_records() -> None:
    data = b"name;price;in stock\nkettle;19.90;true\nteapot;25;false\n"
    result = parse_file(data, filename="products.csv")
    assert [d.text for d in result.documents] == [
        "name: kettle\nprice: 19.90\nin stock: true",
        "name: teapot\nprice: 25\nin stock: false",
    ]
    assert result.documents[0].metadata == {"name": "kettle", "price": 19.9, "in stock": True}


def test_csv_open_quote_does_not_swallow_the_rest() -> None:
    data = b'text,n\n"an open quote,1\ngood row,2\nanother good row,3\n'
    result = parse_file(data, filename="q.csv")
    assert [d.text for d in result.documents] == ["good row", "another good row"]
    assert [p.line for p in result.problems] == [2]


def test_jsonl_bad_lines_are_reported_and_the_rest_kept() -> None:
    data = (
        b'{"id": "one", "text": "First.", "metadata": {"team": "hr"}}\n'
        b"{not json}\n"
        b"\n"
        b'["a list"]\n'
        b'{"text": ""}\n'
        b'{"text": "bad \xff byte"}\n'
        b'{"_id": 7, "title": "Seven", "text": "Seventh line."}\n'
        b'{"text": "No id."}\n'
    )
    result = parse_file(data, filename="rows.jsonl")
    assert [(d.id, d.line) for d in result.documents] == [("one", 1), ("7", 7), (None, 8)]
    assert result.documents[0].metadata == {"team": "hr"}
    assert result.documents[1].title == "Seven"
    problems = {p.line: p.message for p in result.problems}
    assert list(problems) == [2, 4, 5, 6]
    assert problems[2].startswith("not valid JSON")
    assert "JSON object" in problems[4]
    assert "'text' must be a non-empty string" in problems[5]
    assert "UTF-8" in problems[6]
    assert str(result.problems[0]).startswith("rows.jsonl:2: not valid JSON")


def test_a_file_of_bad_lines_lists_the_first_thousand_problems_and_counts_the_rest() -> None:
    result = parse_file(b"{bad\n" * 1500 + b'{"text": "kept"}\n', filename="bad.jsonl")
    assert [d.text for d in result.documents] == ["kept"]
    assert len(result.problems) == 1001
    assert result.problems[-1].message == "500 more problems not listed"


def test_csv_reading_stops_at_the_time_limit() -> None:
    data = b"text\n" + b"".join(b"row %d\n" % n for n in range(2000))
    result = parse_file(
        data, filename="slow.csv", limits=ParseLimits(time_limit_s=1.5), clock=TickingClock()
    )
    assert 0 < len(result.documents) < 2000
    assert "time_limit_s=1.5" in result.problems[-1].message


def test_records_stop_at_max_records() -> None:
    data = b"".join(b'{"text": "row %d"}\n' % n for n in range(10))
    result = parse_file(data, filename="many.jsonl", limits=ParseLimits(max_records=4))
    assert len(result.documents) == 4
    assert "max_records" in result.problems[0].message


# -- text, detection, limits -------------------------------------------------------------------


def test_plain_text_is_one_section() -> None:
    result = parse_file(b"Hello\r\nworld.\n", filename="notes.txt")
    [document] = result.documents
    assert document.text == "Hello\nworld."
    assert document.sections == (Section("Hello\nworld.", None, (), 0, 12),)
    assert document.title == "notes"


def test_invalid_utf8_is_reported_with_its_line_and_the_text_kept() -> None:
    result = parse_file(b"line one\nline two caf\xe9\n", filename="notes.txt")
    assert result.documents[0].text == "line one\nline two caf\ufffd"
    [problem] = result.problems
    assert problem.line == 2
    assert "not valid utf-8" in problem.message
    declared = parse_file(b"caf\xe9", filename="n.txt", content_type="text/plain; charset=latin-1")
    assert declared.documents[0].text == "café"
    assert declared.problems == ()


def test_content_wins_over_a_mismatched_name_or_type() -> None:
    pdf = make_pdf(["A PDF in disguise."])
    assert parse_file(pdf, filename="notes.txt").format == "pdf"
    assert detect_format(make_docx(), content_type="application/pdf") == "docx"
    assert detect_format(b"# Title", filename="a.md", content_type="text/plain") == "markdown"
    assert detect_format(b"<!doctype html><p>x</p>", filename="page") == "html"
    assert detect_format(b"a,b\n1,2", content_type="text/csv; charset=utf-8") == "csv"
    with pytest.raises(CorruptFile, match="named or declared PDF"):
        parse_file(b"plain words", filename="fake.pdf")
    with pytest.raises(CorruptFile, match="declared PDF"):
        parse_file(b"plain words", content_type="application/pdf")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "PNG image"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "save it as .docx"),
        (b"\x00\x01\x02binary", "binary content"),
    ],
)
def test_unsupported_files_say_what_they_are(data: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedFormat, match=reason) as caught:
        parse_file(data, filename="thing.txt")
    assert caught.value.status == 415


def test_other_office_zips_and_unknown_types_are_unsupported() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(UnsupportedFormat, match="export it as CSV"):
        parse_file(buffer.getvalue(), filename="sheet.xlsx")
    with pytest.raises(UnsupportedFormat, match="image/svg"):
        parse_file(b"<svg/>", content_type="image/svg+xml")


@pytest.mark.parametrize("name", ["empty.pdf", "empty.docx", "empty.md", "empty.csv", "e.jsonl"])
def test_empty_files_are_a_problem_not_an_error(name: str) -> None:
    result = parse_file(b"  \n", filename=name)
    assert result.documents == ()
    assert [(p.file, p.message) for p in result.problems] == [(name, "the file is empty")]


def test_files_over_the_size_limit_are_refused() -> None:
    with pytest.raises(FileTooLarge, match="max_file_bytes") as caught:
        parse_file(b"x" * 101, filename="big.txt", limits=ParseLimits(max_file_bytes=100))
    assert caught.value.status == 413


def test_text_beyond_max_text_chars_is_cut_and_reported() -> None:
    result = parse_file(b"word " * 100, filename="long.txt", limits=ParseLimits(max_text_chars=52))
    assert len(result.documents[0].text) <= 52
    assert "max_text_chars" in result.problems[0].message


def test_limits_are_only_ever_lowered() -> None:
    base = ParseLimits(max_pages=100, time_limit_s=10)
    asked = ParseLimits(max_pages=10_000, time_limit_s=1)
    tightened = base.tightened(asked)
    assert (tightened.max_pages, tightened.time_limit_s) == (100, 1)
    with pytest.raises(ValueError, match="max_pages"):
        ParseLimits(max_pages=0)


@pytest.fixture
def without_documents_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("pypdfium2", "docx", "lxml.html", "lxml.etree", "yaml"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError


@pytest.mark.usefixtures("without_documents_extra")
@pytest.mark.parametrize(
    ("data", "name"),
    [(b"%PDF-1.7\n", "a.pdf"), (HTML, "a.html"), (MARKDOWN, "a.md")],
)
def test_a_missing_parser_names_the_extra(data: bytes, name: str) -> None:
    with pytest.raises(ParserUnavailable, match=r"companion\[documents\]") as caught:
        parse_file(data, filename=name)
    assert caught.value.status == 501
    # Text, CSV, JSON lines and Markdown without front matter need no extra.
    assert parse_file(b"plain", filename="a.txt").documents
    assert parse_file(b"# Plain\n\nMarkdown.", filename="a.md").documents


def test_problems_and_sections_have_json_forms() -> None:
    problem = ParseProblem("a.csv", 3, "bad row")
    assert problem.to_dict() == {"file": "a.csv", "line": 3, "message": "bad row", "page": None}
    assert str(ParseProblem("a.pdf", None, "no text", page=4)) == "a.pdf (page 4): no text"
    section = Section("x", 2, ("A", "B"), 0, 1)
    assert section.to_dict() == {"page": 2, "headings": ["A", "B"], "start_char": 0, "end_char": 1}
    error = EncryptedPdf("locked.pdf: encrypted")
    assert ParseProblem.from_error("locked.pdf", error).message == "locked.pdf: encrypted"


def test_the_documents_bench_rows_run() -> None:
    from companion.bench import load_cases
    from companion.bench.cases_documents import _Parse, make_docx, make_pdf

    names = [case.name for case in load_cases(["documents"], quick=True)]
    assert names[0].startswith("PDF ingest: parse a 40-page text PDF")
    pdf = _Parse(make_pdf(3), "bench.pdf", 3, "pages")
    assert pdf() > 0
    assert pdf.note().endswith(" pages/s")
    assert _Parse(make_docx(20), "bench.docx", 20, "paragraphs")() > 0
