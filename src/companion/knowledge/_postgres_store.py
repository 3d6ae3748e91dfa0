"""`PostgresStore`: the store for several nodes. tsvector + GIN for full text, pgvector when present.

Everything lives in PostgreSQL, so every node sees every acknowledged write and there is no derived
index to catch up. Without the pgvector extension the store reports `vector_problem`, and the
knowledge base serves vector and hybrid searches with BM25 and says so (in results and `/readyz`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from companion.errors import DependencyUnavailable, FeatureUnavailable
from companion.knowledge._errors import (
    CollectionExists,
    CollectionNotFound,
    DocumentNotFound,
    SearchTimeout,
)
from companion.knowledge._filters import Condition, to_postgres
from companion.knowledge._models import (
    ChunkRecord,
    Collection,
    Document,
    EmbeddingInfo,
    Page,
    PreparedDocument,
    ScoredChunk,
)
from companion.knowledge._postgres_schema import BASE_MIGRATIONS, PGVECTOR_MIGRATION
from companion.knowledge._query import text_analyzer

__all__ = ["PostgresStore"]

_MIGRATION_LOCK = 0x6B6E6F77  # pg_advisory_xact_lock key: one node migrates at a time
_COLLECTION = "key, tenant, name, description, created_at, model, model_version, dimension"
_COUNTS = (
    "(SELECT COUNT(*) FROM kb_documents d WHERE d.collection_key = c.key), "
    "(SELECT COUNT(*) FROM kb_chunks k WHERE k.collection_key = c.key)"
)
_DOCUMENT = (
    "d.id, d.text, d.title, d.metadata, d.source, d.content_hash, d.created_at, d.updated_at, "
    "(SELECT COUNT(*) FROM kb_chunks k WHERE k.document_key = d.key)"
)


class PostgresStore:
    """A knowledge store in PostgreSQL at `dsn` (tables in `schema`), through an async pool."""

    def __init__(
        self,
        dsn: str,
        *,
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

    @property
    def vector_problem(self) -> str | None:
        """None with pgvector; otherwise why vector search degrades to BM25."""
        if self._pgvector:
            return None
        return "the PostgreSQL server has no pgvector extension; vector and hybrid search use BM25"

    async def start(self) -> None:
        """Open the pool and apply pending migrations (pgvector's only if the server has it)."""
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

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    async def health(self) -> str:
        """Counts read from the server, and whether pgvector is there."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT (SELECT COUNT(*) FROM kb_collections), (SELECT COUNT(*) FROM kb_chunks)"
            )
            collections, chunks = await cursor.fetchone() or (0, 0)
        vectors = "pgvector" if self._pgvector else "no pgvector"
        return f"postgres ({vectors}): {collections} collections, {chunks} chunks"

    async def _fetchone(self, sql: str, params: Sequence[Any]) -> Any:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchone()

    async def _key(self, conn: Any, tenant: str, name: str) -> int:
        cursor = await conn.execute(
            "SELECT key FROM kb_collections WHERE tenant = %s AND name = %s", (tenant, name)
        )
        row = await cursor.fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return int(row[0])

    async def create_collection(
        self, tenant: str, name: str, description: str, embedding: EmbeddingInfo | None
    ) -> Collection:
        """Create a collection, or `CollectionExists`."""
        import psycopg

        model = (
            (embedding.model, embedding.version, embedding.dimension) if embedding else (None,) * 3
        )
        try:
            await self._fetchone(
                "INSERT INTO kb_collections (tenant, name, description, created_at, model, "
                "model_version, dimension) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING key",
                (tenant, name, description, self._clock(), *model),
            )
        except psycopg.errors.UniqueViolation:
            raise CollectionExists(f"collection {name!r} already exists") from None
        return await self.get_collection(tenant, name)

    async def list_collections(self, tenant: str) -> list[Collection]:
        """The tenant's collections by name."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLLECTION}, {_COUNTS} FROM kb_collections c "
                "WHERE tenant = %s ORDER BY name",
                (tenant,),
            )
            return [_to_collection(row) for row in await cursor.fetchall()]

    async def get_collection(self, tenant: str, name: str) -> Collection:
        """One collection, or `CollectionNotFound`."""
        row = await self._fetchone(
            f"SELECT {_COLLECTION}, {_COUNTS} FROM kb_collections c "
            "WHERE tenant = %s AND name = %s",
            (tenant, name),
        )
        if row is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return _to_collection(row)

    async def delete_collection(self, tenant: str, name: str) -> None:
        """Delete the collection and, by cascade, its documents and chunks."""
        row = await self._fetchone(
            "DELETE FROM kb_collections WHERE tenant = %s AND name = %s RETURNING key",
            (tenant, name),
        )
        if row is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")

    async def set_embedding(self, tenant: str, name: str, embedding: EmbeddingInfo | None) -> None:
        """Record the model of the collection's vectors."""
        model = (
            (embedding.model, embedding.version, embedding.dimension) if embedding else (None,) * 3
        )
        row = await self._fetchone(
            "UPDATE kb_collections SET model = %s, model_version = %s, dimension = %s "
            "WHERE tenant = %s AND name = %s RETURNING key",
            (*model, tenant, name),
        )
        if row is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")

    async def content_hashes(self, tenant: str, name: str, ids: Sequence[str]) -> dict[str, str]:
        """The stored content hash of each of `ids` that exists."""
        async with self._pool.connection() as conn:
            key = await self._key(conn, tenant, name)
            cursor = await conn.execute(
                "SELECT id, content_hash FROM kb_documents "
                "WHERE collection_key = %s AND id = ANY(%s)",
                (key, list(ids)),
            )
            return {row[0]: row[1] for row in await cursor.fetchall()}

    async def upsert(self, tenant: str, name: str, documents: Sequence[PreparedDocument]) -> None:
        """Insert or replace `documents` and their chunks in one transaction."""
        from psycopg.types.json import Jsonb

        analyzer = text_analyzer()
        now = self._clock()
        async with self._pool.connection() as conn, conn.transaction():
            key = await self._key(conn, tenant, name)
            for doc in documents:
                cursor = await conn.execute(
                    "INSERT INTO kb_documents (collection_key, id, title, text, metadata, source, "
                    "content_hash, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (collection_key, id) DO UPDATE SET title = excluded.title, "
                    "text = excluded.text, metadata = excluded.metadata, source = excluded.source, "
                    "content_hash = excluded.content_hash, updated_at = excluded.updated_at "
                    "RETURNING key",
                    (
                        key,
                        doc.id,
                        doc.title,
                        doc.text,
                        Jsonb(doc.metadata),
                        doc.source,
                        doc.content_hash,
                        now,
                        now,
                    ),
                )
                row = await cursor.fetchone()
                assert row is not None
                doc_key = row[0]
                await conn.execute("DELETE FROM kb_chunks WHERE document_key = %s", (doc_key,))
                if not doc.chunks:
                    continue
                vector_sql = ", embedding" if self._pgvector else ""
                vector_mark = ", %s::real[]::vector" if self._pgvector else ""
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO kb_chunks (document_key, collection_key, ordinal, text, "
                        f"start_char, end_char, terms, vector_bytes{vector_sql}) VALUES "
                        f"(%s, %s, %s, %s, %s, %s, to_tsvector('simple', %s), %s{vector_mark})",
                        [
                            (
                                doc_key,
                                key,
                                c.ordinal,
                                c.text,
                                c.start_char,
                                c.end_char,
                                " ".join(analyzer.analyze(c.text)),
                                c.vector,
                                *([_floats(c.vector)] if self._pgvector else []),
                            )
                            for c in doc.chunks
                        ],
                    )

    async def get_document(self, tenant: str, name: str, document_id: str) -> Document:
        """One document, or `DocumentNotFound`."""
        async with self._pool.connection() as conn:
            key = await self._key(conn, tenant, name)
            cursor = await conn.execute(
                f"SELECT {_DOCUMENT} FROM kb_documents d WHERE d.collection_key = %s AND d.id = %s",
                (key, document_id),
            )
            row = await cursor.fetchone()
        if row is None:
            raise DocumentNotFound(f"document {document_id!r} does not exist in {name!r}")
        return _to_document(row)

    async def list_documents(self, tenant: str, name: str, limit: int, after: str | None) -> Page:
        """Documents ordered by id (byte order, as in SQLite), after the id `after`."""
        async with self._pool.connection() as conn:
            key = await self._key(conn, tenant, name)
            cursor = await conn.execute(
                f"SELECT {_DOCUMENT} FROM kb_documents d WHERE d.collection_key = %s "
                'AND d.id > %s COLLATE "C" ORDER BY d.id COLLATE "C" LIMIT %s',
                (key, after or "", limit + 1),
            )
            rows = await cursor.fetchall()
        documents = [_to_document(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(documents, documents[-1].id if more and documents else None)

    async def delete_document(self, tenant: str, name: str, document_id: str) -> None:
        """Delete one document and its chunks, or `DocumentNotFound`."""
        async with self._pool.connection() as conn:
            key = await self._key(conn, tenant, name)
            cursor = await conn.execute(
                "DELETE FROM kb_documents WHERE collection_key = %s AND id = %s RETURNING key",
                (key, document_id),
            )
            if await cursor.fetchone() is None:
                raise DocumentNotFound(f"document {document_id!r} does not exist in {name!r}")

    async def _search(
        self,
        tenant: str,
        name: str,
        timeout_ms: int,
        query: Callable[[int], tuple[str, Sequence[Any]]],
    ) -> list[ScoredChunk]:
        """Run the SQL `query(collection_key)` returns, under a statement timeout."""
        import psycopg

        async with self._pool.connection() as conn, conn.transaction():
            key = await self._key(conn, tenant, name)
            await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            sql, params = query(key)
            try:
                cursor = await conn.execute(sql, params)
            except psycopg.errors.QueryCanceled:
                raise SearchTimeout(f"the search took over {timeout_ms} ms") from None
            return [ScoredChunk(int(k), float(s)) for k, s in await cursor.fetchall()]

    async def search_text(
        self,
        tenant: str,
        name: str,
        terms: Sequence[str],
        *,
        k: int,
        conditions: tuple[Condition, ...],
        timeout_ms: int,
    ) -> list[ScoredChunk]:
        """Chunks matching any term, by `ts_rank_cd` (cover density), best first."""
        where, params = to_postgres(conditions, "d.metadata")
        # Terms come from the analyzer: letters and digits only, so `|` is the only syntax here.
        query = " | ".join(terms)
        sql = (
            "SELECT c.key, ts_rank_cd(c.terms, q) AS score FROM kb_chunks c "
            "JOIN kb_documents d ON d.key = c.document_key, to_tsquery('simple', %s) q "
            f"WHERE c.collection_key = %s AND c.terms @@ q AND {where} "
            "ORDER BY score DESC, c.key LIMIT %s"
        )
        return await self._search(
            tenant, name, timeout_ms, lambda key: (sql, (query, key, *params, k))
        )

    async def search_vector(
        self,
        tenant: str,
        name: str,
        vector: Sequence[float],
        *,
        k: int,
        conditions: tuple[Condition, ...],
        timeout_ms: int,
    ) -> list[ScoredChunk]:
        """Nearest chunks by cosine distance through pgvector's HNSW index."""
        if not self._pgvector:
            raise FeatureUnavailable(self.vector_problem or "no pgvector")
        where, params = to_postgres(conditions, "d.metadata")
        literal = [float(x) for x in vector]
        sql = (
            "SELECT c.key, 1 - (c.embedding <=> %s::real[]::vector) AS score FROM kb_chunks c "
            "JOIN kb_documents d ON d.key = c.document_key "
            "WHERE c.collection_key = %s AND c.embedding IS NOT NULL "
            f"AND {where} ORDER BY c.embedding <=> %s::real[]::vector LIMIT %s"
        )
        return await self._search(
            tenant, name, timeout_ms, lambda key: (sql, (literal, key, *params, literal, k))
        )

    async def fetch_chunks(self, keys: Sequence[int]) -> dict[int, ChunkRecord]:
        """The chunks of `keys` with their documents' id, title and metadata."""
        if not keys:
            return {}
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT c.key, d.id, c.ordinal, c.text, d.title, d.metadata FROM kb_chunks c "
                "JOIN kb_documents d ON d.key = c.document_key WHERE c.key = ANY(%s)",
                (list(keys),),
            )
            rows = await cursor.fetchall()
        return {row[0]: ChunkRecord(*row) for row in rows}

    async def chunks_to_embed(
        self, tenant: str, name: str, after_key: int, limit: int
    ) -> list[tuple[int, str]]:
        """`(key, text)` of the collection's chunks in key order after `after_key`."""
        async with self._pool.connection() as conn:
            key = await self._key(conn, tenant, name)
            cursor = await conn.execute(
                "SELECT key, text FROM kb_chunks WHERE collection_key = %s AND key > %s "
                "ORDER BY key LIMIT %s",
                (key, after_key, limit),
            )
            return [(int(k), str(t)) for k, t in await cursor.fetchall()]

    async def set_vectors(
        self, tenant: str, name: str, vectors: Sequence[tuple[int, bytes]]
    ) -> None:
        """Replace the vectors of existing chunks in one transaction."""
        async with self._pool.connection() as conn, conn.transaction():
            await self._key(conn, tenant, name)
            async with conn.cursor() as cur:
                if self._pgvector:
                    await cur.executemany(
                        "UPDATE kb_chunks SET vector_bytes = %s, embedding = %s::real[]::vector "
                        "WHERE key = %s",
                        [(v, _floats(v), k) for k, v in vectors],
                    )
                else:
                    await cur.executemany(
                        "UPDATE kb_chunks SET vector_bytes = %s WHERE key = %s",
                        [(v, k) for k, v in vectors],
                    )


def _floats(vector: bytes | None) -> list[float] | None:
    if vector is None:
        return None
    from array import array

    values = array("f")
    values.frombytes(vector)
    return values.tolist()


def _to_collection(row: Sequence[Any]) -> Collection:
    _, tenant, name, description, created_at, model, version, dimension, docs, chunks = row
    embedding = EmbeddingInfo(model, version, dimension) if model else None
    return Collection(tenant, name, description, created_at, docs, chunks, embedding)


def _to_document(row: Sequence[Any]) -> Document:
    doc_id, text, title, metadata, source, content_hash, created, updated, chunks = row
    return Document(doc_id, text, title, metadata, source, content_hash, chunks, created, updated)
