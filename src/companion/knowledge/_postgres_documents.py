"""`PostgresStore`'s documents: content hashes, upserts with their chunks, reads and deletes."""

# ruff: noqa: S608 -- as for `_*_store.py` in pyproject: only constant column lists, validated
# JSON paths and `%s` placeholder lists are interpolated.

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from companion.knowledge._errors import DocumentNotFound
from companion.knowledge._models import Document, Page, PreparedDocument
from companion.knowledge._postgres_base import PostgresBase, _floats

__all__ = ["PostgresDocuments"]

_DOCUMENT = (
    "d.id, d.text, d.title, d.metadata, d.source, d.content_hash, d.created_at, d.updated_at, "
    "(SELECT COUNT(*) FROM kb_chunks k WHERE k.document_key = d.key)"
)


class PostgresDocuments(PostgresBase):
    """The document methods of `PostgresStore`."""

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
                        f"start_char, end_char, vector_bytes{vector_sql}) VALUES "
                        f"(%s, %s, %s, %s, %s, %s, %s{vector_mark})",
                        [
                            (
                                doc_key,
                                key,
                                c.ordinal,
                                c.text,
                                c.start_char,
                                c.end_char,
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


def _to_document(row: Sequence[Any]) -> Document:
    doc_id, text, title, metadata, source, content_hash, created, updated, chunks = row
    return Document(doc_id, text, title, metadata, source, content_hash, chunks, created, updated)
