"""`SqliteStore`: the embedded default. SQLite (WAL) is the truth; tantivy and vectors derive from it.

A write commits to SQLite first, together with a row in the `changes` sequence, and only then updates
the derived indexes. The indexes record the last sequence number they applied
(`index/applied_seq`); on start they replay every later change, so a crash between the SQLite
commit and the index commit loses nothing. Deleting `index/` rebuilds it from SQLite.

One process at a time: the tantivy writer, the vector files and `applied_seq` belong to the process
that opened the store, and a second one (another uvicorn worker, `companion ingest` beside a running
service) got `LockBusy` from tantivy and acknowledged writes it could not index. `start` takes an
exclusive lock on `store.lock`, waiting up to `lock_wait_s` for a process that is closing it (a
restart that overlaps its predecessor's shutdown), and then a second process gets `StoreInUse`
naming the first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson

from companion.config import setting_default
from companion.knowledge import _tantivy_index
from companion.knowledge._errors import (
    CollectionExists,
    CollectionNotFound,
    DocumentNotFound,
    SearchTimeout,
)
from companion.knowledge._filters import Condition, to_sqlite
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
from companion.knowledge._sqlite_schema import connect, migrate
from companion.knowledge._store_lock import take_store_lock
from companion.knowledge._tantivy_index import INDEX_FORMAT, FullTextIndex, document_rows
from companion.knowledge._vectors import VectorIndex

__all__ = ["SqliteStore"]


READER_MMAP_BYTES = 1 << 30  # address space, not memory: pages are the OS's file cache
T = TypeVar("T")
_log = logging.getLogger("companion.knowledge")

_COLLECTION_COLUMNS = (
    "key, tenant, name, description, created_at, model, model_version, dimension, "
    "document_count, chunk_count"
)
_DOCUMENT_COLUMNS = (
    "d.id, d.text, d.title, d.metadata, d.source, d.content_hash, d.created_at, d.updated_at, "
    "(SELECT COUNT(*) FROM chunks c WHERE c.document_key = d.key)"
)


class SqliteStore:
    """The embedded store under `root` (usually `COMPANION_DATA_DIR/knowledge`)."""

    def __init__(
        self,
        root: Path,
        *,
        clock: Callable[[], float] = time.time,
        exact_vector_max_chunks: int = setting_default("knowledge_exact_max_chunks"),
        lock_wait_s: float = 5.0,
    ) -> None:
        self.root = root
        self.lock_wait_s = lock_wait_s
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        # Point reads of result rows run inline on the caller's thread through a second connection:
        # in WAL mode it never waits for a writer, and it is cheaper than a thread hop (~0.2 ms here).
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._fulltext = FullTextIndex(root / "index" / "fulltext")
        self._vectors = VectorIndex(
            root / "index" / "vectors",
            exact_max_rows=exact_vector_max_chunks,
            loader=self._load_vectors,
            checker=self._check_vectors,
        )
        self._seq_file = root / "index" / "applied_seq"
        self._format_file = root / "index" / "format"
        self._lock_fd: int | None = None

    @property
    def vector_problem(self) -> str | None:
        """Why vectors cannot be searched here (None: they can, with numpy installed)."""
        return self._vectors.problem

    async def start(self) -> None:
        """Open the database, migrate it, and bring the indexes up to date."""
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = take_store_lock(self.root, self.lock_wait_s)
        self._conn = connect(str(self.root / "knowledge.sqlite3"))
        migrate(self._conn)
        self._reader = connect(str(self.root / "knowledge.sqlite3"))
        # Result rows are random pages of a large file: read through a memory map they cost about
        # half (10 rows of a 100k-chunk store: 52 against 103 us here), with no read() per page.
        self._reader.execute(f"PRAGMA mmap_size = {READER_MMAP_BYTES}")
        if not self._index_is_current():
            self._rebuild()
        self._apply_changes()

    async def close(self) -> None:
        """Close the indexes and the database."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            self._fulltext.close()
            self._vectors.close()
            for conn in (self._conn, self._reader):
                if conn is not None:
                    conn.close()
            self._conn = self._reader = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the lock; the file stays (no unlink race)
                self._lock_fd = None

    async def health(self) -> str:
        """Counts of collections and chunks (a real read of the database)."""

        def read() -> str:
            with self._lock:
                (collections,) = self._db.execute("SELECT COUNT(*) FROM collections").fetchone()
                (chunks,) = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()
            return f"sqlite: {collections} collections, {chunks} chunks"

        return await asyncio.to_thread(read)

    # -- shared plumbing --------------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("SqliteStore is not started")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def _key(self, tenant: str, name: str) -> int:
        row = self._db.execute(
            "SELECT key FROM collections WHERE tenant = ? AND name = ?", (tenant, name)
        ).fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return int(row[0])

    # -- derived indexes --------------------------------------------------------------------

    def _applied_seq(self) -> int:
        try:
            return int(self._seq_file.read_text())
        except (OSError, ValueError):
            return 0

    def _save_applied_seq(self, seq: int) -> None:
        temporary = self._seq_file.with_suffix(".tmp")
        temporary.write_text(str(seq))
        temporary.replace(self._seq_file)

    def _catch_up(self) -> None:
        """Apply every change after the indexes' `applied_seq`; a failure is retried later.

        The write that called this is already committed, so it is acknowledged even when an index
        update fails: the change stays in the log and the next write or the next start applies it.
        """
        try:
            self._apply_changes()
        except Exception:
            _log.exception(
                "knowledge index update failed; it is retried on the next write or start"
            )

    def _apply_changes(self) -> None:
        with self._lock:
            applied = self._applied_seq()
            rows = self._db.execute(
                "SELECT seq, collection_key, document_key FROM changes WHERE seq > ? ORDER BY seq",
                (applied,),
            ).fetchall()
            if not rows:
                return
            touched: dict[int, set[int] | None] = {}
            for _, collection_key, doc_key in rows:
                if doc_key is None:
                    touched[collection_key] = None
                elif touched.get(collection_key, set()) is not None:
                    touched.setdefault(collection_key, set()).add(doc_key)  # type: ignore[union-attr]
            for collection_key, doc_keys in touched.items():
                self._apply(collection_key, doc_keys)
            self._save_applied_seq(rows[-1][0])
            # The changes now live in the indexes; the log only needs what they have not applied.
            self._db.execute("DELETE FROM changes WHERE seq <= ?", (rows[-1][0],))

    def _apply(self, collection_key: int, doc_keys: set[int] | None) -> None:
        exists = self._db.execute(
            "SELECT 1 FROM collections WHERE key = ?", (collection_key,)
        ).fetchone()
        if doc_keys is None or exists is None:
            self._fulltext.drop(collection_key)
            self._vectors.drop(collection_key)
            if exists is None:
                return
            doc_keys = {
                row[0]
                for row in self._db.execute(
                    "SELECT key FROM documents WHERE collection_key = ?", (collection_key,)
                )
            }
        ordered = sorted(doc_keys)
        rows = self._chunk_rows(ordered)
        chunks = [(c, d, h, t) for c, d, h, t, _ in rows]
        self._fulltext.apply(
            collection_key, doc_keys, chunks, document_rows(self._document_rows(ordered), chunks)
        )
        self._vectors.apply(collection_key, doc_keys, [(c, d, v) for c, d, _, _, v in rows if v])

    def _document_rows(self, doc_keys: list[int]) -> Iterator[tuple[int, str | None, str]]:
        """`(document, title, text)` of the documents, a batch at a time."""
        for start in range(0, len(doc_keys), 500):
            batch = doc_keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            yield from self._db.execute(
                f"SELECT key, title, text FROM documents WHERE key IN ({marks})", batch
            ).fetchall()

    def _chunk_rows(
        self, doc_keys: list[int]
    ) -> list[tuple[int, int, str | None, str, bytes | None]]:
        """`(chunk, document, title, text, vector)` of the documents' chunks."""
        rows: list[tuple[int, int, str | None, str, bytes | None]] = []
        for start in range(0, len(doc_keys), 500):
            batch = doc_keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            rows += self._db.execute(
                "SELECT c.key, c.document_key, d.title, c.text, c.vector FROM chunks c "
                "JOIN documents d ON d.key = c.document_key "
                f"WHERE c.document_key IN ({marks}) ORDER BY c.key",
                batch,
            ).fetchall()
        return rows

    def _load_vectors(self, collection_key: int) -> list[tuple[int, int, bytes]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT c.key, c.document_key, c.vector FROM chunks c "
                "JOIN documents d ON c.document_key = d.key "
                "WHERE d.collection_key = ? AND c.vector IS NOT NULL ORDER BY c.key",
                (collection_key,),
            ).fetchall()
        return [(int(c), int(d), bytes(v)) for c, d, v in rows]

    def _check_vectors(self, collection_key: int) -> tuple[int, int]:
        """How many chunks of the collection have a vector, and the sum of their keys."""
        with self._lock:
            count, total = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(c.key), 0) FROM chunks c "
                "JOIN documents d ON c.document_key = d.key "
                "WHERE d.collection_key = ? AND c.vector IS NOT NULL",
                (collection_key,),
            ).fetchone()
        return int(count), int(total)

    def _index_is_current(self) -> bool:
        """Whether the derived indexes exist and hold what this version indexes."""
        try:
            written = int(self._format_file.read_text())
        except (OSError, ValueError):
            return False
        return self._seq_file.exists() and written == INDEX_FORMAT

    def _rebuild(self) -> None:
        """Throw the derived indexes away and build them again from SQLite."""
        with self._lock:
            _log.info("rebuilding the knowledge indexes from SQLite")
            self._fulltext.reset()
            self._vectors.reset()
            self._seq_file.parent.mkdir(parents=True, exist_ok=True)
            (last,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()
            for (collection_key,) in self._db.execute("SELECT key FROM collections").fetchall():
                self._apply(collection_key, None)
            self._save_applied_seq(last)
            self._format_file.write_text(str(INDEX_FORMAT))

    async def rebuild(self) -> None:
        """Rebuild every derived index from the source of truth."""
        await self._run(self._rebuild)

    # -- collections ------------------------------------------------------------------------

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

    async def adopt_embedding(self, tenant: str, name: str, embedding: EmbeddingInfo) -> Collection:
        """Record `embedding` for a collection without a model; the collection afterwards."""

        def adopt() -> Collection:
            with self._transaction() as db:
                db.execute(
                    "UPDATE collections SET model = ?, model_version = ?, dimension = ? "
                    "WHERE key = ? AND model IS NULL",
                    (*_embedding_row(embedding), self._key(tenant, name)),
                )
            return self._collection(tenant, name)

        return await self._run(adopt)

    # -- documents --------------------------------------------------------------------------

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
                        "vector, page, headings) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                doc_key,
                                c.ordinal,
                                c.text,
                                c.start_char,
                                c.end_char,
                                c.vector,
                                c.page,
                                orjson.dumps(c.headings).decode() if c.headings else None,
                            )
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

    # -- search -----------------------------------------------------------------------------

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
        passages: int | None = None,
    ) -> list[ScoredDocument]:
        """BM25 over the collection's documents with their best chunks, only documents matching
        `conditions`."""
        if not conditions:
            key = self._read_key(tenant, name)
            if self._fulltext.chunk_count(key) <= _tantivy_index.INLINE_SEARCH_MAX_CHUNKS:
                return self._fulltext.search(key, terms, k, None, passages)

        def search() -> list[ScoredDocument]:
            with self._lock:
                key = self._key(tenant, name)
            allowed = self._allowed_documents(key, conditions, timeout_ms)
            return self._fulltext.search(key, terms, k, allowed, passages)

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
        rows = self._read_chunks(
            "c.key, d.id, c.ordinal, c.text, d.title, d.metadata, c.page, c.headings", keys
        )
        return {
            key: ChunkRecord(
                key,
                doc_id,
                ordinal,
                text,
                title,
                orjson.loads(metadata),
                page,
                tuple(orjson.loads(headings)) if headings else (),
            )
            for key, doc_id, ordinal, text, title, metadata, page, headings in rows
        }

    async def chunk_owners(self, keys: Sequence[int]) -> dict[int, str]:
        """The document id of each chunk of `keys` (read inline)."""
        return dict(self._read_chunks("c.key, d.id", keys))

    def _read_chunks(self, columns: str, keys: Sequence[int]) -> list[Any]:
        """`columns` of the chunks of `keys` joined to their documents (`c`, `d`), through the
        reader: on the caller's thread, never waiting for the writer."""
        if not keys:
            return []
        if self._reader is None:
            raise RuntimeError("SqliteStore is not started")
        marks = ",".join("?" * len(keys))
        with self._reader_lock:
            return self._reader.execute(
                f"SELECT {columns} FROM chunks c JOIN documents d ON c.document_key = d.key "
                f"WHERE c.key IN ({marks})",
                list(keys),
            ).fetchall()

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


def _embedding_row(embedding: EmbeddingInfo | None) -> tuple[Any, Any, Any]:
    if embedding is None:
        return (None, None, None)
    return (embedding.model, embedding.version, embedding.dimension)


def _to_document(row: tuple[Any, ...]) -> Document:
    doc_id, text, title, metadata, source, content_hash, created, updated, chunks = row
    return Document(
        doc_id, text, title, orjson.loads(metadata), source, content_hash, chunks, created, updated
    )
