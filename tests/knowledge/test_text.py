"""Chunking, file formats, the query rule and snippets."""

from __future__ import annotations

from pathlib import Path

import pytest

from companion.errors import InvalidInput
from companion.knowledge import Chunker, InvalidDocument, html_to_text, read_documents
from companion.knowledge._query import clean_query, make_snippet, match_spans, query_terms


def test_paragraphs_are_packed_whole_and_spans_point_into_the_text() -> None:
    text = "First para.\n\nSecond para here.\n\n# Heading\nBody of section."
    chunks = Chunker(size=30, overlap=5).split(text)
    assert [c.text for c in chunks] == [
        "First para.\n\nSecond para here.",
        "# Heading\nBody of section.",
    ]
    assert all(text[c.start_char : c.end_char] == c.text for c in chunks)


def test_long_paragraph_is_cut_at_words_with_overlap() -> None:
    words = " ".join(f"w{i}" for i in range(100))
    chunks = Chunker(size=10, overlap=3, unit="tokens").split(words)
    assert chunks[0].text.split() == [f"w{i}" for i in range(10)]
    assert chunks[1].text.split()[:3] == ["w7", "w8", "w9"]  # the overlap
    assert chunks[-1].text.endswith("w99")
    assert all(len(c.text.split()) <= 10 for c in chunks)


def test_whitespace_only_text_has_no_chunks() -> None:
    assert Chunker().split(" \n\n\t ") == []


def test_bad_chunking_policy_is_rejected() -> None:
    with pytest.raises(InvalidInput):
        Chunker(size=10, overlap=10)


def test_html_text_comes_from_a_parser() -> None:
    markup = (
        "<html><head><title>The &amp; Title</title><style>p{}</style></head><body>"
        "<script>var x = '<p>not text</p>';</script><h1>Heading</h1><p>One &lt;two&gt;"
        "<b>three</b></p><div>Four</div></body></html>"
    )
    text, title = html_to_text(markup)
    assert title == "The & Title"
    assert text == "Heading\n\nOne <two>three\n\nFour"


def test_read_documents_by_format(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Guide\n\nHello.")
    (tmp_path / "b.jsonl").write_text(
        '{"id": "x", "text": "one", "metadata": {"n": 1}}\n\n{"text": "two"}\n'
    )
    [markdown] = read_documents(tmp_path / "a.md")
    assert (markdown.title, markdown.text) == ("Guide", "# Guide\n\nHello.")
    rows = list(read_documents(tmp_path / "b.jsonl"))
    assert [(r.id, r.text, r.metadata) for r in rows] == [
        ("x", "one", {"n": 1}),
        ("b.jsonl:3", "two", {}),
    ]
    assert markdown.id == "a.md"
    [nested] = read_documents(tmp_path / "a.md", base=tmp_path.parent)
    assert nested.id == f"{tmp_path.name}/a.md"


@pytest.mark.parametrize(
    "content", [b"\xff\xfe bad", b'{"text": 1}\n', b"[1]\n", b'{"text": "x", "metadata": 3}\n']
)
def test_unreadable_files_are_invalid(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(InvalidDocument):
        list(read_documents(path))


def test_query_rule_truncates_at_a_word_boundary() -> None:
    text = clean_query("  alpha beta gamma  ", 11)
    assert text == "alpha beta"
    assert len(clean_query("x" * 5000, 1000)) == 1000


def test_query_terms_are_analyzed_and_deduplicated() -> None:
    assert query_terms('"Running" runs NEAR (run* -dogs') == ["run", "near", "dog"]


def test_snippet_escapes_html_and_marks_terms() -> None:
    text = "<b>Cats</b> are " + "filler " * 60 + "and cats purr."
    snippet = make_snippet(text, frozenset(query_terms("cat purr")), max_chars=60)
    assert "<mark>purr</mark>" in snippet
    assert "<b>" not in snippet
    assert snippet.startswith("…")


def test_ascii_spans_match_the_unicode_rule() -> None:
    # ASCII text takes a lower-cased scan where `_` splits words, as the index's tokenizer does.
    text = "RUNNING runs; snake_run x_runner rerun Run9 run"
    terms = frozenset(query_terms("run runner"))
    spans = match_spans(text, terms)
    assert [text[a:b] for a, b in spans] == ["RUNNING", "runs", "run", "runner", "run"]
    # The same words after a non-ASCII one go through the general scan and give the same words.
    unicode_spans = match_spans("é " + text, terms)
    assert [(a - 2, b - 2) for a, b in unicode_spans] == spans


def test_snippet_markers_in_stored_text_never_become_tags() -> None:
    text = "a \ufdd0cat\ufdd1 and a \ufdd1 dog"
    snippet = make_snippet(text, frozenset(query_terms("cat")))
    assert snippet == "a  <mark>cat</mark>  and a   dog"
