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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, LiteralString

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
    ScoredDocument,
)
from companion.knowledge._postgres_fulltext import (
    CHANGES_CHANNEL,
    CollectionState,
    PostgresFullText,
    notice_payload,
)
from companion.knowledge._postgres_schema import BASE_MIGRATIONS, PGVECTOR_MIGRATION

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

    # -- shared plumbing --------------------------------------------------------------------

    @property
    def vector_problem(self) -> str | None:
        """None with pgvector; otherwise why vector search degrades to BM25."""
        if self._pgvector:
            return None
        return "the PostgreSQL server has no pgvector extension; vector and hybrid search use BM25"

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

    async def _state(self, conn: Any, tenant: str, name: str) -> CollectionState:
        """The collection's key, the version of its last committed write and its creation."""
        cursor = await conn.execute(
            "SELECT key, version, created_at FROM kb_collections WHERE tenant = %s AND name = %s",
            (tenant, name),
        )
        row = await cursor.fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return CollectionState(int(row[0]), int(row[1]), float(row[2]))

    async def _record_write(
        self, conn: Any, collection_key: int, document_keys: Sequence[int]
    ) -> None:
        """Bump the collection's version and log the documents the write touched.

        Call it last in the write's transaction: the row lock the bump takes is held until commit,
        so the writers of a collection commit their versions in order, and holding it last keeps
        it short and can deadlock with nothing.
        """
        cursor = await conn.execute(
            "UPDATE kb_collections SET version = version + 1 WHERE key = %s RETURNING version",
            (collection_key,),
        )
        (version,) = await cursor.fetchone()
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO kb_changes (collection_key, document_key, version) "
                "VALUES (%s, %s, %s) ON CONFLICT (collection_key, document_key) "
                "DO UPDATE SET version = excluded.version",
                [(collection_key, key, version) for key in document_keys],
            )
        await self._announce(conn, collection_key, version)

    async def _announce(self, conn: Any, collection_key: int, version: int) -> None:
        """Tell every node's listener (delivered at commit, not before)."""
        await conn.execute(
            "SELECT pg_notify(%s, %s)",
            (CHANGES_CHANNEL, notice_payload(self._schema, collection_key, version)),
        )

    # -- collections ------------------------------------------------------------------------

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
        """Delete the collection and, by cascade, its documents, chunks and change log."""
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "DELETE FROM kb_collections WHERE tenant = %s AND name = %s RETURNING key",
                (tenant, name),
            )
            row = await cursor.fetchone()
            if row is None:
                raise CollectionNotFound(f"collection {name!r} does not exist")
            await self._announce(conn, int(row[0]), -1)

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

    async def adopt_embedding(self, tenant: str, name: str, embedding: EmbeddingInfo) -> Collection:
        """Record `embedding` for a collection without a model; the collection afterwards (the
        condition makes one of several nodes adopting at once win, and the others see it)."""
        await self._fetchone(
            "UPDATE kb_collections SET model = %s, model_version = %s, dimension = %s "
            "WHERE tenant = %s AND name = %s AND model IS NULL RETURNING key",
            (embedding.model, embedding.version, embedding.dimension, tenant, name),
        )
        return await self.get_collection(tenant, name)

    # -- documents --------------------------------------------------------------------------

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

        now = self._clock()
        touched: list[int] = []
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
                touched.append(doc_key)
                await conn.execute("DELETE FROM kb_chunks WHERE document_key = %s", (doc_key,))
                if not doc.chunks:
                    continue
                vector_sql = ", embedding" if self._pgvector else ""
                vector_mark = ", %s::real[]::vector" if self._pgvector else ""
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO kb_chunks (document_key, collection_key, ordinal, text, "
                        f"start_char, end_char, page, headings, vector_bytes{vector_sql}) VALUES "
                        f"(%s, %s, %s, %s, %s, %s, %s, %s, %s{vector_mark})",
                        [
                            (
                                doc_key,
                                key,
                                c.ordinal,
                                c.text,
                                c.start_char,
                                c.end_char,
                                c.page,
                                Jsonb(list(c.headings)) if c.headings else None,
                                c.vector,
                                *([_floats(c.vector)] if self._pgvector else []),
                            )
                            for c in doc.chunks
                        ],
                    )
            if touched:
                await self._record_write(conn, key, touched)

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
        async with self._pool.connection() as conn, conn.transaction():
            key = await self._key(conn, tenant, name)
            cursor = await conn.execute(
                "DELETE FROM kb_documents WHERE collection_key = %s AND id = %s RETURNING key",
                (key, document_id),
            )
            row = await cursor.fetchone()
            if row is None:
                raise DocumentNotFound(f"document {document_id!r} does not exist in {name!r}")
            await self._record_write(conn, key, [int(row[0])])

    # -- search -----------------------------------------------------------------------------

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

    async def write_version(self, tenant: str, name: str) -> str | None:
        """The collection's state: other nodes write it, and their cache invalidations reach
        this node's memory only later (pub/sub), so a cached result must name what it saw."""
        async with self._pool.connection() as conn:
            return (await self._state(conn, tenant, name)).token

    async def search_text(
        self,
        tenant: str,
        name: str,
        terms: Sequence[str],
        *,
        k: int,
        conditions: tuple[Condition, ...],
        timeout_ms: int,
        passages: int | None = None,
    ) -> list[ScoredDocument]:
        """BM25 over the collection's documents (with their best chunks) in this node's tantivy
        indexes, brought up to the version PostgreSQL holds first, so every acknowledged write is
        found."""
        import psycopg

        allowed: list[int] | None = None
        async with self._pool.connection() as conn:
            if not conditions:
                state = await self._state(conn, tenant, name)
            else:
                where, params = to_postgres(conditions, "d.metadata")
                async with conn.transaction():
                    state = await self._state(conn, tenant, name)
                    await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
                    try:
                        cursor = await conn.execute(
                            "SELECT d.key FROM kb_documents d "
                            f"WHERE d.collection_key = %s AND {where}",
                            (state.key, *params),
                        )
                    except psycopg.errors.QueryCanceled:
                        raise SearchTimeout(f"the filter took over {timeout_ms} ms") from None
                    allowed = [int(d) for (d,) in await cursor.fetchall()]
        await self._fulltext.ensure_current_within(state, timeout_ms)
        return await self._fulltext.search(state.key, terms, k, allowed, passages)

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
        rows = await self._read_chunks(
            "c.key, d.id, c.ordinal, c.text, d.title, d.metadata, c.page, c.headings", keys
        )
        return {
            key: ChunkRecord(
                key, doc_id, ordinal, text, title, metadata, page, tuple(headings or ())
            )
            for key, doc_id, ordinal, text, title, metadata, page, headings in rows
        }

    async def chunk_owners(self, keys: Sequence[int]) -> dict[int, str]:
        """The document id of each chunk of `keys`."""
        rows = await self._read_chunks("c.key, d.id", keys)
        return {int(key): str(doc_id) for key, doc_id in rows}

    async def _read_chunks(self, columns: LiteralString, keys: Sequence[int]) -> list[Any]:
        """`columns` of the chunks of `keys` joined to their documents (`c`, `d`)."""
        if not keys:
            return []
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {columns} FROM kb_chunks c JOIN kb_documents d ON d.key = c.document_key "
                "WHERE c.key = ANY(%s)",
                (list(keys),),
            )
            return await cursor.fetchall()

    async def chunks_to_embed(
        self, tenant: str, name: str, after_key: int, limit: int, *, missing_only: bool = False
    ) -> list[tuple[int, str]]:
        """`(key, text)` of the collection's chunks (without a vector: `missing_only`) by key."""
        missing = "AND vector_bytes IS NULL " if missing_only else ""
        async with self._pool.connection() as conn:
            key = await self._key(conn, tenant, name)
            cursor = await conn.execute(
                f"SELECT key, text FROM kb_chunks WHERE collection_key = %s {missing}"
                "AND key > %s ORDER BY key LIMIT %s",
                (key, after_key, limit),
            )
            return [(int(k), str(t)) for k, t in await cursor.fetchall()]

    async def pending_embeddings(self, tenant: str, name: str) -> int:
        """How many of the collection's chunks have no vector yet."""
        async with self._pool.connection() as conn:
            key = await self._key(conn, tenant, name)
            cursor = await conn.execute(
                "SELECT COUNT(*) FROM kb_chunks WHERE collection_key = %s AND vector_bytes IS NULL",
                (key,),
            )
            row = await cursor.fetchone()
            return int(row[0]) if row else 0

    async def collections_pending_embeddings(self) -> list[tuple[str, str]]:
        """`(tenant, name)` of collections with a model and chunks still without a vector."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT k.tenant, k.name FROM kb_collections k WHERE k.model IS NOT NULL "
                "AND EXISTS (SELECT 1 FROM kb_chunks c WHERE c.collection_key = k.key "
                "AND c.vector_bytes IS NULL)"
            )
            return [(str(t), str(n)) for t, n in await cursor.fetchall()]

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
