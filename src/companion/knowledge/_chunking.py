"""Splitting a document into overlapping chunks, paragraph-aware.

Paragraphs (blank-line separated, and Markdown headings) are packed whole into chunks up to `size`;
a paragraph longer than `size` is cut at word boundaries with `overlap` carried into the next piece.
Sizes count characters, or whitespace-separated tokens when `unit="tokens"`. Every chunk records its
character span in the document, so snippets and citations can point back into the original text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from companion.config import setting_default
from companion.errors import InvalidInput

__all__ = ["Chunker", "TextSpan"]

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+|\n(?=#{1,6} )")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class TextSpan:
    """A chunk's text and its `[start_char, end_char)` span in the document."""

    text: str
    start_char: int
    end_char: int


@dataclass(frozen=True, slots=True)
class Chunker:
    """Chunking policy: `size` and `overlap` in `unit`s (characters or whitespace tokens)."""

    size: int = setting_default("knowledge_chunk_chars")
    overlap: int = setting_default("knowledge_chunk_overlap_chars")
    unit: Literal["chars", "tokens"] = "chars"

    def __post_init__(self) -> None:
        if self.size < 1 or not 0 <= self.overlap < self.size:
            raise InvalidInput(
                f"chunk size must be >= 1 and overlap in [0, size): got {self.size}, {self.overlap}"
            )

    def split(self, text: str) -> list[TextSpan]:
        """The chunks of `text` in order; none when it has no visible characters."""
        chunks: list[TextSpan] = []
        pending: list[tuple[int, int]] = []
        for start, end in _paragraphs(text):
            if self._measure(text, start, end) > self.size:
                if pending:
                    chunks.append(_span(text, pending[0][0], pending[-1][1]))
                    pending = []
                chunks.extend(self._cut(text, start, end))
                continue
            if pending and self._measure(text, pending[0][0], end) > self.size:
                chunks.append(_span(text, pending[0][0], pending[-1][1]))
                pending = []
            pending.append((start, end))
        if pending:
            chunks.append(_span(text, pending[0][0], pending[-1][1]))
        return chunks

    def _measure(self, text: str, start: int, end: int) -> int:
        if self.unit == "chars":
            return end - start
        return len(_WORD.findall(text, start, end))

    def _cut(self, text: str, start: int, end: int) -> list[TextSpan]:
        """Cut one long paragraph into word-aligned windows of `size` with `overlap`."""
        words = self._words(text, start, end)
        pieces: list[TextSpan] = []
        first = 0
        while first < len(words):
            last = first
            while last + 1 < len(words) and self._fits(words, first, last + 1):
                last += 1
            pieces.append(_span(text, words[first][0], words[last][1]))
            if last + 1 >= len(words):
                break
            # Step back so the next window repeats about `overlap` units of this one.
            nxt = last + 1
            while nxt - 1 > first and self._span_units(words, nxt - 1, last) <= self.overlap:
                nxt -= 1
            first = nxt
        return pieces

    def _words(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Word spans; in `chars` mode a word longer than `size` (a URL, base64) is cut into
        `size`-character pieces, so no chunk ever exceeds the size it promises."""
        words: list[tuple[int, int]] = []
        for match in _WORD.finditer(text, start, end):
            first, last = match.span()
            if self.unit == "chars" and last - first > self.size:
                words.extend((i, min(i + self.size, last)) for i in range(first, last, self.size))
            else:
                words.append((first, last))
        return words

    def _fits(self, words: list[tuple[int, int]], first: int, last: int) -> bool:
        return self._span_units(words, first, last) <= self.size

    def _span_units(self, words: list[tuple[int, int]], first: int, last: int) -> int:
        if self.unit == "tokens":
            return last - first + 1
        return words[last][1] - words[first][0]


def _paragraphs(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    position = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        spans.append((position, match.start()))
        position = match.end()
    spans.append((position, len(text)))
    return [trimmed for s, e in spans if (trimmed := _trim(text, s, e))[0] < trimmed[1]]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _span(text: str, start: int, end: int) -> TextSpan:
    return TextSpan(text[start:end], start, end)
