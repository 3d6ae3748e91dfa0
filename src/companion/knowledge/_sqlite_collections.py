"""`SqliteStore`'s collections: create, list, read, delete, and their embedding model."""

# ruff: noqa: S608 -- as for `_*_store.py` in pyproject: only constant column lists and `?`
# placeholder lists are interpolated.

from __future__ import annotations

import sqlite3
from typing import Any

from companion.knowledge._errors import CollectionExists, CollectionNotFound
from companion.knowledge._models import Collection, EmbeddingInfo
from companion.knowledge._sqlite_indexes import SqliteIndexes

__all__ = ["SqliteCollections"]

_COLLECTION_COLUMNS = (
    "key, tenant, name, description, created_at, model, model_version, dimension, "
    "document_count, chunk_count"
)


class SqliteCollections(SqliteIndexes):
    """The collection methods of `SqliteStore`."""

    # -- collections ---------------------------------------------------------------------------

    def _collection(self, tenant: str, name: str) -> Collection:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLLECTION_COLUMNS} FROM collections WHERE tenant = ? AND name = ?",
                (tenant, name),
            ).fetchone()
            if row is None:
                raise CollectionNotFound(f"collection {name!r} does not exist")
            return self._to_collection(row)

    def _to_collection(self, row: tuple[Any, ...]) -> Collection:
        _, tenant, name, description, created_at, model, version, dimension, docs, chunks = row
        embedding = EmbeddingInfo(model, version, dimension) if model else None
        return Collection(tenant, name, description, created_at, docs, chunks, embedding)

    async def create_collection(
        self, tenant: str, name: str, description: str, embedding: EmbeddingInfo | None
    ) -> Collection:
        """Create a collection; `CollectionExists` when the tenant already has one of that name."""

        def create() -> Collection:
            with self._transaction() as db:
                try:
                    db.execute(
                        "INSERT INTO collections (tenant, name, description, created_at, model, "
                        "model_version, dimension) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (tenant, name, description, self._clock(), *_embedding_row(embedding)),
                    )
                except sqlite3.IntegrityError:
                    raise CollectionExists(f"collection {name!r} already exists") from None
            return self._collection(tenant, name)

        return await self._run(create)

    async def list_collections(self, tenant: str) -> list[Collection]:
        """The tenant's collections by name."""

        def read() -> list[Collection]:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT {_COLLECTION_COLUMNS} FROM collections WHERE tenant = ? ORDER BY name",
                    (tenant,),
                ).fetchall()
                return [self._to_collection(row) for row in rows]

        return await self._run(read)

    async def get_collection(self, tenant: str, name: str) -> Collection:
        """One collection, or `CollectionNotFound`."""
        return await self._run(self._collection, tenant, name)

    async def delete_collection(self, tenant: str, name: str) -> None:
        """Delete the collection, its documents and chunks, then its indexes."""

        def delete() -> None:
            with self._transaction() as db:
                key = self._key(tenant, name)
                db.execute("DELETE FROM collections WHERE key = ?", (key,))
                db.execute("INSERT INTO changes (collection_key) VALUES (?)", (key,))
            self._catch_up()

        await self._run(delete)

    async def set_embedding(self, tenant: str, name: str, embedding: EmbeddingInfo | None) -> None:
        """Record the model the collection's vectors come from."""

        def update() -> None:
            with self._transaction() as db:
                key = self._key(tenant, name)
                db.execute(
                    "UPDATE collections SET model = ?, model_version = ?, dimension = ? "
                    "WHERE key = ?",
                    (*_embedding_row(embedding), key),
                )

        await self._run(update)


def _embedding_row(embedding: EmbeddingInfo | None) -> tuple[Any, Any, Any]:
    if embedding is None:
        return (None, None, None)
    return (embedding.model, embedding.version, embedding.dimension)
