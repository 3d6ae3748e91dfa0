"""Markdown: one section per heading with its heading path; the text stays the Markdown source. YAML
front matter (between `---` lines at the very start) gives the title and metadata (its scalar values,
and lists of them) and is left out of the text.

Headings are found by a line scanner that follows CommonMark's rules for what matters here: ATX
(`## Title`) and setext (underlined) headings, fenced and indented code (a `# comment` in a code block
is no heading), HTML comments and `<pre>`/`<script>` blocks, and list items and block quotes (their
headings are left to their container). markdown-it-py, a full CommonMark parser, agrees with it on
this repository's docs (a test), but costs about 75 µs per list item even with inline parsing off
(100k list items: 7.5 s, which no deadline can interrupt); the scanner is linear, about 1 µs a line.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from companion.knowledge._parsing._context import DocumentBuilder, ParseContext, require
from companion.knowledge._parsing._results import ParsedDocument

__all__ = ["find_headings", "parse_markdown"]

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_MAX_FRONT_MATTER_CHARS = 64 * 1024
_SCALARS = (str, int, float, bool)

_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_ATX_CLOSING = re.compile(r"(?:^|[ \t]+)#+$")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)$")
_BREAK = re.compile(r" {0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_CONTAINER = re.compile(r" {0,3}(?:[-+*](?:[ \t]|$)|[0-9]{1,9}[.)](?:[ \t]|$)|>)")
_HTML_BLOCKS = (
    (re.compile(r" {0,3}<(?:script|pre|style|textarea)(?:[\s>]|$)", re.I),
     re.compile(r"</(?:script|pre|style|textarea)>", re.I)),
    (re.compile(r" {0,3}<!--"), re.compile(r"-->")),
)  # fmt: skip
_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_INLINE = (
    (re.compile(r"(?<!\\)!\[[^\]]*\](?:\([^)]*\)|\[[^\]]*\])"), ""),  # images (badges): dropped
    (re.compile(r"(?<!\\)\[([^\]]*)\](?:\([^)]*\)|\[[^\]]*\])"), r"\1"),  # links: their text
    (re.compile(r"<([a-z][a-z0-9+.-]*:[^\s<>]*|[^\s<>@]+@[^\s<>]+)>", re.I), r"\1"),  # autolinks
    (re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>"), ""),  # inline HTML tags
    (re.compile(r"\\([!-/:-@\[-`{-~])"), r"\1"),  # backslash escapes
)
# Emphasis: a run of `*` or `_` that opens before text and a like run that closes after it (`_`
# not inside a word, as in `snake_case`); an unmatched run (`OTEL_*`) is text, as CommonMark says.
_EMPHASIS = re.compile(
    r"(?<![\\*])(\*{1,3})(?=[^\s*])(.+?)(?<=[^\s\\*])\1(?!\*)"
    r"|(?<![\w\\_])(_{1,3})(?=[^\s_])(.+?)(?<=[^\s\\_])\3(?![\w_])"
)
_MARKUP = re.compile(r"[`\[\]<>*_\\!]")
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")


def parse_markdown(data: bytes, context: ParseContext) -> list[ParsedDocument]:
    """One document, one section per heading (and one for the text before the first)."""
    text = context.decode(data).replace("\r\n", "\n").replace("\r", "\n")
    text, front = _front_matter(text, context)
    lines = text.split("\n")
    scanner = _HeadingScanner(lines)
    for index, line in enumerate(lines):
        if index % 4096 == 4095 and not context.in_time(f"line {index + 1}"):
            return []
        scanner.scan(index, line)
    headings = scanner.headings
    builder = DocumentBuilder(context)
    path: list[str] = []
    starts = [0] + [line for line, _, _ in headings]
    ends = [line for line, _, _ in headings] + [len(lines)]
    for number, (start, end) in enumerate(zip(starts, ends, strict=True)):
        if number:
            _, level, title = headings[number - 1]
            del path[level - 1 :]
            path += [""] * (level - 1 - len(path))  # a "###" straight under a "#"
            path.append(title)
        builder.add("\n".join(lines[start:end]), headings=tuple(h for h in path if h))
        if context.stopped or (number % 4096 == 4095 and not context.in_time(f"line {end}")):
            break
    first_h1 = next((title for _, level, title in headings if level == 1), None)
    title = front.pop("title", None)
    title = title.strip() if isinstance(title, str) and title.strip() else first_h1 or context.stem
    return [builder.build(title=title, metadata=front)]


def find_headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """The top-level headings as (first line index, level 1-6, text without markup)."""
    scanner = _HeadingScanner(lines)
    for index, line in enumerate(lines):
        scanner.scan(index, line)
    return scanner.headings


class _HeadingScanner:
    """A line at a time: what block the line is in, and whether it is, or ends, a heading."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.headings: list[tuple[int, int, str]] = []
        self.fence: tuple[str, int] | None = None  # the open fence's character and length
        self.html_end: re.Pattern[str] | None = None  # what closes the open HTML block
        self.paragraph: int | None = None  # the first line of a paragraph a setext line would close
        self.in_container = False  # in a list item or block quote, until a blank line

    def scan(self, index: int, line: str) -> None:
        if self.fence is not None or self.html_end is not None:
            self._scan_literal(line)
        elif not line.strip(" \t"):  # CommonMark's blank: spaces and tabs only
            self.paragraph, self.in_container = None, False
        elif not self._opens_literal(line) and not self._heading(index, line):
            self._scan_other(index, line)

    def _scan_literal(self, line: str) -> None:
        if self.fence is not None:
            closing = _FENCE.match(line)
            if closing and closing[2][0] == self.fence[0] and len(closing[2]) >= self.fence[1]:
                self.fence = self.fence if closing[3].strip() else None
        elif self.html_end is not None and self.html_end.search(line):
            self.html_end = None

    def _opens_literal(self, line: str) -> bool:
        opening = _FENCE.match(line)
        if opening and not (opening[2][0] == "`" and "`" in opening[3]):
            self.fence, self.paragraph = (opening[2][0], len(opening[2])), None
            return True
        for start, end in _HTML_BLOCKS:
            if start.match(line):
                self.html_end = None if end.search(line) else end
                self.paragraph = None
                return True
        return False

    def _heading(self, index: int, line: str) -> bool:
        atx = _ATX.match(line)
        indent = len(line) - len(line.lstrip(" "))
        if atx and not (self.in_container and indent >= 2):  # less than a list item's indent
            self._add(index, len(atx[1]), _ATX_CLOSING.sub("", atx[2] or ""))
            self.in_container = False
            return True
        underline = _SETEXT.match(line)
        if underline and self.paragraph is not None and not self.in_container:
            raw = " ".join(item.strip() for item in self.lines[self.paragraph : index])
            self._add(self.paragraph, 1 if underline[1][0] == "=" else 2, raw)
            return True
        return False

    def _scan_other(self, index: int, line: str) -> None:
        thematic_break = _BREAK.match(line)
        if thematic_break or _CONTAINER.match(line):
            self.paragraph = None
            self.in_container = self.in_container or not thematic_break
        elif (
            self.paragraph is None and not self.in_container and not line.startswith(("    ", "\t"))
        ):
            self.paragraph = index  # an indented line outside a paragraph is code

    def _add(self, index: int, level: int, raw: str) -> None:
        self.paragraph = None
        title = _inline_text(raw)
        if title:
            self.headings.append((index, level, title))


