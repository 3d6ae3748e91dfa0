"""The background embedding queue: chunks committed without a vector are embedded in batches.

The queue is durable by construction: its work list is the store itself (chunks whose vector is
NULL), so nothing is lost when the process stops; `start` finds every collection with pending
chunks and resumes. One asyncio task drives it; the model runs in a worker thread
(`asyncio.to_thread`), so the event loop keeps serving while a bulk ingest is embedded, and the
vectors are written through the store's normal `set_vectors` (one transaction per batch).

Stopping never waits forever: `close` cancels the task, and the task also stops at its next turn on
its own, since a library below it may swallow the cancellation (the PostgreSQL pool did); a task
still running after `close_timeout_s` is logged and left behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from companion.knowledge._embedder import Embedder, to_float32_bytes
from companion.knowledge._errors import CollectionNotFound
from companion.knowledge._shutdown import cancel_within
from companion.knowledge._store import Store

if TYPE_CHECKING:
    from companion.monitoring import Monitor

__all__ = ["EmbeddingProgress", "EmbeddingQueue"]

_log = logging.getLogger("companion.knowledge")


@dataclass(frozen=True, slots=True)
class EmbeddingProgress:
    """A collection's chunks with a vector (`embedded`) and still waiting for one (`pending`)."""

    pending: int
    embedded: int

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {"pending": self.pending, "embedded": self.embedded}


class EmbeddingQueue:
    """Embeds pending chunks of the collections it is told about, one batch at a time."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        batch_chunks: int = 64,
        on_batch: Callable[[str, str], None] | None = None,
        monitor: Monitor | None = None,
        close_timeout_s: float = 5.0,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.batch_chunks = batch_chunks
        self.on_batch = on_batch
        self.close_timeout_s = close_timeout_s
        self._todo: dict[tuple[str, str], None] = {}  # insertion-ordered set
        self._wake = asyncio.Event()
        self._progressed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._pending: dict[tuple[str, str], int] = {}
        self._gauge = (
            monitor.gauge(
                "companion_knowledge_embeddings_pending",
                "Chunks committed without a vector, waiting for the embedding queue.",
            )
            if monitor is not None
            else None
        )

    async def start(self) -> None:
        """Start the worker and resume every collection left with pending chunks."""
        for tenant, name in await self.store.collections_pending_embeddings():
            self._record(tenant, name, await self.store.pending_embeddings(tenant, name))
            self.notify(tenant, name)
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="companion-embedding-queue")

    async def close(self) -> None:
        """Stop the worker within `close_timeout_s` (pending chunks stay in the store for next start).

        Not `task.cancel(); await task`: when a library below swallows the cancellation, the task
        carries on to its next wait and that await never ends. The task is cancelled, told to stop
        at its next turn and woken; past the bound it is logged and left behind.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._wake.set()
        await cancel_within(task, self.close_timeout_s, "the embedding queue")

    def notify(self, tenant: str, name: str) -> None:
        """Tell the worker a collection has chunks to embed."""
        self._todo[(tenant, name)] = None
        self._wake.set()

    async def progress(self, tenant: str, name: str) -> EmbeddingProgress:
        """Pending and embedded chunk counts, read from the store."""
        collection = await self.store.get_collection(tenant, name)
        if collection.embedding is None:
            return EmbeddingProgress(0, 0)
        pending = await self.store.pending_embeddings(tenant, name)
        self._record(tenant, name, pending)
        return EmbeddingProgress(pending, collection.chunk_count - pending)

    async def wait(
        self,
        tenant: str,
        name: str,
        *,
        timeout_s: float | None = None,
        on_progress: Callable[[EmbeddingProgress], None] | None = None,
    ) -> EmbeddingProgress:
        """Wait until the collection has no pending chunk; `TimeoutError` after `timeout_s`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            progressed = self._progressed  # taken before reading, so no batch is missed
            progress = await self.progress(tenant, name)
            if on_progress is not None:
                on_progress(progress)
            if progress.pending == 0:
                return progress
            if self._task is None or self._task.done():
                raise RuntimeError("the embedding queue is not running")
            self.notify(tenant, name)
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.wait_for(progressed.wait(), remaining)

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            while self._todo and not self._closing:
                tenant, name = next(iter(self._todo))
                del self._todo[(tenant, name)]
                try:
                    await self._drain(tenant, name)
                except CollectionNotFound:
                    pass  # deleted while queued: nothing left to embed
                except Exception:
                    # The chunks stay pending in the store: the next write or start retries them.
                    _log.exception("embedding %s/%s failed; it is retried later", tenant, name)
                self._signal()

    async def _drain(self, tenant: str, name: str) -> None:
        collection = await self.store.get_collection(tenant, name)
        if collection.embedding is None:
            return  # made without a model: the knowledge base gives it one when vectors are asked
        if collection.embedding != self.embedder.info:
            _log.warning("collection %s/%s needs `companion reindex`: not embedded", tenant, name)
            return
        after = 0
        while not self._closing:
            rows = await self.store.chunks_to_embed(
                tenant, name, after, self.batch_chunks, missing_only=True
            )
            if not rows:
                break
            texts = [text for _, text in rows]
            vectors = await asyncio.to_thread(self.embedder.embed, texts)
            await self.store.set_vectors(
                tenant,
                name,
                [(key, to_float32_bytes(v)) for (key, _), v in zip(rows, vectors, strict=True)],
            )
            # Chunks get increasing keys, so newer pending chunks always come after `after`.
            after = rows[-1][0]
            if self.on_batch is not None:
                self.on_batch(tenant, name)
            self._record(tenant, name, await self.store.pending_embeddings(tenant, name))
            self._signal()

    def _signal(self) -> None:
        self._progressed.set()
        self._progressed = asyncio.Event()

    def _record(self, tenant: str, name: str, pending: int) -> None:
        # The gauge sums the last count read for each collection: no extra query to keep it up.
        if pending:
            self._pending[(tenant, name)] = pending
        else:
            self._pending.pop((tenant, name), None)
        if self._gauge is not None:
            self._gauge.set(sum(self._pending.values()))
