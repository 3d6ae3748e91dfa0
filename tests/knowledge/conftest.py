"""Knowledge fixtures: a started `KnowledgeBase` over each real store (the contract suite's parameter)."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
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


@pytest.fixture(scope="session")
def pgvector_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL 16 with pgvector, run by the `pgserver` package for this session."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset
        try:
            import pgserver
        except ImportError:
            unavailable("pgserver (PostgreSQL with pgvector)")
        server = pgserver.get_server(tmp_path_factory.mktemp("pgserver"), cleanup_mode="stop")
    import psycopg

    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture
def pgvector_schema(pgvector_url: str) -> Iterator[str]:
    """A schema of this test's own on the pgvector server, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pgvector_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield schema
    with psycopg.connect(pgvector_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def _make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if kind == "sqlite":
        return SqliteStore(tmp_path / "knowledge")
    from companion.knowledge._postgres_store import PostgresStore

    if kind == "pgvector":
        url = request.getfixturevalue("pgvector_url")
        schema = request.getfixturevalue("pgvector_schema")
    else:
        url = request.getfixturevalue("database_url")
        schema = request.getfixturevalue("pg_schema")
    return PostgresStore(
        url, schema=schema, max_connections=4, index_dir=tmp_path / "knowledge-postgres"
    )


STORES = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("pgvector", marks=pytest.mark.postgres),
]
VECTOR_STORES = ["sqlite", pytest.param("pgvector", marks=pytest.mark.postgres)]


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


@pytest.fixture(params=VECTOR_STORES)
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
