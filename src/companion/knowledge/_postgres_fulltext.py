"""This node's BM25 indexes for the PostgreSQL store: tantivy, derived from PostgreSQL and kept current.

PostgreSQL stays the only source of truth; each node holds a tantivy index per collection, the same
index and analyzer the embedded store uses, so both stores rank alike. `ts_rank_cd` was no
substitute: it has no inverse document frequency and scores every match, which ranked at a third
of BM25's nDCG and took ~150 ms a query at 5k documents (NOTES.md).

How a node stays current:
- Every write bumps its collection's `version` in the write's own transaction, last of all: the row
  lock it takes orders the writers of a collection, so versions commit in order, and records each
  touched document in `kb_changes` with that version (one row per document, overwritten).
- A search reads the collection's version with its key (the lookup it made anyway) and, when the
  local index is older, applies `kb_changes` past the local version before it searches: a write
  acknowledged by any node is searchable through every node at once.
- A listener on `LISTEN companion_kb` applies changes as they commit, so searches rarely wait.
- Applying re-reads the current chunks of each touched document (delete, then add), so applying
  twice, or after a crash between tantivy's commit and the saved version, is harmless.

Indexes and their versions live under the node's data directory, named by the database's instance
id and schema, so a restart only applies what it missed, and a node never reads an index built
from another database. Anything can be deleted: a missing index is built from PostgreSQL again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from companion.knowledge import _tantivy_index
from companion.knowledge._models import ScoredChunk
from companion.knowledge._tantivy_index import INDEX_FORMAT, FullTextIndex

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg.rows import TupleRow
    from psycopg_pool import AsyncConnectionPool

__all__ = ["CHANGES_CHANNEL", "PostgresFullText", "notice_payload"]

_log = logging.getLogger("companion.knowledge")

# Writers `NOTIFY` here with `schema:collection_key:version` (the channel is database-wide, and
# several stores may share a database in different schemas).
CHANGES_CHANNEL = "companion_kb"
# What the index is built from: each chunk with its document's title.
_CHUNK_ROWS = (
    "SELECT c.key, c.document_key, d.title, c.text FROM kb_chunks c "
    "JOIN kb_documents d ON d.key = c.document_key"
)
# Rows fetched and indexed at a time when a whole collection is built (bounds the memory held).
_BUILD_BATCH_ROWS = 10_000
# A listener that lost its connection tries again after this, doubling up to the maximum.
_RECONNECT_FIRST_S = 0.5
_RECONNECT_MAX_S = 30.0


class PostgresFullText:
    """The per-collection tantivy indexes of one node, following one PostgreSQL schema."""

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[TupleRow]],
        root: Path,
        *,
        schema: str,
        dsn: str,
    ) -> None:
        self._pool = pool
        self.root = root
        self._schema = schema
        self._dsn = dsn
        self._index: FullTextIndex | None = None
        self._versions_dir = root / "versions"
        # The version each collection's index holds; -1: no index yet (build it whole).
        self._applied: dict[int, int] = {}
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
        root = self.root / f"{instance_id}-{self._schema}-f{INDEX_FORMAT}"
        self._versions_dir = root / "versions"
        self._versions_dir.mkdir(parents=True, exist_ok=True)
        self._index = FullTextIndex(root / "tantivy")
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

    async def wait_listening(self) -> None:
        """Return once the listener is subscribed (tests and benchmarks wait for it)."""
        await self._listening.wait()

    def applied_version(self, collection_key: int) -> int:
        """The version of the collection this node's index holds (-1: none yet)."""
        return self._version(collection_key)

    async def wait_for_version(self, collection_key: int, version: int) -> None:
        """Return once this node's index holds `version` of the collection (or a later one)."""
        async with self._applied_changed:
            await self._applied_changed.wait_for(lambda: self._version(collection_key) >= version)

    # -- keeping current -----------------------------------------------------------------------

    async def catch_up_all(self) -> None:
        """Bring every collection's index up to date, and drop indexes of deleted collections."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT key, version FROM kb_collections")
            current = {int(key): int(version) for key, version in await cursor.fetchall()}
        for stale in set(self._known_keys()) - set(current):
            await self._drop(stale)
        for key, version in current.items():
            await self.ensure_current(key, version)

    async def ensure_current(self, collection_key: int, version: int) -> None:
        """Make the collection's index hold at least `version` (what a search just read)."""
        if self._version(collection_key) >= version:
            return
        lock = self._locks.setdefault(collection_key, asyncio.Lock())
        async with lock:
            if self._version(collection_key) < version:
                await self._apply_changes(collection_key)

    async def _apply_changes(self, collection_key: int) -> None:
        applied = self._version(collection_key)
        async with self._pool.connection() as conn, conn.transaction():
            # One snapshot for the version and the rows, so the index holds exactly that version.
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor = await conn.execute(
                "SELECT version FROM kb_collections WHERE key = %s", (collection_key,)
            )
            row = await cursor.fetchone()
            if row is None:
                await self._drop(collection_key)
                return
            version = int(row[0])
            if applied < 0:
                await self._build(conn, collection_key)
            elif version > applied:
                cursor = await conn.execute(
                    "SELECT document_key FROM kb_changes "
                    "WHERE collection_key = %s AND version > %s",
                    (collection_key, applied),
                )
                documents = [int(d) for (d,) in await cursor.fetchall()]
                cursor = await conn.execute(
                    f"{_CHUNK_ROWS} WHERE c.document_key = ANY(%s) ORDER BY c.key",
                    (documents,),
                )
                chunks = [_chunk_row(row) for row in await cursor.fetchall()]
                await asyncio.to_thread(self._fulltext.apply, collection_key, documents, chunks)
        self._save_version(collection_key, version)
        async with self._applied_changed:
            self._applied_changed.notify_all()

    async def _build(self, conn: AsyncConnection[TupleRow], collection_key: int) -> None:
        """Index every chunk of the collection again, a batch at a time (inside the caller's
        snapshot; pages by key, so no server-side cursor is left open if this is cancelled)."""
        _log.info("building the BM25 index of collection %d from PostgreSQL", collection_key)
        await asyncio.to_thread(self._fulltext.drop, collection_key)
        after = 0
        while True:
            cursor = await conn.execute(
                f"{_CHUNK_ROWS} WHERE c.collection_key = %s AND c.key > %s ORDER BY c.key LIMIT %s",
                (collection_key, after, _BUILD_BATCH_ROWS),
            )
            batch = [_chunk_row(row) for row in await cursor.fetchall()]
            if not batch:
                return
            await asyncio.to_thread(self._fulltext.apply, collection_key, (), batch)
            after = batch[-1][0]

    async def _drop(self, collection_key: int) -> None:
        await asyncio.to_thread(self._fulltext.drop, collection_key)
        self._applied.pop(collection_key, None)
        (self._versions_dir / str(collection_key)).unlink(missing_ok=True)

    # -- following -----------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Apply changes as other nodes commit them; after a lost connection, catch up whole."""
        import psycopg

        delay = _RECONNECT_FIRST_S
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
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
            else:
                await self.ensure_current(collection_key, version)
        except Exception:
            # The next search of that collection catches up itself; the listener must live on.
            _log.exception("applying knowledge change %s failed", payload)

    # -- searching -----------------------------------------------------------------------------

    async def search(
        self, collection_key: int, terms: Sequence[str], k: int, doc_keys: Sequence[int] | None
    ) -> list[ScoredChunk]:
        """BM25 over the collection's current index (call `ensure_current` first)."""
        index = self._fulltext
        if (
            doc_keys is None
            and index.chunk_count(collection_key) <= _tantivy_index.INLINE_SEARCH_MAX_CHUNKS
        ):
            return index.search(collection_key, terms, k, None)
        return await asyncio.to_thread(index.search, collection_key, terms, k, doc_keys)

    # -- versions on disk ----------------------------------------------------------------------

    def _version(self, collection_key: int) -> int:
        version = self._applied.get(collection_key)
        if version is None:
            try:
                version = int((self._versions_dir / str(collection_key)).read_text())
            except (OSError, ValueError):
                version = -1
            self._applied[collection_key] = version
        return version

    def _save_version(self, collection_key: int, version: int) -> None:
        # Written after tantivy's commit: a crash in between re-applies, which is harmless.
        path = self._versions_dir / str(collection_key)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(str(version))
        temporary.replace(path)
        self._applied[collection_key] = version

    def _known_keys(self) -> list[int]:
        return [int(p.name) for p in self._versions_dir.iterdir() if p.name.isdigit()]


def _chunk_row(row: Sequence[Any]) -> tuple[int, int, str | None, str]:
    chunk, document, title, text = row
    return int(chunk), int(document), title, str(text)


def notice_payload(schema: str, collection_key: int, version: int) -> str:
    """What a writer announces: the collection and the version it committed (-1: deleted)."""
    return f"{schema}:{collection_key}:{version}"
