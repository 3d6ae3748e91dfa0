"""The background embedding queue: large writes commit at once and are embedded later, durably."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from companion.cache import TieredCache
from companion.knowledge import Embedder, EmbeddingInfo, KnowledgeBase, SqliteStore
from companion.monitoring import Monitor
from tests.knowledge.conftest import _make_store

WORDS = ["apple", "river", "engine", "violin", "galaxy", "pepper", "tunnel", "meadow"]


class FakeEmbedder:
    """Deterministic bag-of-words vectors; records the size of every call it gets."""

    info = EmbeddingInfo("fake-bow", "1", 16)

    def __init__(self) -> None:
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            self.calls.append(len(texts))
        vectors = []
        for text in texts:
            vector = np.full(16, 0.01, dtype=np.float32)
            for word in text.lower().split():
                vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % 16] += 1.0
            vectors.append((vector / np.linalg.norm(vector)).tolist())
        return vectors


def documents(count: int) -> list[dict[str, object]]:
    """`count` short documents, one chunk each, named after a word they repeat."""
    return [
        {"id": f"d{i}", "text": f"{WORDS[i % len(WORDS)]} " * 5 + f"number {i}"}
        for i in range(count)
    ]


def knowledge_base(root: Path, embedder: Embedder, monitor: Monitor | None = None) -> KnowledgeBase:
    """A knowledge base embedding writes of more than 3 chunks in the background, 8 at a time."""
    return KnowledgeBase(
        SqliteStore(root),
        embedder,
        cache=TieredCache(),
        inline_embed_max_chunks=3,
        embedding_batch_chunks=8,
        monitor=monitor,
    )


async def test_small_writes_embed_inline_and_large_ones_are_left_to_the_queue(
    tmp_path: Path,
) -> None:
    kb = knowledge_base(tmp_path, FakeEmbedder())
    await kb.start()
    assert kb.embedding_queue is not None
    await kb.embedding_queue.close()  # nobody embeds in the background: the rule shows alone
    await kb.create_collection("t", "c")
    await kb.upsert("t", "c", documents(3))
    assert (await kb.embedding_progress("t", "c")).to_dict() == {"pending": 0, "embedded": 3}
    await kb.upsert("t", "c", [{**doc, "id": f"x{i}"} for i, doc in enumerate(documents(20))])
    assert (await kb.embedding_progress("t", "c")).to_dict() == {"pending": 20, "embedded": 3}
    report = await kb.ingest("t", "c", [{"id": "bulk", "text": "one small chunk"}])
    assert report.chunks_written == 1  # bulk ingest always leaves embedding to the queue
    assert (await kb.embedding_progress("t", "c")).to_dict() == {"pending": 21, "embedded": 3}
    await kb.close()


async def test_pending_chunks_are_bm25_searchable_and_vector_search_says_so(
    tmp_path: Path,
) -> None:
    kb = knowledge_base(tmp_path, FakeEmbedder())
    await kb.start()
    assert kb.embedding_queue is not None
    await kb.embedding_queue.close()
    await kb.create_collection("t", "c")
    await kb.upsert("t", "c", documents(40))
    bm25 = await kb.search("t", "c", "violin", mode="bm25", k=5)
    assert len(bm25.results) == 5
    assert not bm25.warnings
    vector = await kb.search("t", "c", "violin", mode="vector", k=5)
    assert vector.results == []
    assert vector.pending_embeddings == 40
    assert "40 chunks" in vector.warnings[0]
    hybrid = await kb.search("t", "c", "violin", mode="hybrid", k=5)
    assert {hit.document_id for hit in hybrid.results} == {f"d{i}" for i in range(3, 40, 8)}
    assert hybrid.to_dict()["pending_embeddings"] == 40
    await kb.close()


async def test_a_restart_resumes_the_queue_and_the_gauge_follows(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    kb = knowledge_base(tmp_path, embedder)
    await kb.start()
    assert kb.embedding_queue is not None
    await kb.embedding_queue.close()
    await kb.create_collection("t", "c")
    await kb.upsert("t", "c", documents(30))
    await kb.close()  # the process stops with 30 chunks waiting

    monitor = Monitor()
    again = knowledge_base(tmp_path, embedder, monitor)
    await again.start()
    gauge = monitor.gauge("companion_knowledge_embeddings_pending").labels()
    assert gauge.value == 30  # found at start: the store is the queue
    seen: list[int] = []
    done = await again.wait_for_embeddings(
        "t", "c", timeout_s=30, on_progress=lambda p: seen.append(p.pending)
    )
    assert done.to_dict() == {"pending": 0, "embedded": 30}
    assert seen[-1] == 0
    assert max(embedder.calls) == 8  # batches of `embedding_batch_chunks`
    assert gauge.value == 0
    result = await again.search("t", "c", "violin violin", mode="vector", k=3)
    assert not result.warnings
    assert result.pending_embeddings == 0
    assert result.results[0].document_id in {f"d{i}" for i in range(3, 30, 8)}
    await again.close()


async def test_ingest_with_the_real_model_is_embedded_in_the_background(
    tmp_path: Path, minilm: Embedder
) -> None:
    kb = KnowledgeBase(SqliteStore(tmp_path), minilm, inline_embed_max_chunks=4)
    await kb.start()
    await kb.create_collection("t", "c")
    texts = [
        "My puppy loves chasing the ball in the park.",
        "The rocket reached orbit and deployed its satellite.",
        "Simmer the tomato sauce slowly with garlic and basil.",
    ]
    docs = [{"id": f"d{i}", "text": f"{texts[i % 3]} Note {i}."} for i in range(24)]
    report = await kb.ingest("t", "c", docs, batch_size=12)
    assert report.chunks_written == 24
    done = await kb.wait_for_embeddings("t", "c", timeout_s=120)
    assert done.to_dict() == {"pending": 0, "embedded": 24}
    result = await kb.search("t", "c", "a dog playing outside", mode="vector", k=5)
    assert {int(hit.document_id[1:]) % 3 for hit in result.results} == {0}
    # The queue stored the model's own vectors, exactly as an inline write would have.
    with sqlite3.connect(tmp_path / "knowledge.sqlite3") as db:
        text, blob = db.execute(
            "SELECT c.text, c.vector FROM chunks c JOIN documents d ON c.document_key = d.key "
            "WHERE d.id = 'd5'"
        ).fetchone()
    expected = np.asarray(minilm.embed([text])[0], dtype=np.float32)
    assert np.allclose(np.frombuffer(blob, dtype=np.float32), expected, atol=1e-6)
    await kb.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_every_store_keeps_the_queue_across_a_restart(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    first = KnowledgeBase(
        await _make_store(kind, tmp_path, request), FakeEmbedder(), inline_embed_max_chunks=3
    )
    await first.start()
    assert first.embedding_queue is not None
    await first.embedding_queue.close()
    await first.create_collection("t", "c")
    await first.upsert("t", "c", documents(12))
    assert (await first.embedding_progress("t", "c")).pending == 12
    await first.close()
    second = KnowledgeBase(await _make_store(kind, tmp_path, request), FakeEmbedder())
    await second.start()
    try:
        done = await second.wait_for_embeddings("t", "c", timeout_s=30)
        assert done.to_dict() == {"pending": 0, "embedded": 12}
    finally:
        await second.close()
