"""Shared state of `PostgresStore`'s parts: the pool, pgvector's presence, key lookup, the record of
each write that the nodes' BM25 indexes follow, and vectors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from companion.knowledge._errors import CollectionNotFound
from companion.knowledge._postgres_fulltext import (
    CHANGES_CHANNEL,
    CollectionState,
    PostgresFullText,
    notice_payload,
)

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg.rows import TupleRow
    from psycopg_pool import AsyncConnectionPool

__all__ = ["PostgresBase"]


class PostgresBase:
    """What every part of `PostgresStore` shares; `PostgresStore.__init__` sets these attributes."""

    _pool: AsyncConnectionPool[AsyncConnection[TupleRow]]
    _clock: Callable[[], float]
    _pgvector: bool
    _schema: str
    _fulltext: PostgresFullText

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


def _floats(vector: bytes | None) -> list[float] | None:
    if vector is None:
        return None
    from array import array

    values = array("f")
    values.frombytes(vector)
    return values.tolist()
