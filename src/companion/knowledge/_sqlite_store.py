"""`SqliteStore`: the embedded default. SQLite (WAL) is the truth; tantivy and vectors derive from it.

A write commits to SQLite first, together with a row in the `changes` sequence, and only then updates
the derived indexes. The indexes record the last sequence number they applied
(`index/applied_seq`); on start they replay every later change, so a crash between the SQLite
commit and the index commit loses nothing. Deleting `index/` rebuilds it from SQLite.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from companion.knowledge._sqlite_collections import SqliteCollections
from companion.knowledge._sqlite_documents import SqliteDocuments
from companion.knowledge._sqlite_schema import connect, migrate
from companion.knowledge._sqlite_search import SqliteSearch
from companion.knowledge._tantivy_index import FullTextIndex
from companion.knowledge._vectors import VectorIndex

__all__ = ["SqliteStore"]

READER_MMAP_BYTES = 1 << 30  # address space, not memory: pages are the OS's file cache


class SqliteStore(SqliteCollections, SqliteDocuments, SqliteSearch):
    """The embedded store under `root` (usually `COMPANION_DATA_DIR/knowledge`)."""

    def __init__(
        self,
        root: Path,
        *,
        clock: Callable[[], float] = time.time,
        exact_vector_max_chunks: int = 100_000,
    ) -> None:
        self.root = root
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

    @property
    def vector_problem(self) -> str | None:
        """Why vectors cannot be searched here (None: they can, with numpy installed)."""
        return self._vectors.problem

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database, migrate it, and bring the indexes up to date."""
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._conn = connect(str(self.root / "knowledge.sqlite3"))
        migrate(self._conn)
        self._reader = connect(str(self.root / "knowledge.sqlite3"))
        # Result rows are random pages of a large file: read through a memory map they cost about
        # half (10 rows of a 100k-chunk store: 52 against 103 us here), with no read() per page.
        self._reader.execute(f"PRAGMA mmap_size = {READER_MMAP_BYTES}")
        if not self._seq_file.exists():
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

    async def health(self) -> str:
        """Counts of collections and chunks (a real read of the database)."""

        def read() -> str:
            with self._lock:
                (collections,) = self._db.execute("SELECT COUNT(*) FROM collections").fetchone()
                (chunks,) = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()
            return f"sqlite: {collections} collections, {chunks} chunks"

        return await asyncio.to_thread(read)
