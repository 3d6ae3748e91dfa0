"""The embedded store's durability: the derived indexes catch up from SQLite and can be rebuilt."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from companion.knowledge import KnowledgeBase, SqliteStore
from companion.knowledge._tantivy_index import FullTextIndex


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
