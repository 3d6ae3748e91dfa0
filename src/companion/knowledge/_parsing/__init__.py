"""Turning one file's bytes into documents made of sections that citations can name.

    result = parse_file(data, filename="guide.pdf", content_type="application/pdf")
    for document in result.documents:          # ParsedDocument(text, title, id, metadata, sections, line)
        for section in document.sections:      # Section(text, page, headings, start_char, end_char)
            ...
    for problem in result.problems:            # ParseProblem(file, line, message, page)
        print(problem)                         # e.g. "rows.csv:7: the row has 4 fields, the header 3; ..."

| format | read by | documents | sections |
|---|---|---|---|
| PDF | pypdfium2 (PDFium) | the file | one per page: `page`, and the outline's heading path |
| DOCX | python-docx | the file | one per heading: `headings` |
| HTML | lxml | the file | one per `h1`-`h6`: `headings` (scripts, styles, navigation left out) |
| Markdown | markdown-it-py (+ PyYAML front matter) | the file | one per heading: `headings` |
| text | - | the file | one |
| CSV | the standard library | one per row | one |
| JSON lines | orjson | one per line | one |

The libraries are the `documents` extra; without it those formats raise `ParserUnavailable`. Limits
(`ParseLimits`) bound the size, pages, unpacked bytes, rows, text and time of one file.
"""

from companion.knowledge._parsing._detect import detect_format
from companion.knowledge._parsing._parse import parse_file
from companion.knowledge._parsing._results import (
    Format,
    ParsedDocument,
    ParseLimits,
    ParseProblem,
    ParseResult,
    Section,
)

__all__ = [
    "Format",
    "ParseLimits",
    "ParseProblem",
    "ParseResult",
    "ParsedDocument",
    "Section",
    "detect_format",
    "parse_file",
]
