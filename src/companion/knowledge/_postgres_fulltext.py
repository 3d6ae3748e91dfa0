"""This node's BM25 indexes for the PostgreSQL store: tantivy, derived from PostgreSQL and kept current.

PostgreSQL stays the only source of truth; each node holds a tantivy index per collection, the same
index and analyzer the embedded store uses, so both stores rank alike. `ts_rank_cd` was no
substitute: it has no inverse document frequency and scores every match, which ranked at a third
of BM25's nDCG and took ~150 ms a query at 5k documents (NOTES.md).

How a node stays current:
- Every write bumps its collection's `version` in the write's own transaction, last of all: the row
  lock it takes orders the writers of a collection, so versions commit in order, and records each
  touched document in `kb_changes` with that version (one row per document, overwritten).
- A search reads the collection's state (key, version, creation time) with the lookup it made
  anyway and, when the local index is older, applies `kb_changes` past the local version before it
  searches: a write acknowledged by any node is searchable through every node at once.
- A listener on `LISTEN companion_kb` applies changes as they commit, so searches rarely wait.
- Applying re-reads the current chunks of each touched document (delete, then add), so applying
  twice, or after a crash between tantivy's commit and the saved version, is harmless.
- An index is tied to its collection's creation time as well as its version: a collection deleted
  and created again, or a database restored to an earlier state (versions behind the index, keys
  reused), is rebuilt whole rather than trusted.

Indexes and their versions live under the node's data directory, named by the database's instance
id, schema and index format, so a restart only applies what it missed, and a node never reads an
index built from another database. Anything there can be deleted: it is built again. Each process
holds a slot of its own there (a locked `slot-N` directory), so the workers of one node can share
its data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from companion.knowledge import _tantivy_index
from companion.knowledge._errors import SearchTimeout, StoreInUse
from companion.knowledge._models import ScoredDocument
from companion.knowledge._tantivy_index import (
    INDEX_FORMAT,
    DocumentRow,
    FullTextIndex,
    document_rows,
)

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg.rows import TupleRow
    from psycopg_pool import AsyncConnectionPool

__all__ = ["CHANGES_CHANNEL", "CollectionState", "PostgresFullText", "notice_payload"]

_log = logging.getLogger("companion.knowledge")

# Writers `NOTIFY` here with `schema:collection_key:version` (the channel is database-wide, and
# several stores may share a database in different schemas).
CHANGES_CHANNEL = "companion_kb"
# What the indexes are built from: each chunk with its document's title, and each document whole.
_CHUNK_ROWS = (
    "SELECT c.key, c.document_key, d.title, c.text FROM kb_chunks c "
    "JOIN kb_documents d ON d.key = c.document_key"
)
_DOCUMENT_ROWS = "SELECT d.key, d.title, d.text FROM kb_documents d"
# The same, with each document's first chunk and chunk count (when its chunks are not at hand).
_DOCUMENT_ROWS_COUNTED = (
    "SELECT d.key, d.title, d.text, c.first_chunk, c.chunk_count FROM kb_documents d "
    "CROSS JOIN LATERAL (SELECT COALESCE(MIN(key), 0) AS first_chunk, COUNT(*) AS chunk_count "
    "FROM kb_chunks WHERE document_key = d.key) c"
)
# Rows fetched and indexed at a time (bounds the memory a build or a long catch-up holds).
_BATCH_ROWS = 10_000
_BATCH_DOCUMENTS = 1000
# A listener that lost its connection tries again after this, doubling up to the maximum.
_RECONNECT_FIRST_S = 0.5
_RECONNECT_MAX_S = 30.0
_LISTEN_CONNECT_TIMEOUT_S = 5
# Processes that may share one data directory's indexes (each holds a slot of its own).
MAX_SLOTS = 64


@dataclass(frozen=True, slots=True)
class CollectionState:
    """A collection as PostgreSQL holds it now: its key, the version of its last write, and when
    it was created (which tells a collection apart from an earlier one that had its key)."""

    key: int
    version: int
    created_at: float

    @property
    def token(self) -> str:
        """Changes with every committed write, and between two collections of one name."""
        return f"{self.key}:{self.created_at!r}:{self.version}"


@dataclass(frozen=True, slots=True)
class _Applied:
    version: int
    created_at: float


class PostgresFullText:
    """The per-collection tantivy indexes of one node, following one PostgreSQL schema.

    `follow=False` (one-off commands) builds a collection's index on its first search and neither
    catches up at start nor listens.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[TupleRow]],
        root: Path,
        *,
        schema: str,
        dsn: str,
        follow: bool = True,
    ) -> None:
        self._pool = pool
        self.root = root
        self._schema = schema
        self._dsn = dsn
        self._follow = follow
        self._index: FullTextIndex | None = None
        self._versions_dir = root / "versions"
        self._lock_fd: int | None = None
        self._applied: dict[int, _Applied | None] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._applied_changed = asyncio.Condition()

    @property
    def _fulltext(self) -> FullTextIndex:
        if self._index is None:
            raise RuntimeError("PostgresFullText is not started")
        return self._index

    # -- life ----------------------------------------------------------------------------------

    async def start(self, instance_id: str) -> None:
        """Open this database's indexes, bring every collection up to date, and start following.

        The node is not ready before its indexes are current: a balancer keeps sending searches
        elsewhere while a new node builds them, instead of timing them out here.
        """
        # The index format is in the name: a node that indexes differently starts afresh.
        root, self._lock_fd = _free_slot(
            self.root / f"{instance_id}-{self._schema}-f{INDEX_FORMAT}"
        )
        self._versions_dir = root / "versions"
        self._versions_dir.mkdir(exist_ok=True)
        self._index = FullTextIndex(root / "tantivy")
        if not self._follow:
            return
        started = time.perf_counter()
        await self.catch_up_all()
        _log.info(
            "knowledge indexes current with PostgreSQL in %.0f ms",
            (time.perf_counter() - started) * 1000,
        )
        self._listener = asyncio.create_task(self._listen(), name="knowledge-index-listener")

    async def close(self) -> None:
        """Stop following and release the indexes."""
        if self._listener is not None:
            self._listener.cancel()
            # Bounded: a driver that swallows cancellation must not hang shutdown (NOTES.md).
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._listener, timeout=5)
            self._listener = None
        if self._index is not None:
            await asyncio.to_thread(self._index.close)
            self._index = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    async def wait_listening(self) -> None:
        """Return once the listener is subscribed (tests and benchmarks wait for it)."""
        await self._listening.wait()

    def applied_version(self, collection_key: int) -> int:
        """The version of the collection this node's index holds (-1: none yet)."""
        applied = self._load(collection_key)
        return -1 if applied is None else applied.version

    async def wait_for_version(self, collection_key: int, version: int) -> None:
        """Return once this node's index holds `version` of the collection (or a later one)."""
        async with self._applied_changed:
            await self._applied_changed.wait_for(
                lambda: self.applied_version(collection_key) >= version
            )

    # -- keeping current -----------------------------------------------------------------------

    async def catch_up_all(self) -> None:
        """Bring every collection's index up to date, and drop indexes of deleted collections.

        A collection that fails is logged and left for its next search: one bad collection must
        not keep the others (or the listener) from catching up.
        """
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT key, version, created_at FROM kb_collections")
            current = [
                CollectionState(int(k), int(v), float(c)) for k, v, c in await cursor.fetchall()
            ]
        keys = {state.key for state in current}
        for stale in set(self._known_keys()) - keys:
            await self._drop(stale)
        for state in current:
            try:
                # An index ahead of PostgreSQL was built from a state the database no longer has
                # (a restore): only a rebuild makes it true again.
                applied = self._load(state.key)
                ahead = applied is not None and applied.version > state.version
                await self.ensure_current(state, rebuild=ahead)
            except Exception:
                _log.exception(
                    "bringing the BM25 index of collection %d up to date failed", state.key
                )

    async def ensure_current(self, state: CollectionState, *, rebuild: bool = False) -> None:
        """Make the collection's index hold at least `state` (what a search just read)."""
        if not rebuild and self._holds(state):
            return
        async with self._lock(state.key):
            if rebuild or not self._holds(state):
                await self._apply_changes(state.key, rebuild=rebuild)

    async def ensure_current_within(self, state: CollectionState, timeout_ms: int) -> None:
        """`ensure_current` within a search's deadline; the catch-up goes on after a timeout."""
        if self._holds(state):
            return
        catching_up = asyncio.ensure_future(self.ensure_current(state))
        try:
            await asyncio.wait_for(asyncio.shield(catching_up), timeout_ms / 1000)
        except TimeoutError:
            raise SearchTimeout(
                f"this node's BM25 index is catching up with PostgreSQL (over {timeout_ms} ms)"
            ) from None

    def _holds(self, state: CollectionState) -> bool:
        applied = self._load(state.key)
        return (
            applied is not None
            and applied.created_at == state.created_at
            and applied.version >= state.version
        )

    def _lock(self, collection_key: int) -> asyncio.Lock:
        return self._locks.setdefault(collection_key, asyncio.Lock())

    async def _apply_changes(self, collection_key: int, *, rebuild: bool) -> None:
        applied = self._load(collection_key)
        async with self._pool.connection() as conn, conn.transaction():
            # One snapshot for the state and the rows, so the index holds exactly that version.
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor = await conn.execute(
                "SELECT version, created_at FROM kb_collections WHERE key = %s", (collection_key,)
            )
            row = await cursor.fetchone()
            if row is None:
                await self._drop_unlocked(collection_key)
                return
            now = _Applied(int(row[0]), float(row[1]))
            if (
                rebuild
                or applied is None
                or applied.created_at != now.created_at
                or applied.version > now.version
            ):
                await self._build(conn, collection_key)
            elif now.version > applied.version:
                await self._apply_since(conn, collection_key, applied.version)
        self._save(collection_key, now)
        async with self._applied_changed:
            self._applied_changed.notify_all()

    async def _apply_since(
        self, conn: AsyncConnection[TupleRow], collection_key: int, version: int
    ) -> None:
        """Re-index the documents written after `version`, a batch of documents at a time."""
        cursor = await conn.execute(
            "SELECT document_key FROM kb_changes WHERE collection_key = %s AND version > %s "
            "ORDER BY document_key",
            (collection_key, version),
        )
        documents = [int(d) for (d,) in await cursor.fetchall()]
        for start in range(0, len(documents), _BATCH_DOCUMENTS):
            batch = documents[start : start + _BATCH_DOCUMENTS]
            cursor = await conn.execute(
                f"{_CHUNK_ROWS} WHERE c.document_key = ANY(%s) ORDER BY c.key", (batch,)
            )
            chunks = [_chunk_row(row) for row in await cursor.fetchall()]
            cursor = await conn.execute(
                f"{_DOCUMENT_ROWS} WHERE d.key = ANY(%s) ORDER BY d.key", (batch,)
            )
            whole = document_rows([_document_row(row) for row in await cursor.fetchall()], chunks)
            await asyncio.to_thread(self._fulltext.apply, collection_key, batch, chunks, whole)

    async def _build(self, conn: AsyncConnection[TupleRow], collection_key: int) -> None:
        """Index every chunk of the collection again, a batch at a time (inside the caller's
        snapshot; pages by key, so no server-side cursor is left open if this is cancelled)."""
        _log.info("building the BM25 index of collection %d from PostgreSQL", collection_key)
        await asyncio.to_thread(self._fulltext.drop, collection_key)
        self._forget(collection_key)  # not current until the build has finished
        after = 0
        while True:
            cursor = await conn.execute(
                f"{_CHUNK_ROWS} WHERE c.collection_key = %s AND c.key > %s ORDER BY c.key LIMIT %s",
                (collection_key, after, _BATCH_ROWS),
            )
            batch = [_chunk_row(row) for row in await cursor.fetchall()]
            if not batch:
                break
            # One commit at the end: a commit per page (an fsync each) took a 100k-chunk build
            # from 8.2 s to 13.1 s.
            await asyncio.to_thread(
                functools.partial(self._fulltext.apply, commit=False), collection_key, (), batch, ()
            )
            after = batch[-1][0]
        after = 0
        while True:
            cursor = await conn.execute(
                f"{_DOCUMENT_ROWS_COUNTED} WHERE d.collection_key = %s AND d.key > %s "
                "ORDER BY d.key LIMIT %s",
                (collection_key, after, _BATCH_DOCUMENTS),
            )
            whole = [_counted_document_row(row) for row in await cursor.fetchall()]
            if not whole:
                break
            await asyncio.to_thread(
                functools.partial(self._fulltext.apply, commit=False), collection_key, (), (), whole
            )
            after = whole[-1][0]
        await asyncio.to_thread(self._fulltext.commit, collection_key)

    async def _drop(self, collection_key: int) -> None:
        async with self._lock(collection_key):
            await self._drop_unlocked(collection_key)
        self._locks.pop(collection_key, None)

    async def _drop_unlocked(self, collection_key: int) -> None:
        await asyncio.to_thread(self._fulltext.drop, collection_key)
        self._forget(collection_key)

    # -- following -----------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Apply changes as other nodes commit them; after a lost connection, catch up whole."""
        import psycopg

        delay = _RECONNECT_FIRST_S
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn,
                    autocommit=True,
                    connect_timeout=_LISTEN_CONNECT_TIMEOUT_S,
                    # A connection that died silently (a server gone without a FIN) is noticed.
                    keepalives=1,
                    keepalives_idle=30,
                    keepalives_interval=10,
                    keepalives_count=3,
                ) as conn:
                    await conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                    # Changes committed while nobody listened were never announced to us.
                    await self.catch_up_all()
                    self._listening.set()
                    delay = _RECONNECT_FIRST_S
                    async for notice in conn.notifies():
                        await self._on_notice(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._listening.clear()
                _log.warning(
                    "knowledge index listener lost PostgreSQL; retrying in %.1f s (searches "
                    "still catch up on their own)",
                    delay,
                    exc_info=True,
                )
                await asyncio.sleep(delay)  # real time: waiting for the server to come back
                delay = min(delay * 2, _RECONNECT_MAX_S)

    async def _on_notice(self, payload: str) -> None:
        parts = payload.rsplit(":", 2)
        if len(parts) != 3 or parts[0] != self._schema:
            return  # another schema's store shares this database
        try:
            collection_key, version = int(parts[1]), int(parts[2])
        except ValueError:
            _log.warning("ignored a malformed knowledge change notice: %.200r", payload)
            return
        try:
            if version < 0:
                await self._drop(collection_key)
                return
            if self.applied_version(collection_key) < version:
                async with self._lock(collection_key):
                    if self.applied_version(collection_key) < version:  # no search did it first
                        await self._apply_changes(collection_key, rebuild=False)
        except Exception:
            # The next search of that collection catches up itself; the listener must live on.
            _log.exception("applying knowledge change %s failed", payload)

    # -- searching -----------------------------------------------------------------------------

    async def search(
        self,
        collection_key: int,
        terms: Sequence[str],
        k: int,
        doc_keys: Sequence[int] | None,
        passages: int | None = None,
    ) -> list[ScoredDocument]:
        """BM25 over the collection's current indexes (call `ensure_current` first)."""
        index = self._fulltext
        if (
            doc_keys is None
            and index.chunk_count(collection_key) <= _tantivy_index.INLINE_SEARCH_MAX_CHUNKS
        ):
            return index.search(collection_key, terms, k, None, passages)
        return await asyncio.to_thread(index.search, collection_key, terms, k, doc_keys, passages)

    # -- versions on disk ----------------------------------------------------------------------

    def _load(self, collection_key: int) -> _Applied | None:
        if collection_key not in self._applied:
            try:
                version, created_at = (self._versions_dir / str(collection_key)).read_text().split()
                self._applied[collection_key] = _Applied(int(version), float(created_at))
            except (OSError, ValueError):
                self._applied[collection_key] = None
        return self._applied[collection_key]

    def _save(self, collection_key: int, applied: _Applied) -> None:
        # Written after tantivy's commit: a crash in between re-applies, which is harmless.
        path = self._versions_dir / str(collection_key)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(f"{applied.version} {applied.created_at!r}")
        temporary.replace(path)
        self._applied[collection_key] = applied

    def _forget(self, collection_key: int) -> None:
        (self._versions_dir / str(collection_key)).unlink(missing_ok=True)
        self._applied[collection_key] = None

    def _known_keys(self) -> list[int]:
        return [int(p.name) for p in self._versions_dir.iterdir() if p.name.isdigit()]


def _free_slot(parent: Path) -> tuple[Path, int]:
    """The first slot under `parent` no other process holds, locked until its descriptor closes.

    Several processes may share a data directory (the workers of one `companion serve`): each
    takes a slot of its own, and a restarted one takes a free slot back, with what it had indexed.
    """
    for number in range(MAX_SLOTS):
        slot = parent / f"slot-{number}"
        slot.mkdir(parents=True, exist_ok=True)
        fd = os.open(slot / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return slot, fd
    raise StoreInUse(
        f"all {MAX_SLOTS} BM25 index slots under {parent} are in use by other processes; give "
        "each node a data directory of its own (COMPANION_DATA_DIR)"
    )


def _chunk_row(row: Sequence[Any]) -> tuple[int, int, str | None, str]:
    chunk, document, title, text = row
    return int(chunk), int(document), title, str(text)


def _document_row(row: Sequence[Any]) -> tuple[int, str | None, str]:
    document, title, text = row
    return int(document), title, str(text)


def _counted_document_row(row: Sequence[Any]) -> DocumentRow:
    document, title, text, first_chunk, chunk_count = row
    return int(document), title, str(text), int(first_chunk), int(chunk_count)


def notice_payload(schema: str, collection_key: int, version: int) -> str:
    """What a writer announces: the collection and the version it committed (-1: deleted)."""
    return f"{schema}:{collection_key}:{version}"
