"""Query text: the length rule, the analyzer shared by index and queries, and snippets.

User text never reaches a query parser. It is split into terms by the same analyzer the index uses
(letters and digits only, lower-cased, English-stemmed), and the terms are combined as a plain OR of
term queries; quotes, `NEAR`, `*`, `-` and parentheses are therefore searched as text or dropped as
punctuation, and can never be a syntax error.
"""

from __future__ import annotations

import html
import re
from bisect import bisect_right
from functools import cache, lru_cache

import tantivy

from companion.knowledge._errors import InvalidQuery

__all__ = [
    "MAX_QUERY_TERMS",
    "SNIPPET_CHARS",
    "clean_query",
    "make_snippet",
    "match_spans",
    "query_terms",
    "text_analyzer",
]

# A query of thousands of distinct terms is not a question; the first 64 carry the meaning.
MAX_QUERY_TERMS = 64
SNIPPET_CHARS = 200
TOKENIZER_NAME = "companion_en"
# Unicode noncharacters, never meant to appear in text: they mark matches while a snippet is built,
# and any found in a stored text are made spaces first.
_OPEN, _CLOSE = "\ufdd0", "\ufdd1"


@cache
def text_analyzer() -> tantivy.TextAnalyzer:
    """The analyzer of the full-text index and of queries (tantivy's `en_stem`, built here)."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def clean_query(query: object, max_chars: int) -> str:
    """The query text to search, or `InvalidQuery`.

    Rule: surrounding whitespace is stripped; a longer text is cut to `max_chars` characters, at the
    last whitespace before the limit when there is one (so no word is cut in half).
    """
    if not isinstance(query, str):
        raise InvalidQuery("query must be a string")
    text = query.strip()
    if not text:
        raise InvalidQuery("query is empty: give some words to search for")
    if len(text) > max_chars:
        cut = text[:max_chars]
        space = cut.rfind(" ")
        text = cut[:space] if space > max_chars // 2 else cut
    return text


def query_terms(text: str) -> list[str]:
    """The distinct analyzed terms of `text`, in order, at most `MAX_QUERY_TERMS`."""
    terms = list(dict.fromkeys(text_analyzer().analyze(text)))
    return terms[:MAX_QUERY_TERMS]


@lru_cache(maxsize=65_536)
def _stem(word: str) -> str:
    analyzed = text_analyzer().analyze(word)
    return analyzed[0] if len(analyzed) == 1 else ""


def _prefix_alternation(terms: frozenset[str]) -> str | None:
    # A stem is a prefix of its word except, at most, for its last letter (happy -> happi): words
    # starting with a stem minus its last letter are the only candidates, found by one C-level scan.
    prefixes = sorted({term[:-1] or term for term in terms if term}, key=len, reverse=True)
    return "|".join(re.escape(prefix) for prefix in prefixes) or None


@lru_cache(maxsize=1024)
def _candidate_words(terms: frozenset[str]) -> re.Pattern[str] | None:
    # Any text: a word starts after a non-alphanumeric character; case is ignored.
    alternation = _prefix_alternation(terms)
    if alternation is None:
        return None
    return re.compile(rf"(?<![^\W_])(?:{alternation})[^\W_]*", re.IGNORECASE)


@lru_cache(maxsize=1024)
def _ascii_candidate_words(terms: frozenset[str]) -> re.Pattern[str] | None:
    # ASCII text already lower-cased with `_` made a space: `\b` says the same as the general
    # pattern and no case folding is needed, which scans in about half the time (6.5 against 10 us
    # per 400-character text). Compiled only when an ASCII text needs it (a compile is ~40-50 us).
    alternation = _prefix_alternation(terms)
    if alternation is None:
        return None
    return re.compile(rf"\b(?:{alternation})\w*", re.ASCII)


def match_spans(text: str, terms: frozenset[str]) -> list[tuple[int, int]]:
    """The `[start, end)` character spans of the words of `text` whose analyzed term is in `terms`."""
    if text.isascii():
        pattern = _ascii_candidate_words(terms)
        # Lower-casing ASCII keeps every offset, so spans found in `folded` are spans of `text`.
        folded = text.lower().replace("_", " ")
    else:
        pattern = _candidate_words(terms)
        folded = text
    if pattern is None:
        return []
    return [match.span() for match in pattern.finditer(folded) if _stem(match.group()) in terms]


def make_snippet(text: str, terms: frozenset[str], max_chars: int = SNIPPET_CHARS) -> str:
    """The window of `text` with the most query terms, HTML-escaped, each match in `<mark>`."""
    if _OPEN in text or _CLOSE in text:  # same length, so every offset still holds
        text = text.replace(_OPEN, " ").replace(_CLOSE, " ")
    spans = match_spans(text, terms)
    start = _best_window_start(spans, len(text), max_chars)
    end = min(len(text), start + max_chars)
    # Move the edges to word boundaries so the snippet starts and ends on whole words.
    if start > 0:
        space = text.find(" ", start, start + 30)
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", end - 30, end)
        end = space if space > start else end
    # Matches are wrapped in marker characters and the window escaped in one call, then the markers
    # become tags: one `html.escape` per snippet instead of two per match (about 3 us a snippet).
    parts: list[str] = []
    cursor = start
    for begin, finish in spans:
        if begin < start or finish > end:
            continue
        parts += (text[cursor:begin], _OPEN, text[begin:finish], _CLOSE)
        cursor = finish
    parts.append(text[cursor:end])
    body = html.escape("".join(parts)).replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>")
    ellipsis_before = "…" if start > 0 else ""
    ellipsis_after = "…" if end < len(text) else ""
    return f"{ellipsis_before}{body}{ellipsis_after}".replace("\n", " ")


def _best_window_start(spans: list[tuple[int, int]], length: int, max_chars: int) -> int:
    if not spans or length <= max_chars:
        return 0
    if spans[-1][1] - spans[0][0] <= max_chars:  # they all fit: the first window that has them all
        return max(0, min(spans[0][0] - max_chars // 4, length - max_chars))
    # Spans are sorted and disjoint, so their ends are sorted: a binary search (in C) counts the
    # matches that fit in a window starting at each one.
    ends = [end for _, end in spans]
    best_start, best_count = spans[0][0], 0
    for left, (begin, _) in enumerate(spans):
        count = max(1, bisect_right(ends, begin + max_chars, left) - left)
        if count > best_count:
            best_start, best_count = begin, count
    # Leave some context before the first match.
    return max(0, min(best_start - max_chars // 4, length - max_chars))
