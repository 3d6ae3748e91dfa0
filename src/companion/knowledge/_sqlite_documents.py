"""`SqliteStore`'s documents: content hashes, upserts with their chunks, reads and deletes."""

# ruff: noqa: S608 -- as for `_*_store.py` in pyproject: only constant column lists and `?`
# placeholder lists are interpolated.

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from companion.knowledge._errors import DocumentNotFound
from companion.knowledge._models import Document, Page, PreparedDocument
from companion.knowledge._sqlite_indexes import SqliteIndexes

__all__ = ["SqliteDocuments"]

_DOCUMENT_COLUMNS = "d.id, d.text, d.title, d.metadata, d.source, d.content_hash, d.created_at, "
_DOCUMENT_COLUMNS += "d.updated_at, (SELECT COUNT(*) FROM chunks c WHERE c.document_key = d.key)"


class SqliteDocuments(SqliteIndexes):
    """The document methods of `SqliteStore`."""

    # -- documents -----------------------------------------------------------------------------

    async def content_hashes(self, tenant: str, name: str, ids: Sequence[str]) -> dict[str, str]:
        """The stored content hash of each of `ids` that exists."""

        def read() -> dict[str, str]:
            with self._lock:
                key = self._key(tenant, name)
                found: dict[str, str] = {}
                for start in range(0, len(ids), 500):
                    batch = list(ids[start : start + 500])
                    marks = ",".join("?" * len(batch))
                    found.update(
                        self._db.execute(
                            f"SELECT id, content_hash FROM documents "
                            f"WHERE collection_key = ? AND id IN ({marks})",
                            (key, *batch),
                        ).fetchall()
                    )
                return found

        return await self._run(read)

    async def upsert(self, tenant: str, name: str, documents: Sequence[PreparedDocument]) -> None:
        """Insert or replace `documents` and their chunks in one transaction."""

        def write() -> None:
            now = self._clock()
            with self._transaction() as db:
                key = self._key(tenant, name)
                for doc in documents:
                    (existed, old_chunks) = db.execute(
                        "SELECT COUNT(*), (SELECT COUNT(*) FROM chunks c JOIN documents d "
                        "ON c.document_key = d.key WHERE d.collection_key = ? AND d.id = ?) "
                        "FROM documents WHERE collection_key = ? AND id = ?",
                        (key, doc.id, key, doc.id),
                    ).fetchone()
                    db.execute(
                        "UPDATE collections SET document_count = document_count + ?, "
                        "chunk_count = chunk_count + ? WHERE key = ?",
                        (1 - existed, len(doc.chunks) - old_chunks, key),
                    )
                    (doc_key,) = db.execute(
                        "INSERT INTO documents (collection_key, id, title, text, metadata, source, "
                        "content_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (collection_key, id) DO UPDATE SET title = excluded.title, "
                        "text = excluded.text, metadata = excluded.metadata, "
                        "source = excluded.source, content_hash = excluded.content_hash, "
                        "updated_at = excluded.updated_at RETURNING key",
                        (
                            key,
                            doc.id,
                            doc.title,
                            doc.text,
                            orjson.dumps(doc.metadata).decode(),
                            doc.source,
                            doc.content_hash,
                            now,
                            now,
                        ),
                    ).fetchone()
                    db.execute("DELETE FROM chunks WHERE document_key = ?", (doc_key,))
                    db.executemany(
                        "INSERT INTO chunks (document_key, ordinal, text, start_char, end_char, "
                        "vector) VALUES (?, ?, ?, ?, ?, ?)",
                        [
                            (doc_key, c.ordinal, c.text, c.start_char, c.end_char, c.vector)
                            for c in doc.chunks
                        ],
                    )
                    db.execute(
                        "INSERT INTO changes (collection_key, document_key) VALUES (?, ?)",
                        (key, doc_key),
                    )
            self._catch_up()

        await self._run(write)

    async def get_document(self, tenant: str, name: str, document_id: str) -> Document:
        """One document, or `DocumentNotFound`."""

        def read() -> Document:
            with self._lock:
                key = self._key(tenant, name)
                row = self._db.execute(
                    f"SELECT {_DOCUMENT_COLUMNS} FROM documents d "
                    "WHERE d.collection_key = ? AND d.id = ?",
                    (key, document_id),
                ).fetchone()
            if row is None:
                raise DocumentNotFound(f"document {document_id!r} does not exist in {name!r}")
            return _to_document(row)

        return await self._run(read)

    async def list_documents(self, tenant: str, name: str, limit: int, after: str | None) -> Page:
        """Documents ordered by id, `limit` at most, after the id `after`."""

        def read() -> Page:
            with self._lock:
                key = self._key(tenant, name)
                rows = self._db.execute(
                    f"SELECT {_DOCUMENT_COLUMNS} FROM documents d "
                    "WHERE d.collection_key = ? AND d.id > ? ORDER BY d.id LIMIT ?",
                    (key, after or "", limit + 1),
                ).fetchall()
            documents = [_to_document(row) for row in rows[:limit]]
            more = len(rows) > limit
            return Page(documents, documents[-1].id if more and documents else None)

        return await self._run(read)

    async def delete_document(self, tenant: str, name: str, document_id: str) -> None:
        """Delete one document and its chunks, or `DocumentNotFound`."""

        def delete() -> None:
            with self._transaction() as db:
                key = self._key(tenant, name)
                row = db.execute(
                    "SELECT key, (SELECT COUNT(*) FROM chunks c WHERE c.document_key = d.key) "
                    "FROM documents d WHERE collection_key = ? AND id = ?",
                    (key, document_id),
                ).fetchone()
                if row is None:
                    raise DocumentNotFound(f"document {document_id!r} does not exist in {name!r}")
                db.execute("DELETE FROM documents WHERE key = ?", (row[0],))
                db.execute(
                    "UPDATE collections SET document_count = document_count - 1, "
                    "chunk_count = chunk_count - ? WHERE key = ?",
                    (row[1], key),
                )
                db.execute(
                    "INSERT INTO changes (collection_key, document_key) VALUES (?, ?)",
                    (key, row[0]),
                )
            self._catch_up()

        await self._run(delete)


def _to_document(row: tuple[Any, ...]) -> Document:
    doc_id, text, title, metadata, source, content_hash, created, updated, chunks = row
    return Document(
        doc_id, text, title, orjson.loads(metadata), source, content_hash, chunks, created, updated
    )
