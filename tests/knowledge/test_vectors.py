"""Vector and hybrid search with the real MiniLM model, over every store."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from companion.knowledge import (
    EmbeddingInfo,
    EmbeddingModelMismatch,
    KnowledgeBase,
    SqliteStore,
)
from companion.knowledge._onnx_embedder import OnnxEmbedder
from tests.knowledge.conftest import MODEL_DIR, VECTOR_STORES, _make_store

DOCS = [
    {
        "id": "cooking",
        "text": "Simmer the tomato sauce slowly with garlic and basil.",
        "metadata": {"topic": "food"},
    },
    {
        "id": "space",
        "text": "The rocket reached orbit and deployed its satellite.",
        "metadata": {"topic": "science"},
    },
    {
        "id": "pets",
        "text": "My puppy loves chasing the ball in the park.",
        "metadata": {"topic": "animals"},
    },
]


def test_onnx_output_matches_torch_reference(minilm: OnnxEmbedder) -> None:
    reference = json.loads((MODEL_DIR / "reference.json").read_text())
    vectors = minilm.embed(reference["texts"])
    cosines = (vectors * np.asarray(reference["vectors"], dtype=np.float32)).sum(axis=1)
    assert cosines.min() > 0.9999
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.info.dimension == vectors.shape[1] == 384


def test_a_tampered_model_is_refused(tmp_path: object, minilm: OnnxEmbedder) -> None:
    from pathlib import Path

    from companion.errors import ConfigError

    copy = Path(str(tmp_path)) / "model"
    copy.mkdir()
    for name in ("tokenizer.json", "manifest.json"):
        (copy / name).write_bytes((MODEL_DIR / name).read_bytes())
    (copy / "model.onnx").write_bytes(b"not the model")
    with pytest.raises(ConfigError, match="sha256"):
        OnnxEmbedder(copy)


async def test_vector_search_finds_meaning_without_shared_words(kb_vectors: KnowledgeBase) -> None:
    await kb_vectors.create_collection("t", "c")
    await kb_vectors.upsert("t", "c", DOCS)
    result = await kb_vectors.search("t", "c", "a dog playing outside", mode="vector", k=3)
    assert result.results[0].document_id == "pets"
    assert result.embedding_ms > 0
    bm25 = await kb_vectors.search("t", "c", "a dog playing outside", mode="bm25")
    assert bm25.results == []


async def test_hybrid_fuses_both_rankings_and_respects_filters(kb_vectors: KnowledgeBase) -> None:
    await kb_vectors.create_collection("t", "c")
    await kb_vectors.upsert("t", "c", DOCS)
    result = await kb_vectors.search("t", "c", "satellite launch into space", mode="hybrid", k=3)
    assert result.results[0].document_id == "space"
    assert result.results[0].snippet is not None
    assert "<mark>satellite</mark>" in result.results[0].snippet
    filtered = await kb_vectors.search(
        "t", "c", "satellite", mode="hybrid", k=3, filter={"topic": {"in": ["food", "animals"]}}
    )
    assert {hit.document_id for hit in filtered.results} <= {"cooking", "pets"}


async def test_collection_records_its_model(
    kb_vectors: KnowledgeBase, minilm: OnnxEmbedder
) -> None:
    created = await kb_vectors.create_collection("t", "c")
    assert created.embedding == minilm.info


async def test_a_different_model_is_a_clear_error_until_reindex(
    tmp_path: object, minilm: OnnxEmbedder
) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    kb = KnowledgeBase(SqliteStore(root), minilm)
    await kb.start()
    await kb.create_collection("t", "c")
    await kb.upsert("t", "c", DOCS)
    await kb.close()

    class OtherVersion:
        info = replace(minilm.info, version="other")

        def embed(self, texts: list[str]) -> object:
            return minilm.embed(texts)

    other = KnowledgeBase(SqliteStore(root), OtherVersion())
    await other.start()
    try:
        with pytest.raises(EmbeddingModelMismatch, match="companion reindex"):
            await other.search("t", "c", "dog", mode="vector")
        with pytest.raises(EmbeddingModelMismatch):
            await other.upsert("t", "c", [{"text": "new"}])
        assert await other.search("t", "c", "puppy", mode="bm25")  # BM25 needs no model
        assert await other.reindex("t", "c") == 3
        assert (await other.get_collection("t", "c")).embedding == EmbeddingInfo(
            minilm.info.model, "other", 384
        )
        hits = await other.search("t", "c", "a dog playing outside", mode="vector")
        assert hits.results[0].document_id == "pets"
    finally:
        await other.close()


async def _model_less_collection(
    store: str, tmp_path: Path, request: pytest.FixtureRequest, minilm: OnnxEmbedder
) -> KnowledgeBase:
    """Collection "c" holding DOCS, written by a knowledge base without a model; then a knowledge
    base with the model over the same store (not started)."""
    plain = KnowledgeBase(await _make_store(store, tmp_path, request))
    await plain.start()
    await plain.create_collection("t", "c")
    await plain.upsert("t", "c", DOCS)
    await plain.close()
    return KnowledgeBase(await _make_store(store, tmp_path, request), minilm)


@pytest.mark.parametrize("store", VECTOR_STORES)
@pytest.mark.parametrize("first", ["search", "write", "wait"])
async def test_a_collection_made_without_a_model_takes_it_when_first_used(
    tmp_path: Path, request: pytest.FixtureRequest, minilm: OnnxEmbedder, first: str, store: str
) -> None:
    """No `companion reindex` (which a running service's store refuses): its chunks have no vector
    to disagree with, so the first vector search, write or wait records the model, the queue
    embeds the chunks, and a search says how many are still waiting meanwhile."""
    kb = await _model_less_collection(store, tmp_path, request, minilm)
    await kb.start()
    try:
        # A start gives no model to collections nobody asks vectors of.
        assert ("t", "c") not in await kb.store.collections_pending_embeddings()
        assert (await kb.get_collection("t", "c")).embedding is None
        assert kb.embedding_queue is not None
        await kb.embedding_queue.close()  # so the waiting chunks are seen before they are embedded
        if first == "search":
            waiting = await kb.search("t", "c", "puppy in the park", mode="hybrid")
            assert waiting.pending_embeddings == 3
            assert "3 chunks of 'c' are still waiting" in waiting.warnings[0]
            assert waiting.results[0].document_id == "pets"  # BM25 finds them meanwhile
        elif first == "write":
            await kb.upsert("t", "c", [{"id": "moon", "text": "The lunar lander touched down."}])
        if first != "wait":
            assert (await kb.get_collection("t", "c")).embedding == minilm.info
        await kb.embedding_queue.start()
        progress = await kb.wait_for_embeddings("t", "c", timeout_s=60)
        assert progress.pending == 0
        assert progress.embedded == (4 if first == "write" else 3)
        result = await kb.search("t", "c", "a dog playing outside", mode="vector")
        assert result.results[0].document_id == "pets"
        assert not result.warnings
        # Its documents were written without a model; written again unchanged, none is rewritten.
        report = await kb.ingest("t", "c", DOCS)
        assert (report.documents_skipped, report.chunks_written) == (3, 0)
    finally:
        await kb.close()


@pytest.mark.parametrize("store", VECTOR_STORES)
async def test_a_search_hands_chunks_another_process_left_waiting_to_its_queue(
    tmp_path: Path, request: pytest.FixtureRequest, minilm: OnnxEmbedder, store: str
) -> None:
    """A CLI search beside the service gave the collection its model and exited before its own
    queue embedded anything: the service's next search sees the waiting chunks and embeds them."""
    kb = await _model_less_collection(store, tmp_path, request, minilm)
    await kb.start()
    try:
        await kb.store.adopt_embedding("t", "c", minilm.info)  # as the exited process did
        waiting = await kb.search("t", "c", "puppy in the park", mode="hybrid")
        assert waiting.pending_embeddings == 3
        # Progress is only read, never asked for: only the search's hand-over embeds them.
        for _ in range(6000):
            if not (await kb.embedding_progress("t", "c")).pending:
                break
            await asyncio.sleep(0.01)  # real-time: the queue embeds on this loop's worker
        else:
            pytest.fail("the waiting chunks were never embedded")
    finally:
        await kb.close()


@pytest.mark.postgres
async def test_postgres_without_pgvector_degrades_to_bm25(
    database_url: str, pg_schema: str, minilm: OnnxEmbedder, tmp_path: Path
) -> None:
    from companion.knowledge._postgres_store import PostgresStore

    store = PostgresStore(database_url, schema=pg_schema, index_dir=tmp_path / "pg-index")
    kb = KnowledgeBase(store, minilm)
    await kb.start()
    try:
        assert "no pgvector" in await kb.health()
        await kb.create_collection("t", "c")
        await kb.upsert("t", "c", DOCS)
        result = await kb.search("t", "c", "puppy park", mode="hybrid")
        assert [hit.document_id for hit in result.results] == ["pets"]
        assert result.warnings
        assert "pgvector" in result.warnings[0]
    finally:
        await kb.close()
