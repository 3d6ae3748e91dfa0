"""`PostgresStore`: the store for several nodes. PostgreSQL holds everything; BM25 runs on each
node's tantivy index derived from it (`_postgres_fulltext.py`); vectors use pgvector when present.

Every node finds every acknowledged write: a search first brings its node's index up to the version
PostgreSQL holds. Without the pgvector extension the store reports `vector_problem`, and the
knowledge base serves vector and hybrid searches with BM25 and says so (in results and `/readyz`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from companion.errors import DependencyUnavailable, FeatureUnavailable
from companion.knowledge._postgres_collections import PostgresCollections
from companion.knowledge._postgres_documents import PostgresDocuments
from companion.knowledge._postgres_fulltext import CollectionState, PostgresFullText
from companion.knowledge._postgres_schema import BASE_MIGRATIONS, PGVECTOR_MIGRATION
from companion.knowledge._postgres_search import PostgresSearch

__all__ = ["PostgresStore"]

_MIGRATION_LOCK = 0x6B6E6F77  # pg_advisory_xact_lock key: one node migrates at a time


class PostgresStore(PostgresCollections, PostgresDocuments, PostgresSearch):
    """A knowledge store in PostgreSQL at `dsn` (tables in `schema`), through an async pool.

    This node's BM25 indexes live under `index_dir` (derived: deleting it costs a rebuild, nothing
    else; one process per directory), or in a temporary directory removed on `close` when it is
    None. `follow=False` suits one-off commands: no catch-up at start and no listener, each
    collection's index built at its first search.
    """

    def __init__(
        self,
        dsn: str,
        *,
        index_dir: Path | None = None,
        follow: bool = True,
        schema: str = "public",
        min_connections: int = 1,
        max_connections: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            from psycopg_pool import AsyncConnectionPool
        except ImportError:
            raise FeatureUnavailable(
                "COMPANION_DATABASE_URL needs psycopg: `pip install 'companion[postgres]'`"
            ) from None
        self._pool = AsyncConnectionPool(
            dsn,
            min_size=min_connections,
            max_size=max_connections,
            # `public` too: pgvector's `vector` type lives where the extension was created.
            kwargs={"options": f"-c search_path={schema},public", "autocommit": True},
            # A connection the server dropped (restart, failover, idle kill) is replaced when
            # checked out, so no request ever sees it.
            check=AsyncConnectionPool.check_connection,
            open=False,
        )
        self._clock = clock
        self._pgvector = False
        self._schema = schema
        self._transient_dir: Path | None = None
        if index_dir is None:
            index_dir = self._transient_dir = Path(tempfile.mkdtemp(prefix="companion-bm25-"))
        self._fulltext = PostgresFullText(
            self._pool, index_dir, schema=schema, dsn=dsn, follow=follow
        )

    @property
    def fulltext(self) -> PostgresFullText:
        """This node's BM25 indexes (their versions, for tests and benchmarks)."""
        return self._fulltext

    async def collection_state(self, tenant: str, name: str) -> CollectionState:
        """The collection's key, the version of its last committed write (what each node's index
        catches up to) and its creation time."""
        async with self._pool.connection() as conn:
            return await self._state(conn, tenant, name)

    async def start(self) -> None:
        """Open the pool, apply pending migrations (pgvector's only if the server has it), and
        bring this node's BM25 indexes up to date."""
        import psycopg

        try:
            await self._pool.open(wait=True, timeout=10)
        except psycopg.Error as exc:
            raise DependencyUnavailable(f"PostgreSQL is unreachable: {exc}") from exc
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS kb_migrations (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            cursor = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM kb_migrations")
            (version,) = await cursor.fetchone() or (0,)
            for number, script in enumerate(BASE_MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        await conn.execute(statement)
                await conn.execute("INSERT INTO kb_migrations (version) VALUES (%s)", (number,))
            cursor = await conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
            )
            self._pgvector = await cursor.fetchone() is not None
            if self._pgvector:
                for statement in PGVECTOR_MIGRATION.split(";"):
                    if statement.strip():
                        await conn.execute(statement)
            cursor = await conn.execute("SELECT id FROM kb_instance")
            (instance_id,) = await cursor.fetchone() or ("",)
        await self._fulltext.start(str(instance_id))

    async def close(self) -> None:
        """Stop following, release the indexes and close the pool."""
        try:
            await self._fulltext.close()
        finally:
            await self._pool.close()
            if self._transient_dir is not None:
                shutil.rmtree(self._transient_dir, ignore_errors=True)

    async def health(self) -> str:
        """Counts read from the server, and whether pgvector is there."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT (SELECT COUNT(*) FROM kb_collections), (SELECT COUNT(*) FROM kb_chunks)"
            )
            collections, chunks = await cursor.fetchone() or (0, 0)
        vectors = "pgvector" if self._pgvector else "no pgvector"
        return f"postgres ({vectors}): {collections} collections, {chunks} chunks"
