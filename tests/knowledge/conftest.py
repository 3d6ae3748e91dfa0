"""Knowledge fixtures: a started `KnowledgeBase` over each real store (the contract suite's parameter)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from companion.cache import TieredCache
from companion.knowledge import Embedder, KnowledgeBase, SqliteStore, Store
from tests._services import unavailable

MODEL_DIR = Path(__file__).parents[2] / ".models" / "all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    """The real exported MiniLM (`make model`); fails in CI when it is missing, skips locally."""
    from companion.knowledge._onnx_embedder import OnnxEmbedder

    directory = Path(os.environ.get("COMPANION_TEST_MODEL_DIR", MODEL_DIR))
    if not (directory / "manifest.json").exists():
        unavailable(f"the exported MiniLM model in {directory} (run `make model`)")
    return OnnxEmbedder(directory, threads=1)


async def _make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if kind == "sqlite":
        return SqliteStore(tmp_path / "knowledge")
    raise AssertionError(kind)


STORES = ["sqlite"]


@pytest.fixture(params=STORES)
async def kb(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KnowledgeBase]:
    """A started knowledge base with a fresh cache and no embedder, over each store in turn."""
    store = await _make_store(request.param, tmp_path, request)
    base = KnowledgeBase(store, cache=TieredCache(), max_document_bytes=10_000)
    await base.start()
    try:
        yield base
    finally:
        await base.close()


@pytest.fixture(params=STORES)
async def kb_vectors(
    request: pytest.FixtureRequest, tmp_path: Path, minilm: Embedder
) -> AsyncIterator[KnowledgeBase]:
    """A started knowledge base with the real MiniLM embedder, over each store in turn."""
    store = await _make_store(request.param, tmp_path, request)
    base = KnowledgeBase(store, minilm, cache=TieredCache())
    await base.start()
    try:
        yield base
    finally:
        await base.close()
