"""Query text: the length rule, the analyzer shared by index and queries, and snippets.

User text never reaches a query parser. It is split into terms by the same analyzer the index uses
(letters and digits only, lower-cased, English-stemmed), and the terms are combined as a plain OR of
term queries; quotes, `NEAR`, `*`, `-` and parentheses are therefore searched as text or dropped as
punctuation, and can never be a syntax error.
"""

from __future__ import annotations

import html
import re
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


@lru_cache(maxsize=1024)
def _candidate_words(terms: frozenset[str]) -> re.Pattern[str] | None:
    # A stem is a prefix of its word except, at most, for its last letter (happy -> happi): words
    # starting with a stem minus its last letter are the only candidates, found by one C-level scan.
    prefixes = sorted({term[:-1] or term for term in terms if term}, key=len, reverse=True)
    if not prefixes:
        return None
    alternation = "|".join(re.escape(prefix) for prefix in prefixes)
    return re.compile(rf"(?<![^\W_])(?:{alternation})[^\W_]*", re.IGNORECASE)


def match_spans(text: str, terms: frozenset[str]) -> list[tuple[int, int]]:
    """The `[start, end)` character spans of the words of `text` whose analyzed term is in `terms`."""
    pattern = _candidate_words(terms)
    if pattern is None:
        return []
    return [
        (match.start(), match.end())
        for match in pattern.finditer(text)
        if _stem(match.group()) in terms
    ]


def make_snippet(text: str, terms: frozenset[str], max_chars: int = SNIPPET_CHARS) -> str:
    """The window of `text` with the most query terms, HTML-escaped, each match in `<mark>`."""
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
    parts: list[str] = ["…" if start > 0 else ""]
    cursor = start
    for begin, finish in spans:
        if begin < start or finish > end:
            continue
        parts.append(html.escape(text[cursor:begin]))
        parts.append(f"<mark>{html.escape(text[begin:finish])}</mark>")
        cursor = finish
    parts.append(html.escape(text[cursor:end]))
    parts.append("…" if end < len(text) else "")
    return "".join(parts).replace("\n", " ")


def _best_window_start(spans: list[tuple[int, int]], length: int, max_chars: int) -> int:
    if not spans or length <= max_chars:
        return 0
    best_start, best_count = spans[0][0], 0
    right = 0
    for left, (begin, _) in enumerate(spans):
        right = max(right, left)
        while right + 1 < len(spans) and spans[right + 1][1] - begin <= max_chars:
            right += 1
        if right - left + 1 > best_count:
            best_start, best_count = begin, right - left + 1
    # Leave some context before the first match.
    return max(0, min(best_start - max_chars // 4, length - max_chars))
