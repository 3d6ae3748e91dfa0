"""The store contract: the same behaviour, for real, from every store (parametrised in conftest)."""

from __future__ import annotations

import asyncio

import pytest

from companion.knowledge import (
    CollectionExists,
    CollectionNotFound,
    DocumentNotFound,
    DocumentTooLarge,
    EmbedderRequired,
    EmbeddingInfo,
    InvalidDocument,
    InvalidFilter,
    InvalidQuery,
    KnowledgeBase,
)
from companion.knowledge._fusion import result_hits
from companion.knowledge._models import ScoredChunk

DOCS = [
    {
        "id": "cats",
        "text": "Cats purr when they are content.",
        "metadata": {"kind": "pet", "year": 2020},
    },
    {
        "id": "dogs",
        "text": "Dogs bark at the mail carrier.",
        "metadata": {"kind": "pet", "year": 2022},
    },
    {
        "id": "rust",
        "text": "Rust prevents data races at compile time.",
        "metadata": {"kind": "code", "year": 2015, "stable": True},
    },
]


async def _seed(kb: KnowledgeBase) -> None:
    await kb.create_collection("t1", "notes", "test notes")
    await kb.upsert("t1", "notes", DOCS)


async def test_collections_crud_and_tenancy(kb: KnowledgeBase) -> None:
    created = await kb.create_collection("t1", "notes", "my notes")
    assert (created.name, created.description, created.document_count) == ("notes", "my notes", 0)
    with pytest.raises(CollectionExists):
        await kb.create_collection("t1", "notes")
    await kb.create_collection("t2", "notes")  # another tenant may reuse the name
    assert [c.name for c in await kb.list_collections("t1")] == ["notes"]
    with pytest.raises(CollectionNotFound):
        await kb.get_collection("t3", "notes")
    await kb.delete_collection("t1", "notes")
    with pytest.raises(CollectionNotFound):
        await kb.get_collection("t1", "notes")
    assert (await kb.get_collection("t2", "notes")).name == "notes"


async def test_ensure_collection_gets_or_creates_once_under_a_race(kb: KnowledgeBase) -> None:
    results = await asyncio.gather(
        *(kb.ensure_collection("t1", "memory", f"by caller {n}") for n in range(5))
    )
    assert sorted(created for _, created in results) == [False, False, False, False, True]
    winner = next(c.description for c, created in results if created)
    assert {c.description for c, _ in results} == {winner}  # an existing one keeps its own
    again, created = await kb.ensure_collection("t1", "memory", "ignored")
    assert (again.description, created) == (winner, False)
    assert [c.name for c in await kb.list_collections("t2")] == []  # per tenant


async def test_a_model_is_adopted_only_by_a_collection_without_one(kb: KnowledgeBase) -> None:
    """Two nodes adopting at once: the first model recorded stays, and both see which it is."""
    first, second = EmbeddingInfo("m", "1", 4), EmbeddingInfo("m", "2", 4)
    await kb.create_collection("t1", "plain")
    adopted = await asyncio.gather(
        kb.store.adopt_embedding("t1", "plain", first),
        kb.store.adopt_embedding("t1", "plain", second),
    )
    winner = adopted[0].embedding
    assert winner in (first, second)
    assert [collection.embedding for collection in adopted] == [winner, winner]
    assert (await kb.get_collection("t1", "plain")).embedding == winner
    with pytest.raises(CollectionNotFound):
        await kb.store.adopt_embedding("t2", "plain", first)  # another tenant's name


async def test_documents_crud_and_paging(kb: KnowledgeBase) -> None:
    await _seed(kb)
    document = await kb.get_document("t1", "notes", "cats")
    assert document.text == DOCS[0]["text"]
    assert document.metadata == {"kind": "pet", "year": 2020}
    assert document.chunk_count == 1
    first = await kb.list_documents("t1", "notes", limit=2)
    assert [d.id for d in first.documents] == ["cats", "dogs"]
    second = await kb.list_documents("t1", "notes", limit=2, after=first.next_after)
    assert [d.id for d in second.documents] == ["rust"]
    assert second.next_after is None
    await kb.delete_document("t1", "notes", "cats")
    with pytest.raises(DocumentNotFound):
        await kb.get_document("t1", "notes", "cats")
    with pytest.raises(DocumentNotFound):
        await kb.delete_document("t1", "notes", "cats")
    assert (await kb.get_collection("t1", "notes")).document_count == 2


async def test_generated_ids_and_unchanged_upsert_is_skipped(kb: KnowledgeBase) -> None:
    await kb.create_collection("t1", "notes")
    [generated] = await kb.upsert("t1", "notes", [{"text": "no id given"}])
    assert len(generated) == 32
    before = await kb.get_document("t1", "notes", generated)
    report = await kb.ingest("t1", "notes", [{"id": generated, "text": "no id given"}])
    assert (report.documents_done, report.documents_skipped, report.chunks_written) == (1, 1, 0)
    assert (await kb.get_document("t1", "notes", generated)).updated_at == before.updated_at