def _inline_text(raw: str) -> str:
    """A heading's text without Markdown markup: code spans' content, link texts, no emphasis."""
    if not _MARKUP.search(raw):
        return " ".join(raw.split())
    codes: list[str] = []

    def hide(span: re.Match[str]) -> str:  # code spans are literal: no rule may touch them
        codes.append(_strip_one_space(span[2]))
        return f"\x00{len(codes) - 1}\x00"

    text = _CODE_SPAN.sub(hide, raw.replace("\x00", ""))
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    while True:  # nested emphasis comes off a layer at a time
        plain = _EMPHASIS.sub(lambda found: found[2] or found[4] or "", text)
        if plain == text:
            break
        text = plain
    text = _PLACEHOLDER.sub(lambda found: codes[int(found[1])], text)
    return " ".join(text.split())


def _strip_one_space(code: str) -> str:
    if len(code) > 2 and code[0] == code[-1] == " " and code.strip():
        return code[1:-1]
    return code


def _front_matter(text: str, context: ParseContext) -> tuple[str, dict[str, Any]]:
    """The text without its front matter, and the front matter's metadata."""
    match = _FRONT_MATTER.match(text)
    if not match or match.end() > _MAX_FRONT_MATTER_CHARS:
        return text, {}
    yaml = require("yaml", "Markdown front matter")
    try:
        loaded = yaml.safe_load(match.group(1) or "")
    except yaml.YAMLError as exc:
        # Where the broken construct starts (an unclosed bracket), else where parsing failed.
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1  # + the opening "---" line
        reason = ": ".join(
            str(part)
            for part in (getattr(exc, "context", None), getattr(exc, "problem", None))
            if part
        )
        context.problem(
            f"front matter is not valid YAML ({reason or _first_line(exc)}); kept as text",
            line=line,
        )
        return text, {}
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        context.problem("front matter is not a mapping of keys to values; kept as text", line=1)
        return text, {}
    metadata: dict[str, Any] = {}
    for key, value in loaded.items():
        clean = _metadata_value(value)
        if isinstance(key, str) and clean is not None:
            metadata[key] = clean
    return text[match.end() :], metadata


def _metadata_value(value: Any) -> Any:
    """A JSON scalar (dates as ISO strings) or a list of them; None for anything else."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):  # NaN and infinities are no JSON
        return None
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list):
        items = [_metadata_value(item) for item in value]
        if all(isinstance(item, _SCALARS) for item in items):
            return items
    return None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().split("\n", 1)[0]
