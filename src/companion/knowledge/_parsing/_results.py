"""What parsing one file gives: documents made of sections, the problems met, and the limits that bound it."""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from companion.errors import CompanionError, InvalidInput

__all__ = ["Format", "ParseLimits", "ParseProblem", "ParseResult", "ParsedDocument", "Section"]

Format = Literal["pdf", "docx", "html", "markdown", "text", "csv", "jsonl"]


@dataclass(frozen=True, slots=True)
class Section:
    """A stretch of a document that one citation can name: its page (PDFs) and heading path.

    `text` is `document.text[start_char:end_char]`; `headings` runs from the outermost heading to the
    innermost, e.g. `("Install", "On Debian")`, and is empty before the first heading.
    """

    text: str
    page: int | None
    headings: tuple[str, ...]
    start_char: int
    end_char: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "page": self.page,
            "headings": list(self.headings),
            "start_char": self.start_char,
            "end_char": self.end_char,
        }


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """One document found in a file: the whole file, or one row of a CSV or line of JSON lines.

    `id` is the id the content gives (a JSON line's `id`, a CSV `id` column), else None: the caller
    names it (the file's path, with `:line` for rows). `line` is the row's first line in the file.
    """

    text: str
    title: str | None = None
    id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    sections: tuple[Section, ...] = ()
    line: int | None = None
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(section.start_char for section in self.sections))

    def section_at(self, char: int) -> Section | None:
        """The section holding character `char` of `text` (e.g. a chunk's start), or None."""
        index = bisect.bisect_right(self._starts, char) - 1
        if index < 0:
            return None
        section = self.sections[index]
        return section if char < section.end_char else None


@dataclass(frozen=True, slots=True)
class ParseProblem:
    """Why part of a file (or all of it) was not read: which file, which line or page, and why."""

    file: str
    line: int | None
    message: str
    page: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.page is not None:
            where += f" (page {self.page})"
        return f"{where}: {self.message}"

    @classmethod
    def from_error(cls, file: str, error: CompanionError) -> ParseProblem:
        """The problem a whole-file error (`EncryptedPdf`, `UnsupportedFormat`, ...) reports."""
        return cls(file, None, error.message)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class ParseResult:
    """The documents read from one file and the problems met; the good documents survive bad ones."""

    file: str
    format: Format
    documents: tuple[ParsedDocument, ...]
    problems: tuple[ParseProblem, ...]


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """How much one file may cost. Past a limit the file is refused (`FileTooLarge`) or, for pages,
    rows, text and time, read up to the limit with a problem saying where it stopped.

    A zip bomb in a DOCX is refused from its central directory (the sizes `zipfile` enforces while
    unpacking) before any part is inflated; a PDF with 100k pages is read up to `max_pages`.
    """

    max_file_bytes: int = 50 * 2**20
    max_pages: int = 2000
    max_unpacked_bytes: int = 200 * 2**20  # a DOCX's parts, all together, once unzipped
    max_zip_entries: int = 10_000
    max_records: int = 100_000  # CSV rows or JSON lines
    max_text_chars: int = 20_000_000  # the text of all documents of one file
    time_limit_s: float = 60.0  # checked between pages, blocks and rows

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidInput(f"parse limit {item.name} must be positive, got {value!r}")

    def tightened(self, other: ParseLimits) -> ParseLimits:
        """Each limit at the lower of the two: a request may lower a limit, never raise it."""
        lower = {
            item.name: min(getattr(self, item.name), getattr(other, item.name))
            for item in dataclasses.fields(self)
        }
        return ParseLimits(**lower)
