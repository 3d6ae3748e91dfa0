"""`PostgresStore`'s collections: create, list, read, delete, and their embedding model."""

# ruff: noqa: S608 -- as for `_*_store.py` in pyproject: only constant column lists, validated
# JSON paths and `%s` placeholder lists are interpolated.

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from companion.knowledge._errors import CollectionExists, CollectionNotFound
from companion.knowledge._models import Collection, EmbeddingInfo
from companion.knowledge._postgres_base import PostgresBase

__all__ = ["PostgresCollections"]

_COLLECTION = "key, tenant, name, description, created_at, model, model_version, dimension"
_COUNTS = (
    "(SELECT COUNT(*) FROM kb_documents d WHERE d.collection_key = c.key), "
    "(SELECT COUNT(*) FROM kb_chunks k WHERE k.collection_key = c.key)"
)


class PostgresCollections(PostgresBase):
    """The collection methods of `PostgresStore`."""

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


def _to_collection(row: Sequence[Any]) -> Collection:
    _, tenant, name, description, created_at, model, version, dimension, docs, chunks = row
    embedding = EmbeddingInfo(model, version, dimension) if model else None
    return Collection(tenant, name, description, created_at, docs, chunks, embedding)
