"""Shared state of `PostgresStore`'s parts: the pool, pgvector's presence, key lookup, vectors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from companion.knowledge._errors import CollectionNotFound

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


def _floats(vector: bytes | None) -> list[float] | None:
    if vector is None:
        return None
    from array import array

    values = array("f")
    values.frombytes(vector)
    return values.tolist()
