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
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from companion.config import setting_default
from companion.knowledge._errors import StoreInUse
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

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database, migrate it, and bring the indexes up to date."""
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self._conn = connect(str(self.root / "knowledge.sqlite3"))
        migrate(self._conn)
        self._reader = connect(str(self.root / "knowledge.sqlite3"))
        # Result rows are random pages of a large file: read through a memory map they cost about
        # half (10 rows of a 100k-chunk store: 52 against 103 us here), with no read() per page.
        self._reader.execute(f"PRAGMA mmap_size = {READER_MMAP_BYTES}")
        if not self._index_is_current():
            self._rebuild()
        self._apply_changes()

    def _take_lock(self) -> None:
        """Hold `store.lock` until `close`, or raise `StoreInUse` naming the process that has it."""
        # flock, not fcntl record locks: those are per process, so a second store in the same
        # process would share the lock instead of being refused, and closing any descriptor of
        # the file would drop it. The descriptor is close-on-exec: sandbox processes never hold it.
        fd = os.open(self.root / "store.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)  # real time: another process is closing the store
                    continue
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise StoreInUse(
                    f"the knowledge store in {self.root} is open in another process (pid "
                    f"{holder}); the embedded store serves one process at a time: stop that one, "
                    "or use PostgreSQL (COMPANION_DATABASE_URL) to share a store between processes"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

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
