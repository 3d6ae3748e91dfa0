"""`PostgresStore`'s search: BM25 on this node's derived index, pgvector queries, chunk reads,
re-embedding."""

# ruff: noqa: S608 -- as for `_*_store.py` in pyproject: only constant column lists, validated
# JSON paths and `%s` placeholder lists are interpolated.

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from companion.errors import FeatureUnavailable
from companion.knowledge._errors import SearchTimeout
from companion.knowledge._filters import Condition, to_postgres
from companion.knowledge._models import ChunkRecord, ScoredChunk
from companion.knowledge._postgres_base import PostgresBase, _floats

__all__ = ["PostgresSearch"]


class PostgresSearch(PostgresBase):
    """The search and vector methods of `PostgresStore`."""

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
    ) -> list[ScoredChunk]:
        """BM25 over the collection's chunks in this node's tantivy index, brought up to the
        version PostgreSQL holds first, so every acknowledged write is found."""
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
        return await self._fulltext.search(state.key, terms, k, allowed)

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
