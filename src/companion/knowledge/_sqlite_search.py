"""`SqliteStore`'s search: metadata filters, BM25 and vector queries, chunk reads, re-embedding."""

# ruff: noqa: S608 -- as for `_*_store.py` in pyproject: only constant column lists and `?`
# placeholder lists are interpolated.

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

import orjson

from companion.knowledge import _tantivy_index
from companion.knowledge._errors import CollectionNotFound, SearchTimeout
from companion.knowledge._filters import Condition, to_sqlite
from companion.knowledge._models import ChunkRecord, ScoredChunk
from companion.knowledge._sqlite_indexes import SqliteIndexes

__all__ = ["SqliteSearch"]


class SqliteSearch(SqliteIndexes):
    """The search and vector methods of `SqliteStore`."""

    # -- search --------------------------------------------------------------------------------

    def _allowed_documents(
        self, key: int, conditions: tuple[Condition, ...], timeout_ms: int
    ) -> list[int] | None:
        if not conditions:
            return None
        where, params = to_sqlite(conditions)
        deadline = time.monotonic() + timeout_ms / 1000
        with self._lock:
            # The progress handler is the deadline: SQLite stops a filter that scans too long.
            self._db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            try:
                rows = self._db.execute(
                    f"SELECT key FROM documents WHERE collection_key = ? AND {where}",
                    (key, *params),
                ).fetchall()
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise SearchTimeout(f"the filter took over {timeout_ms} ms") from None
                raise
            finally:
                self._db.set_progress_handler(None, 0)
        return [row[0] for row in rows]

    async def write_version(self, tenant: str, name: str) -> str | None:
        """None: this process holds the store's lock, so every write is its own."""
        return None

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
        """BM25 over the collection's chunks, only documents matching `conditions`."""
        if not conditions:
            key = self._read_key(tenant, name)
            if self._fulltext.chunk_count(key) <= _tantivy_index.INLINE_SEARCH_MAX_CHUNKS:
                return self._fulltext.search(key, terms, k, None)

        def search() -> list[ScoredChunk]:
            with self._lock:
                key = self._key(tenant, name)
            allowed = self._allowed_documents(key, conditions, timeout_ms)
            return self._fulltext.search(key, terms, k, allowed)

        return await self._run(search)

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
        """Nearest chunks by cosine similarity, only documents matching `conditions`."""

        def search() -> list[ScoredChunk]:
            with self._lock:
                key = self._key(tenant, name)
                # Under the store's lock: opening may rebuild the files from SQLite.
                self._vectors.prepare(key)
            allowed = self._allowed_documents(key, conditions, timeout_ms)
            allowed_chunks = None if allowed is None else self._chunks_of(allowed)
            return self._vectors.search(key, vector, k, allowed_chunks)

        return await self._run(search)

    def _chunks_of(self, doc_keys: list[int]) -> list[int]:
        chunks: list[int] = []
        with self._lock:
            for start in range(0, len(doc_keys), 500):
                batch = doc_keys[start : start + 500]
                marks = ",".join("?" * len(batch))
                chunks += [
                    row[0]
                    for row in self._db.execute(
                        f"SELECT key FROM chunks WHERE document_key IN ({marks})", batch
                    )
                ]
        return chunks

    def _read_key(self, tenant: str, name: str) -> int:
        # Through the reader: on the caller's thread, the write lock (held for a whole batch) and
        # the writer's connection must never be waited for.
        if self._reader is None:
            raise RuntimeError("SqliteStore is not started")
        with self._reader_lock:
            row = self._reader.execute(
                "SELECT key FROM collections WHERE tenant = ? AND name = ?", (tenant, name)
            ).fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return int(row[0])

    async def fetch_chunks(self, keys: Sequence[int]) -> dict[int, ChunkRecord]:
        """The chunks of `keys` with their documents' id, title and metadata (read inline)."""
        if not keys:
            return {}
        if self._reader is None:
            raise RuntimeError("SqliteStore is not started")
        marks = ",".join("?" * len(keys))
        with self._reader_lock:
            rows = self._reader.execute(
                "SELECT c.key, d.id, c.ordinal, c.text, d.title, d.metadata FROM chunks c "
                f"JOIN documents d ON c.document_key = d.key WHERE c.key IN ({marks})",
                list(keys),
            ).fetchall()
        return {
            row[0]: ChunkRecord(row[0], row[1], row[2], row[3], row[4], orjson.loads(row[5]))
            for row in rows
        }

    async def chunks_to_embed(
        self, tenant: str, name: str, after_key: int, limit: int, *, missing_only: bool = False
    ) -> list[tuple[int, str]]:
        """`(key, text)` of the collection's chunks (without a vector: `missing_only`) by key."""

        def read() -> list[tuple[int, str]]:
            with self._lock:
                key = self._key(tenant, name)
                # CROSS JOIN keeps chunks the outer loop: with `missing_only` the partial index
                # holds only the pending ones, so a fully embedded collection costs nothing.
                missing = "AND c.vector IS NULL " if missing_only else ""
                rows = self._db.execute(
                    "SELECT c.key, c.text FROM chunks c CROSS JOIN documents d "
                    f"ON c.document_key = d.key WHERE d.collection_key = ? {missing}"
                    "AND c.key > ? ORDER BY c.key LIMIT ?",
                    (key, after_key, limit),
                ).fetchall()
            return [(int(k), str(t)) for k, t in rows]

        return await self._run(read)

    async def pending_embeddings(self, tenant: str, name: str) -> int:
        """How many of the collection's chunks have no vector yet."""

        def read() -> int:
            with self._lock:
                key = self._key(tenant, name)
                (count,) = self._db.execute(
                    "SELECT COUNT(*) FROM chunks c CROSS JOIN documents d "
                    "ON c.document_key = d.key WHERE c.vector IS NULL AND d.collection_key = ?",
                    (key,),
                ).fetchone()
            return int(count)

        return await self._run(read)

    async def collections_pending_embeddings(self) -> list[tuple[str, str]]:
        """`(tenant, name)` of collections with a model and chunks still without a vector."""

        def read() -> list[tuple[str, str]]:
            with self._lock:
                rows = self._db.execute(
                    "SELECT DISTINCT k.tenant, k.name FROM chunks c CROSS JOIN documents d "
                    "ON c.document_key = d.key JOIN collections k ON d.collection_key = k.key "
                    "WHERE c.vector IS NULL AND k.model IS NOT NULL"
                ).fetchall()
            return [(str(t), str(n)) for t, n in rows]

        return await self._run(read)

    async def set_vectors(
        self, tenant: str, name: str, vectors: Sequence[tuple[int, bytes]]
    ) -> None:
        """Replace the vectors of existing chunks, then refresh the vector index."""

        def write() -> None:
            with self._transaction() as db:
                key = self._key(tenant, name)
                db.executemany(
                    "UPDATE chunks SET vector = ? WHERE key = ?", [(v, k) for k, v in vectors]
                )
                doc_keys = {
                    row[0]
                    for k, _ in vectors
                    for row in db.execute("SELECT document_key FROM chunks WHERE key = ?", (k,))
                }
                db.executemany(
                    "INSERT INTO changes (collection_key, document_key) VALUES (?, ?)",
                    [(key, doc_key) for doc_key in doc_keys],
                )
            self._catch_up()

        await self._run(write)
