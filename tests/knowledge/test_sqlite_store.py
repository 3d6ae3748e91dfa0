"""The embedded store's durability: the derived indexes catch up from SQLite and can be rebuilt."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from companion.knowledge import KnowledgeBase, SqliteStore, _tantivy_index
from companion.knowledge._tantivy_index import FullTextIndex, document_rows


async def _ids(kb: KnowledgeBase, query: str) -> list[str]:
    return [hit.document_id for hit in (await kb.search("t", "c", query)).results]


async def test_index_catches_up_after_a_crash_between_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    kb = KnowledgeBase(SqliteStore(tmp_path))
    await kb.start()
    await kb.create_collection("t", "c")
    await kb.upsert("t", "c", [{"id": "a", "text": "apples"}])

    def crash(*args: object) -> None:
        raise RuntimeError("simulated crash before the index commit")

    # The SQLite commits succeed (the writes are acknowledged); the index updates do not.
    monkeypatch.setattr(FullTextIndex, "apply", crash)
    await kb.upsert("t", "c", [{"id": "b", "text": "bananas"}])
    await kb.delete_document("t", "c", "a")
    assert "retried" in caplog.text
    assert await _ids(kb, "bananas") == []  # not in the index until the catch-up
    assert await _ids(kb, "apples") == []  # results are read from SQLite: never a deleted one
    await kb.close()
    monkeypatch.undo()
    kb = KnowledgeBase(SqliteStore(tmp_path))
    await kb.start()
    try:
        assert await _ids(kb, "bananas") == ["b"]
        assert await _ids(kb, "apples") == []
    finally:
        await kb.close()


async def test_deleting_the_index_rebuilds_it_from_sqlite(tmp_path: Path) -> None:
    kb = KnowledgeBase(SqliteStore(tmp_path))
    await kb.start()
    await kb.create_collection("t", "c")
    await kb.upsert("t", "c", [{"id": "a", "text": "apples"}, {"id": "b", "text": "bananas"}])
    await kb.close()
    shutil.rmtree(tmp_path / "index")
    kb = KnowledgeBase(SqliteStore(tmp_path))
    await kb.start()
    try:
        assert await _ids(kb, "apples bananas") != []
        assert sorted(await _ids(kb, "apples bananas")) == ["a", "b"]
        assert await kb.store.health() == "sqlite: 1 collections, 2 chunks"
    finally:
        await kb.close()


async def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    kb = KnowledgeBase(store)
    await kb.start()
    try:
        await kb.create_collection("t", "c")
        await kb.delete_collection("t", "c")
        await kb.create_collection("t", "c")
        assert await _ids(kb, "anything") == []
    finally:
        await kb.close()


async def test_small_unfiltered_bm25_runs_inline_and_never_waits_for_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore(tmp_path)
    kb = KnowledgeBase(store)
    await kb.start()
    hops: list[object] = []
    real_run = store._run

    async def counting_run(fn: object, *args: object) -> object:
        hops.append(fn)
        return await real_run(fn, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_run", counting_run)
    try:
        await kb.create_collection("t", "c")
        await kb.upsert("t", "c", [{"id": "a", "text": "apples", "metadata": {"n": 1}}])
        hops.clear()
        # A writer holding the write lock for a whole batch must not hold up an inline search.
        held = threading.Event()

        def writer() -> None:
            with store._lock:
                held.set()
                time.sleep(1.0)

        thread = threading.Thread(target=writer)
        thread.start()
        held.wait()
        started = time.monotonic()
        assert await _ids(kb, "apples") == ["a"]
        assert time.monotonic() - started < 0.5
        thread.join()
        assert hops == []
        # A filter (an SQLite scan) and a collection over the limit go to a worker thread.
        result = await kb.search("t", "c", "apples", filter={"n": 1})
        assert [hit.document_id for hit in result.results] == ["a"]
        assert len(hops) == 1
        monkeypatch.setattr(_tantivy_index, "INLINE_SEARCH_MAX_CHUNKS", 0)
        assert await _ids(kb, "apples") == ["a"]
        assert len(hops) == 2
    finally:
        await kb.close()


def test_reapplying_a_document_replaces_its_entries_in_the_full_text_index(tmp_path: Path) -> None:
    index = FullTextIndex(tmp_path)
    rows = [(1, 7, None, "the owl sleeps"), (2, 7, None, "the owl wakes"), (3, 8, None, "a cat")]
    documents = document_rows(
        [(7, None, "the owl sleeps\n\nthe owl wakes"), (8, None, "a cat")], rows
    )
    index.apply(1, [], rows, documents)
    # The background embedder re-applies a document once its vectors land: same entries again.
    index.apply(1, [7], rows[:2], documents[:1])
    assert index.chunk_count(1) == 3
    [owl] = index.search(1, ["owl"], 10, None)
    # One document matches: it answers with up to `k` of its passages.
    assert (owl.key, sorted(chunk.key for chunk in owl.chunks)) == (7, [1, 2])
    index.apply(1, [7, 8], [], [])
    assert index.chunk_count(1) == 0
    assert index.search(1, ["owl"], 10, None) == []
    index.close()


def test_documents_are_ranked_whole_and_each_brings_its_best_passage(tmp_path: Path) -> None:
    """A document holding both words, in different chunks, outranks one whose single chunk
    holds one of them twice: its chunks alone would each have ranked lower."""
    index = FullTextIndex(tmp_path)
    chunks = [
        (1, 7, None, "the heron waits in the reeds"),
        (2, 7, None, "at dusk the marsh goes quiet"),
        (3, 8, None, "a heron, another heron, and a gull"),
    ]
    documents = [
        (7, None, "the heron waits in the reeds\n\nat dusk the marsh goes quiet"),
        (8, None, "a heron, another heron, and a gull"),
    ]
    index.apply(1, [], chunks, document_rows(documents, chunks))
    ranked = index.search(1, ["heron", "marsh"], 1, None)
    assert [(document.key, [c.key for c in document.chunks]) for document in ranked] == [(7, [2])]
    both = index.search(1, ["heron", "marsh"], 2, None)
    assert [document.key for document in both] == [7, 8]
    # `k` documents matched: one passage each.
    assert [len(document.chunks) for document in both] == [1, 1]
    # Limited to a filter's documents, the other one alone answers.
    assert [document.key for document in index.search(1, ["heron"], 5, [8])] == [8]
    index.close()


async def test_an_index_of_an_older_format_is_rebuilt_at_start(tmp_path: Path) -> None:
    kb = KnowledgeBase(SqliteStore(tmp_path))
    await kb.start()
    await kb.create_collection("t", "c")
    await kb.upsert("t", "c", [{"id": "a", "title": "Lighthouses", "text": "A beam at night."}])
    await kb.close()
    (tmp_path / "index" / "format").write_text("1")  # as an index built before titles
    kb = KnowledgeBase(SqliteStore(tmp_path))
    await kb.start()
    try:
        assert (tmp_path / "index" / "format").read_text() == str(_tantivy_index.INDEX_FORMAT)
        assert await _ids(kb, "lighthouses") == ["a"]
    finally:
        await kb.close()
