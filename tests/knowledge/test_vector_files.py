"""The embedded store's vector files: memory-mapped, kept in step, rebuilt from SQLite; HNSW beyond."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from companion.knowledge import SqliteStore
from companion.knowledge._filters import parse_filter
from companion.knowledge._models import PreparedChunk, PreparedDocument

DIMENSION = 64


def unit_vectors(count: int, seed: int) -> np.ndarray:
    """Random unit float32 vectors."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def prepared(doc_id: str, vector: np.ndarray, group: int) -> PreparedDocument:
    """A one-chunk document carrying its vector."""
    chunk = PreparedChunk(0, f"text of {doc_id}", 0, 10, vector.astype(np.float32).tobytes())
    return PreparedDocument(
        doc_id, f"text of {doc_id}", None, {"group": group}, None, doc_id, [chunk]
    )


class Corpus:
    """A store and the vectors it should hold, to compare its answers with brute force."""

    def __init__(self, root: Path, exact_max_chunks: int = 100_000) -> None:
        self.root = root
        self.exact_max_chunks = exact_max_chunks
        self.expected: dict[str, tuple[np.ndarray, int]] = {}
        self.store = self.new_store()

    def new_store(self) -> SqliteStore:
        return SqliteStore(self.root, exact_vector_max_chunks=self.exact_max_chunks)

    async def restart(self) -> None:
        await self.store.close()
        self.store = self.new_store()
        await self.store.start()

    async def put(self, vectors: np.ndarray, first: int = 0) -> None:
        docs = [prepared(f"d{first + i}", v, (first + i) % 4) for i, v in enumerate(vectors)]
        for start in range(0, len(docs), 100):
            await self.store.upsert("t", "c", docs[start : start + 100])
        for doc in docs:
            self.expected[doc.id] = (
                np.frombuffer(doc.chunks[0].vector or b"", np.float32),
                doc.metadata["group"],
            )

    async def delete(self, doc_id: str) -> None:
        await self.store.delete_document("t", "c", doc_id)
        del self.expected[doc_id]

    async def ids(self, query: np.ndarray, k: int, groups: list[int] | None = None) -> list[str]:
        conditions = parse_filter({"group": {"in": groups}}) if groups else ()
        hits = await self.store.search_vector(
            "t", "c", query.tolist(), k=k, conditions=conditions, timeout_ms=5000
        )
        found = await self.store.fetch_chunks([hit.key for hit in hits])
        return [found[hit.key].document_id for hit in hits]

    async def graph_ready(self) -> None:
        """Search once (which starts the HNSW build past the limit) and wait for the graph."""
        await self.ids(unit_vectors(1, 99)[0], 1)
        self.store._vectors.wait_for_graphs(timeout_s=120)
        (state,) = self.store._vectors._collections.values()
        assert state.graph is not None

    def exact_ids(self, query: np.ndarray, k: int, groups: list[int] | None = None) -> list[str]:
        items = [(i, v) for i, (v, g) in self.expected.items() if groups is None or g in groups]
        scores = np.array([float(v @ query) for _, v in items])
        return [items[i][0] for i in np.argsort(-scores)[:k]]


@pytest.fixture
async def corpus(tmp_path: Path) -> Corpus:
    made = Corpus(tmp_path / "knowledge")
    await made.store.start()
    await made.store.create_collection("t", "c", "", None)
    return made


def vector_dir(corpus: Corpus) -> Path:
    (directory,) = (corpus.root / "index" / "vectors").iterdir()
    return directory


async def test_a_restart_maps_the_files_instead_of_reading_sqlite(corpus: Corpus) -> None:
    await corpus.put(unit_vectors(200, 1))
    query = unit_vectors(1, 2)[0]
    assert await corpus.ids(query, 10) == corpus.exact_ids(query, 10)
    assert (vector_dir(corpus) / "vectors.f32").stat().st_size == 200 * DIMENSION * 4
    await corpus.restart()
    loads: list[int] = []
    loader = corpus.store._vectors.loader
    assert loader is not None
    corpus.store._vectors.loader = lambda key: loads.append(key) or loader(key)  # type: ignore[func-returns-value]
    assert await corpus.ids(query, 10) == corpus.exact_ids(query, 10)
    assert loads == []
    snapshot = corpus.store._vectors._collections[int(vector_dir(corpus).name)].log.snapshot()
    assert isinstance(snapshot.vectors, np.memmap)
    await corpus.store.close()


