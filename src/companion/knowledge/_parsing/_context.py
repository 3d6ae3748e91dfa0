"""What every format's parser shares: the file's context (limits, clock, problems), text decoding,
the document builder that records each section's span, and importing an optional parser library."""

from __future__ import annotations

import codecs
import importlib
import re
from collections.abc import Callable
from pathlib import PurePath
from types import ModuleType
from typing import Any

from companion.knowledge._errors import ParserUnavailable
from companion.knowledge._parsing._results import ParsedDocument, ParseLimits, ParseProblem, Section

__all__ = ["MAX_PROBLEMS", "DocumentBuilder", "ParseContext", "collapse_spaces", "require"]

MAX_PROBLEMS = 1000  # listed per file; a file of a million bad lines says how many more there were
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM it starts with
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SPACES = re.compile(r"[^\S\n]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def require(module: str, what: str) -> Any:
    """Import the parser library for `what`, or say which extra brings it."""
    try:
        imported: ModuleType = importlib.import_module(module)
    except ImportError:
        raise ParserUnavailable(
            f"reading {what} needs the '{module.partition('.')[0]}' package: "
            "pip install 'companion[documents]'"
        ) from None
    return imported


def collapse_spaces(text: str) -> str:
    """Runs of spaces and tabs as one space, control characters dropped, lines trimmed."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class ParseContext:
    """One file being parsed: its name, declared charset, limits, deadline and the problems met."""

    def __init__(
        self,
        file: str,
        *,
        charset: str | None,
        limits: ParseLimits,
        clock: Callable[[], float],
    ) -> None:
        self.file = file
        self.stem = PurePath(file).stem or file
        self.charset = charset
        self.limits = limits
        self.problems: list[ParseProblem] = []
        self.unlisted_problems = 0
        self._clock = clock
        self._started = clock()
        self._chars_left = limits.max_text_chars
        self.stopped = False  # a limit was reached: stop reading, the problem is recorded

    def problem(self, message: str, *, line: int | None = None, page: int | None = None) -> None:
        """Record what was not read and why (the first `MAX_PROBLEMS`, then only a count)."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(ParseProblem(self.file, line, message, page))
        else:
            self.unlisted_problems += 1

    def all_problems(self) -> tuple[ParseProblem, ...]:
        """The problems recorded, and a last one counting those left out."""
        if not self.unlisted_problems:
            return tuple(self.problems)
        more = ParseProblem(self.file, None, f"{self.unlisted_problems:,} more problems not listed")
        return (*self.problems, more)

    def in_time(self, where: str) -> bool:
        """False (once recorded as a problem) when the time limit has passed; `where` says how far."""
        if self.stopped:
            return False
        elapsed = self._clock() - self._started
        if elapsed <= self.limits.time_limit_s:
            return True
        self.stopped = True
        self.problem(
            f"stopped after {elapsed:.1f} s at {where} (time_limit_s={self.limits.time_limit_s:g});"
            " the rest was not read"
        )
        return False

    def take_text(self, text: str) -> str:
        """`text`, cut where the file's text budget runs out (recorded once as a problem)."""
        if len(text) <= self._chars_left:
            self._chars_left -= len(text)
            return text
        kept = text[: self._chars_left]
        self._chars_left = 0
        if not self.stopped:
            self.stopped = True
            self.problem(
                f"the text was cut at {self.limits.max_text_chars:,} characters "
                "(max_text_chars); the rest was not read"
            )
        return kept

    def decode(self, data: bytes) -> str:
        """Text from bytes: a BOM, else the declared charset, else UTF-8.

        Bytes that are not valid are replaced (U+FFFD) and reported with the line of the first one,
        so one stray byte does not lose a whole file.
        """
        encoding = self.charset or "utf-8"
        for bom, name in _BOMS:
            if data.startswith(bom):
                encoding, data = name, data[len(bom) :]
                break
        try:
            codecs.lookup(encoding)
        except LookupError:
            self.problem(f"unknown charset {encoding!r}; read as UTF-8")
            encoding = "utf-8"
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            self.problem(
                f"not valid {encoding} (byte {exc.start}); bad bytes were replaced with U+FFFD. "
                "Save the file as UTF-8, or declare its charset",
                line=line,
            )
            return data.decode(encoding, errors="replace")


class DocumentBuilder:
    """Sections appended in order, joined by blank lines, each remembering its span in the text."""

    def __init__(self, context: ParseContext) -> None:
        self._context = context
        self._parts: list[str] = []
        self._sections: list[Section] = []
        self._length = 0

    def add(self, text: str, *, page: int | None = None, headings: tuple[str, ...] = ()) -> None:
        """Append one section (nothing when `text` is blank, or once the text budget is spent)."""
        text = text.strip()
        if not text or self._context.stopped:
            return
        separator = "\n\n" if self._parts else ""
        text = self._context.take_text(text).rstrip()
        if not text:
            return
        start = self._length + len(separator)
        self._parts += [separator, text]
        self._length = start + len(text)
        self._sections.append(Section(text, page, headings, start, self._length))

    @property
    def empty(self) -> bool:
        """No section has text."""
        return not self._sections

    def build(
        self,
        *,
        title: str | None = None,
        doc_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        line: int | None = None,
    ) -> ParsedDocument:
        """The document of the sections added so far."""
        return ParsedDocument(
            text="".join(self._parts),
            title=title,
            id=doc_id,
            metadata=metadata or {},
            sections=tuple(self._sections),
            line=line,
        )
