"""Properties of the chunker over arbitrary text (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from companion.knowledge import Chunker

WORDS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=30)
TEXT = st.lists(
    st.one_of(WORDS, st.sampled_from(["\n\n", "\n", " ", "# Title\n", "- item\n"])), max_size=60
).map("".join)
POLICY = st.tuples(st.integers(1, 200), st.integers(0, 199)).filter(lambda p: p[1] < p[0])


@given(text=TEXT, policy=POLICY)
@settings(max_examples=300, deadline=None)
def test_chunks_are_bounded_spans_that_cover_every_visible_character(
    text: str, policy: tuple[int, int]
) -> None:
    size, overlap = policy
    chunks = Chunker(size=size, overlap=overlap).split(text)
    covered = [False] * len(text)
    previous_start = -1
    for chunk in chunks:
        assert chunk.text.strip(), "no empty chunk"
        assert 0 <= chunk.start_char < chunk.end_char <= len(text)
        assert text[chunk.start_char : chunk.end_char].strip() == chunk.text.strip()
        assert len(chunk.text) <= size
        assert chunk.start_char > previous_start, "chunks come in document order"
        previous_start = chunk.start_char
        for i in range(chunk.start_char, chunk.end_char):
            covered[i] = True
    missing = [c for c, seen in zip(text, covered, strict=True) if not seen and not c.isspace()]
    assert missing == []


@given(text=TEXT, policy=POLICY)
@settings(max_examples=100, deadline=None)
def test_chunking_is_deterministic(text: str, policy: tuple[int, int]) -> None:
    chunker = Chunker(size=policy[0], overlap=policy[1])
    assert chunker.split(text) == chunker.split(text)