async def test_bm25_search_ranks_snippets_and_reindexes_on_update(kb: KnowledgeBase) -> None:
    await _seed(kb)
    result = await kb.search("t1", "notes", "why do cats purr?")
    assert [hit.document_id for hit in result.results] == ["cats"]
    hit = result.results[0]
    assert hit.chunk_id == "cats#0"
    assert hit.snippet is not None
    assert "<mark>Cats</mark>" in hit.snippet
    assert "<mark>purr</mark>" in hit.snippet
    assert hit.metadata == {"kind": "pet", "year": 2020}
    await kb.upsert("t1", "notes", [{"id": "cats", "text": "Felines sleep all day."}])
    assert (await kb.search("t1", "notes", "purr")).results == []
    assert [h.document_id for h in (await kb.search("t1", "notes", "sleeping")).results] == ["cats"]


async def test_chunk_owners_name_the_documents_of_chunks_without_reading_them(
    kb: KnowledgeBase,
) -> None:
    """What ranking reads instead of whole chunks; a chunk deleted between ranking and the
    read of the shown passages is left out of the hits rather than failing the search."""
    await _seed(kb)
    found = await kb.store.search_text(
        "t1", "notes", ["cat", "dog", "rust"], k=10, conditions=(), timeout_ms=5000
    )
    keys = [chunk.key for document in found for chunk in document.chunks]
    records = await kb.store.fetch_chunks(keys)
    assert sorted(record.document_id for record in records.values()) == ["cats", "dogs", "rust"]
    missing = max(keys) + 1000
    owners = await kb.store.chunk_owners([*keys, missing])
    assert owners == {key: record.document_id for key, record in records.items()}
    assert await kb.store.chunk_owners([]) == {}

    await kb.delete_document("t1", "notes", "dogs")
    ranked = [ScoredChunk(key, 1.0) for key in keys]
    hits = result_hits(ranked, await kb.store.fetch_chunks(keys), None)
    assert sorted(hit.document_id for hit in hits) == ["cats", "rust"]


@pytest.mark.parametrize(
    "query",
    [
        '"cats',
        "cats NEAR dogs",
        "cat*",
        "-cats",
        "((cats",
        "cats) OR (",
        "title:cats",
        "cats^2",
        "~!@#",
    ],
)
async def test_query_syntax_is_searched_as_text(kb: KnowledgeBase, query: str) -> None:
    await _seed(kb)
    result = await kb.search("t1", "notes", query)
    assert all(hit.document_id in {"cats", "dogs"} for hit in result.results)


@pytest.mark.parametrize(
    ("search_filter", "expected"),
    [
        ({"kind": "pet"}, {"cats", "dogs"}),
        ({"kind": {"in": ["code", "nothing"]}}, {"rust"}),
        ({"year": {"gte": 2016, "lt": 2022}}, {"cats"}),
        ({"stable": True}, {"rust"}),
        ({"year": "2020"}, set()),  # a string never equals a number
        ({"missing": 1}, set()),
    ],
)
async def test_filters(
    kb: KnowledgeBase, search_filter: dict[str, object], expected: set[str]
) -> None:
    await _seed(kb)
    result = await kb.search("t1", "notes", "cats dogs rust data mail", filter=search_filter)
    assert {hit.document_id for hit in result.results} == expected


async def test_results_are_cached_and_writes_invalidate(kb: KnowledgeBase) -> None:
    await _seed(kb)
    first = await kb.search("t1", "notes", "cats")
    second = await kb.search("t1", "notes", "cats")
    assert (first.cached, second.cached) == (False, True)
    assert second.results == first.results
    await kb.upsert("t1", "notes", [{"id": "more", "text": "More cats than dogs."}])
    third = await kb.search("t1", "notes", "cats")
    assert not third.cached
    assert {h.document_id for h in third.results} == {"cats", "more"}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"query": "   "}, InvalidQuery),
        ({"query": "cats", "k": 0}, InvalidQuery),
        ({"query": "cats", "k": 101}, InvalidQuery),
        ({"query": "cats", "mode": "fuzzy"}, InvalidQuery),
        ({"query": "cats", "filter": {"kind": {"like": "p%"}}}, InvalidFilter),
        ({"query": "cats", "filter": {"kind": {"nested": 1}}}, InvalidFilter),
        ({"query": "cats", "filter": {"kind": None}}, InvalidFilter),
        ({"query": "cats", "filter": {"kind": ["pet"]}}, InvalidFilter),
        ({"query": "cats", "mode": "vector"}, EmbedderRequired),
        ({"query": "cats", "mode": "hybrid"}, EmbedderRequired),
    ],
)
async def test_bad_search_input(
    kb: KnowledgeBase, kwargs: dict[str, object], error: type[Exception]
) -> None:
    await _seed(kb)
    with pytest.raises(error):
        await kb.search("t1", "notes", **kwargs)  # type: ignore[arg-type]


async def test_long_query_is_truncated_not_rejected(kb: KnowledgeBase) -> None:
    await _seed(kb)
    result = await kb.search("t1", "notes", "cats " * 2000)
    assert [hit.document_id for hit in result.results] == ["cats"]


