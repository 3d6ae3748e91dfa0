"""A search ranks documents whole, then returns their passages: in both stores, in every mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from companion.cache import TieredCache
from companion.knowledge import Chunker, DocumentInput, KnowledgeBase
from companion.knowledge._embedder import Embedder
from companion.knowledge._fusion import RankedDocument, fuse_documents
from tests.knowledge.conftest import STORES, VECTOR_STORES, _make_store

# Paragraphs of about 60 characters each become chunks of their own.
SMALL_CHUNKS = Chunker(size=80, overlap=0)


@pytest.fixture(params=STORES)
async def small(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KnowledgeBase]:
    """A knowledge base over each store whose chunks are single short paragraphs."""
    store = await _make_store(request.param, tmp_path, request)
    base = KnowledgeBase(store, cache=TieredCache(), chunker=SMALL_CHUNKS)
    await base.start()
    try:
        yield base
    finally:
        await base.close()


def _paragraphs(*lines: str) -> str:
    return "\n\n".join(lines)


async def test_words_in_different_chunks_count_together(small: KnowledgeBase) -> None:
    await small.create_collection("t", "c")
    await small.ingest(
        "t",
        "c",
        [
            # Each of its chunks holds one of the words: ranked chunk by chunk, both lost to the
            # chunk below, which holds one of them three times.
            DocumentInput(
                id="marsh-birds",
                text=_paragraphs(
                    "The grey heron waits among the reeds at the water's edge.",
                    "Later the tidal marsh turns quiet as the light goes.",
                ),
            ),
            DocumentInput(id="herons", text="A heron, a second heron, a third heron, and gulls."),
            DocumentInput(id="other", text="Nothing here about birds of the coast at all."),
        ],
    )
    result = await small.search("t", "c", "heron marsh", k=2)
    assert [hit.document_id for hit in result.results] == ["marsh-birds", "herons"]
    # Its passage is the chunk holding the rarer word; a document's hits carry its score.
    assert "marsh" in result.results[0].text
    assert result.results[0].score > result.results[1].score


async def test_one_long_document_answers_with_k_passages(small: KnowledgeBase) -> None:
    await small.create_collection("t", "c")
    lines = [f"Section {n}: the tide table for harbour number {n} of the coast." for n in range(12)]
    lines[7] = "Section 7: tide, tide and tide again, the tide rules this harbour."
    await small.ingest("t", "c", [DocumentInput(id="tides", text=_paragraphs(*lines))])
    result = await small.search("t", "c", "tide", k=5)
    assert [hit.document_id for hit in result.results] == ["tides"] * 5
    assert len({hit.chunk_id for hit in result.results}) == 5
    # Best passage first.
    assert result.results[0].text.startswith("Section 7")
    assert len({hit.score for hit in result.results}) == 1


async def test_a_further_passage_must_match_the_query(small: KnowledgeBase) -> None:
    """Room for more passages than match is no reason to show a chunk without the query's words
    (a lone heading, the next paragraph): its document matched, it did not."""
    await small.create_collection("t", "c")
    text = _paragraphs(
        "Opening hours of the harbour office, all seasons.",
        "The ferry to the island leaves at noon each day.",
        "Repairs to the pier begin in March and end in May.",
        "The ferry returns from the island before dusk.",
    )
    await small.ingest("t", "c", [DocumentInput(id="harbour", text=text)])
    result = await small.search("t", "c", "ferry island", k=10)
    assert [hit.text.split()[1] for hit in result.results] == ["ferry", "ferry"]
    assert [hit.document_id for hit in result.results] == ["harbour", "harbour"]


async def test_every_document_gets_a_passage_before_any_gets_a_second(
    small: KnowledgeBase,
) -> None:
    await small.create_collection("t", "c")
    documents = [
        DocumentInput(
            id=f"doc-{n}",
            text=_paragraphs(
                *(f"Lighthouse log {n}.{part}: the lamp was lit at dusk." for part in range(3))
            ),
        )
        for n in range(3)
    ]
    await small.ingest("t", "c", documents)
    result = await small.search("t", "c", "lighthouse lamp", k=5)
    ids = [hit.document_id for hit in result.results]
    # Grouped by document, in rank order: two passages for the first two, one for the third.
    assert sorted(ids.count(doc) for doc in set(ids)) == [1, 2, 2]
    assert ids == sorted(ids, key=ids.index)  # each document's passages are adjacent
    assert len(set(ids)) == 3
    # With `k` at most the number of documents, each appears once.
    assert (
        len({hit.document_id for hit in (await small.search("t", "c", "lamp", k=3)).results}) == 3
    )


async def test_a_deleted_document_leaves_both_indexes(small: KnowledgeBase) -> None:
    await small.create_collection("t", "c")
    await small.ingest(
        "t",
        "c",
        [
            DocumentInput(id="gone", text=_paragraphs("The osprey dives.", "The osprey eats.")),
            DocumentInput(id="kept", text="An osprey nest on the pole."),
        ],
    )
    await small.delete_document("t", "c", "gone")
    result = await small.search("t", "c", "osprey", k=10)
    assert [hit.document_id for hit in result.results] == ["kept"]


@pytest.fixture(params=VECTOR_STORES)
async def small_vectors(
    request: pytest.FixtureRequest, tmp_path: Path, minilm: Embedder
) -> AsyncIterator[KnowledgeBase]:
    store = await _make_store(request.param, tmp_path, request)
    base = KnowledgeBase(store, minilm, cache=TieredCache(), chunker=SMALL_CHUNKS)
    await base.start()
    try:
        yield base
    finally:
        await base.close()


async def test_hybrid_fuses_documents_not_chunks(small_vectors: KnowledgeBase) -> None:
    kb = small_vectors
    await kb.create_collection("t", "c")
    await kb.ingest(
        "t",
        "c",
        [
            # Found by words (BM25) in one chunk and by meaning (vectors) in another.
            DocumentInput(
                id="dogs",
                text=_paragraphs(
                    "Puppies need short walks and a lot of sleep every day.",
                    "The kennel register lists each canine by its breed.",
                ),
            ),
            DocumentInput(id="cats", text="Kittens climb curtains and chase string for hours."),
            DocumentInput(id="rockets", text="The launch vehicle reached orbit after ten minutes."),
        ],
    )
    await kb.wait_for_embeddings("t", "c")
    result = await kb.search("t", "c", "young dogs kennel register", mode="hybrid", k=3)
    ids = [hit.document_id for hit in result.results]
    assert ids[0] == "dogs"
    assert len(ids) == len(set(ids))  # three documents: one passage each
    scores = [hit.score for hit in result.results]
    assert scores == sorted(scores, reverse=True)
    vector = await kb.search("t", "c", "young dogs", mode="vector", k=2)
    assert vector.results[0].document_id == "dogs"
    assert len({hit.document_id for hit in vector.results}) == 2


def _ranking(*scored: tuple[str, float]) -> list[RankedDocument]:
    return [RankedDocument(doc, score, (n,)) for n, (doc, score) in enumerate(scored)]


def test_convex_fusion_keeps_how_far_apart_the_scores_are() -> None:
    """B is a close second in both rankings; A and C each top one and trail the other far
    behind. Rank alone (RRF) cannot tell B's near-misses from A's and C's distant ones."""
    lexical = _ranking(("A", 10.0), ("B", 9.9), ("C", 1.0))
    semantic = _ranking(("C", 0.90), ("B", 0.85), ("A", 0.20))
    convex = fuse_documents([(1.0, lexical), (1.0, semantic)], 3, method="convex")
    assert [d.document_id for d in convex] == ["B", "A", "C"]
    assert convex[0].score == pytest.approx(0.5 * 8.9 / 9.0 + 0.5 * 0.65 / 0.70)
    rrf = fuse_documents([(1.0, lexical), (1.0, semantic)], 3, method="rrf", rrf_k=60)
    assert [d.document_id for d in rrf] == ["A", "C", "B"]
    # Scaled per ranking: BM25's unbounded scores and cosines weigh alike whatever their units.
    louder = _ranking(("A", 10_000.0), ("B", 9_900.0), ("C", 1_000.0))
    assert fuse_documents([(1.0, louder), (1.0, semantic)], 3) == convex
    # Weights are shares: a document one ranking missed gets only the other's part.
    [only] = fuse_documents([(3.0, _ranking(("D", 2.0))), (1.0, _ranking(("E", 1.0)))], 1)
    assert (only.document_id, only.score) == ("D", 0.75)


async def test_hybrid_over_one_long_document_answers_with_k_passages(
    small_vectors: KnowledgeBase,
) -> None:
    kb = small_vectors
    await kb.create_collection("t", "c")
    lines = [f"Part {n}: how the ferry crosses the strait in weather {n}." for n in range(8)]
    await kb.ingest("t", "c", [DocumentInput(id="ferry", text=_paragraphs(*lines))])
    await kb.wait_for_embeddings("t", "c")
    result = await kb.search("t", "c", "ferry crossing", mode="hybrid", k=4)
    assert [hit.document_id for hit in result.results] == ["ferry"] * 4
    assert len({hit.chunk_id for hit in result.results}) == 4