@pytest.mark.parametrize("damage", ["delete", "truncate", "stale"])
async def test_missing_truncated_or_stale_files_are_rebuilt_from_sqlite(
    corpus: Corpus, damage: str
) -> None:
    await corpus.put(unit_vectors(150, 3))
    query = unit_vectors(1, 4)[0]
    assert await corpus.ids(query, 5) == corpus.exact_ids(query, 5)
    directory = vector_dir(corpus)
    old = {name: (directory / name).read_bytes() for name in os.listdir(directory)}
    await corpus.put(unit_vectors(50, 5), first=150)
    await corpus.delete("d0")
    await corpus.store.close()
    if damage == "delete":
        for name in os.listdir(directory):
            (directory / name).unlink()
    elif damage == "truncate":
        os.truncate(directory / "vectors.f32", 10 * DIMENSION * 4 + 7)
    else:  # an older copy of the files, consistent in itself but behind SQLite
        for name, data in old.items():
            (directory / name).write_bytes(data)
    await corpus.restart()
    for seed in range(6, 10):
        query = unit_vectors(1, seed)[0]
        assert await corpus.ids(query, 10) == corpus.exact_ids(query, 10)
    await corpus.store.close()


async def test_updates_and_deletes_tombstone_rows_and_compaction_drops_them(corpus: Corpus) -> None:
    await corpus.put(unit_vectors(1200, 11))
    query = unit_vectors(1, 12)[0]
    await corpus.ids(query, 1)  # open the files
    await corpus.put(unit_vectors(3, 13), first=0)  # new vectors for d0..d2
    assert await corpus.ids(query, 10) == corpus.exact_ids(query, 10)
    log = corpus.store._vectors._collections[int(vector_dir(corpus).name)].log
    assert log.rows == 1203
    assert log.alive == 1200
    for i in range(3, 403):
        await corpus.delete(f"d{i}")
    # A quarter of the rows dead (301 of 1203): the files were rewritten without them.
    assert log.alive == 800
    assert log.rows == 800 + 102
    assert (vector_dir(corpus) / "vectors.f32").stat().st_size == log.rows * DIMENSION * 4
    assert await corpus.ids(query, 10) == corpus.exact_ids(query, 10)
    await corpus.restart()
    assert await corpus.ids(query, 10) == corpus.exact_ids(query, 10)
    await corpus.store.close()


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    """Mean recall@k of `found` against `truth`."""
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


@pytest.fixture
async def large(tmp_path: Path) -> Corpus:
    made = Corpus(tmp_path / "knowledge", exact_max_chunks=50)
    await made.store.start()
    await made.store.create_collection("t", "c", "", None)
    await made.put(unit_vectors(400, 21))
    return made


async def test_past_the_exact_limit_hnsw_answers_with_high_recall(large: Corpus) -> None:
    queries = unit_vectors(40, 22)
    await large.graph_ready()
    found = [await large.ids(q, 10) for q in queries]
    assert recall(found, [large.exact_ids(q, 10) for q in queries]) >= 0.95
    filtered = [await large.ids(q, 10, groups=[1]) for q in queries]
    assert recall(filtered, [large.exact_ids(q, 10, groups=[1]) for q in queries]) >= 0.95
    await large.store.close()


async def test_hnsw_reflects_updates_and_deletes(large: Corpus) -> None:
    queries = unit_vectors(20, 23)
    await large.graph_ready()
    # Each query's own vector given to a document: it must come back first.
    await large.put(queries[:10], first=0)
    for i in range(10, 60):
        await large.delete(f"d{i}")
    for i, query in enumerate(queries[:10]):
        assert (await large.ids(query, 10))[0] == f"d{i}"
    deleted = {f"d{i}" for i in range(10, 60)}
    for query in queries:
        assert not deleted & set(await large.ids(query, 50))
    await large.store.close()


@pytest.mark.parametrize("damage", [None, "crash", "delete", "truncate"])
async def test_the_hnsw_file_reloads_or_is_rebuilt(large: Corpus, damage: str | None) -> None:
    queries = unit_vectors(20, 24)
    await large.graph_ready()
    await large.put(unit_vectors(30, 25), first=400)  # after the graph's save: replayed on open
    await large.delete("d3")
    state = large.store._vectors._collections[int(vector_dir(large).name)]
    assert state.graph is not None
    if damage == "crash":  # as if the process died: the graph on disk predates the last writes
        state.graph._unsaved = 0
    await large.store.close()
    graph_file = vector_dir(large) / "hnsw.usearch"
    saved_at = graph_file.stat().st_mtime_ns
    if damage == "delete":
        graph_file.unlink()
    elif damage == "truncate":
        os.truncate(graph_file, 100)
    await large.restart()
    await large.graph_ready()  # loaded at once, or rebuilt in the background
    found = [await large.ids(q, 10) for q in queries]
    assert recall(found, [large.exact_ids(q, 10) for q in queries]) >= 0.95
    assert all("d3" not in ids for ids in found)
    if damage in (None, "crash"):
        assert graph_file.stat().st_mtime_ns == saved_at  # loaded, not rebuilt
    await large.store.close()