async def test_unknown_collection_is_not_found(kb: KnowledgeBase) -> None:
    with pytest.raises(CollectionNotFound):
        await kb.search("t1", "nope", "cats")
    with pytest.raises(CollectionNotFound):
        await kb.upsert("t1", "nope", [{"text": "x"}])


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ({"text": ""}, InvalidDocument),
        ({"text": "x", "metadata": ["not", "an", "object"]}, InvalidDocument),
        ({"text": "x", "metadata": "string"}, InvalidDocument),
        ({"text": "bad \ud800 surrogate"}, InvalidDocument),
        ({"text": "x", "id": ""}, InvalidDocument),
        ({"text": "x", "unknown": 1}, InvalidDocument),
        ({"text": "x" * 10_001}, DocumentTooLarge),
    ],
)
async def test_bad_documents_write_nothing(
    kb: KnowledgeBase, document: dict[str, object], error: type[Exception]
) -> None:
    await kb.create_collection("t1", "notes")
    with pytest.raises(error):
        await kb.upsert("t1", "notes", [{"id": "good", "text": "fine"}, document])
    assert (await kb.list_documents("t1", "notes")).documents == []


async def test_duplicate_ids_in_one_batch_are_rejected(kb: KnowledgeBase) -> None:
    await kb.create_collection("t1", "notes")
    with pytest.raises(InvalidDocument):
        await kb.upsert("t1", "notes", [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])


async def test_long_documents_are_chunked_and_each_chunk_found(kb: KnowledgeBase) -> None:
    await kb.create_collection("t1", "notes")
    paragraphs = [f"Paragraph {i} talks about topic{i} in detail. " * 8 for i in range(6)]
    await kb.upsert("t1", "notes", [{"id": "long", "text": "\n\n".join(paragraphs)}])
    document = await kb.get_document("t1", "notes", "long")
    assert document.chunk_count > 1
    result = await kb.search("t1", "notes", "topic5", k=3)
    assert result.results[0].document_id == "long"
    assert "topic5" in result.results[0].text


async def test_every_chunk_is_found_by_its_documents_title(kb: KnowledgeBase) -> None:
    """A title reaches every chunk of a long document, not only the first."""
    await kb.create_collection("t", "c")
    paragraphs = [f"Paragraph {i} talks about tides and harbours at length." * 8 for i in range(6)]
    await kb.upsert(
        "t", "c", [{"id": "long", "title": "Zanzibar almanac", "text": "\n\n".join(paragraphs)}]
    )
    result = await kb.search("t", "c", "zanzibar", k=50, with_snippets=False)
    document = await kb.get_document("t", "c", "long")
    assert document.chunk_count > 2
    assert len(result.results) == document.chunk_count
    assert all("Zanzibar" not in hit.text for hit in result.results)  # stored text is untouched


async def test_sections_give_each_chunk_its_page_and_headings(kb: KnowledgeBase) -> None:
    from companion.knowledge import DocumentInput, DocumentSection

    await kb.create_collection("t", "c")
    first = "Tides rise twice a day along the harbour wall. " * 3
    second = "Lighthouse keepers log the weather every hour. " * 3
    text = first + second
    sections = (
        DocumentSection(0, len(first), page=1, headings=("Almanac", "Tides")),
        DocumentSection(len(first), len(text), page=2, headings=("Almanac", "Keepers")),
    )
    await kb.upsert("t", "c", [DocumentInput(text, id="almanac", sections=sections)])
    tides = (await kb.search("t", "c", "tides harbour")).results[0]
    keepers = (await kb.search("t", "c", "lighthouse keepers")).results[0]
    assert (tides.page, tuple(tides.headings)) == (1, ("Almanac", "Tides"))
    assert (keepers.page, tuple(keepers.headings)) == (2, ("Almanac", "Keepers"))
    assert "Lighthouse" not in tides.text  # no chunk crosses a section's bounds
    # Cached answers carry them too.
    again = (await kb.search("t", "c", "tides harbour")).results[0]
    assert (again.page, tuple(again.headings)) == (1, ("Almanac", "Tides"))
    # A document without sections has neither.
    await kb.upsert("t", "c", [{"id": "plain", "text": "a plain note about ferries"}])
    plain = (await kb.search("t", "c", "ferries")).results[0]
    assert (plain.page, tuple(plain.headings)) == (None, ())


@pytest.mark.parametrize(
    "sections",
    [
        ((5, 3),),  # reversed
        ((0, 10), (5, 20)),  # overlapping
        ((0, 10_000),),  # past the end
    ],
)
async def test_bad_sections_are_refused(
    kb: KnowledgeBase, sections: tuple[tuple[int, int], ...]
) -> None:
    from companion.knowledge import DocumentInput, DocumentSection, InvalidDocument

    await kb.create_collection("t", "c")
    spans = tuple(DocumentSection(start, end, page=1) for start, end in sections)
    with pytest.raises(InvalidDocument, match="section"):
        await kb.upsert("t", "c", [DocumentInput("x" * 50, id="d", sections=spans)])
