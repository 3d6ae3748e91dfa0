"""Knowledge fixtures: a started `KnowledgeBase` over each real store (the contract suite's parameter)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from companion.cache import TieredCache
from companion.knowledge import KnowledgeBase, SqliteStore, Store


async def _make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if kind == "sqlite":
        return SqliteStore(tmp_path / "knowledge")
    raise AssertionError(kind)


@pytest.fixture(params=["sqlite"])
async def kb(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KnowledgeBase]:
    """A started knowledge base with a fresh cache, over each store in turn."""
    store = await _make_store(request.param, tmp_path, request)
    base = KnowledgeBase(store, cache=TieredCache(), max_document_bytes=10_000)
    await base.start()
    try:
        yield base
    finally:
        await base.close()
