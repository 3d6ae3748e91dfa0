"""`KnowledgeBase`: validation, chunking, embedding, search fusion, snippets and result caching."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from companion.cache import TieredCache
from companion.config import setting_default
from companion.knowledge._chunking import Chunker
from companion.knowledge._embedder import Embedder
from companion.knowledge._embedding_queue import EmbeddingProgress, EmbeddingQueue
from companion.knowledge._errors import CollectionExists, InvalidDocument
from companion.knowledge._kb_base import EMBEDDER_HINT, _model
from companion.knowledge._kb_documents import IngestProgress, KbDocuments
from companion.knowledge._kb_reindex import KbReindex
from companion.knowledge._kb_search import KbSearch, SearchResult
from companion.knowledge._models import Collection
from companion.knowledge._shutdown import finish_within
from companion.knowledge._store import Store
from companion.knowledge._validation import check_name, check_tenant

if TYPE_CHECKING:
    from companion.monitoring import Monitor

__all__ = ["EmbeddingProgress", "IngestProgress", "KnowledgeBase", "SearchResult"]


class KnowledgeBase(KbDocuments, KbSearch, KbReindex):
    """Collections of documents per tenant, searched by BM25, vectors or both; see docs/knowledge.md."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder | None = None,
        *,
        cache: TieredCache | None = None,
        chunker: Chunker | None = None,
        max_document_bytes: int = setting_default("knowledge_max_document_bytes"),
        max_query_chars: int = setting_default("knowledge_max_query_chars"),
        max_k: int = 100,
        query_timeout_ms: int = setting_default("knowledge_query_timeout_ms"),
        rrf_k: int = setting_default("knowledge_rrf_rank_offset"),
        bm25_weight: float = setting_default("knowledge_hybrid_bm25_weight"),
        vector_weight: float = setting_default("knowledge_hybrid_vector_weight"),
        fusion_depth: int = 100,
        cache_ttl_s: float = setting_default("knowledge_cache_ttl_s"),
        inline_embed_max_chunks: int = setting_default("knowledge_inline_embed_max_chunks"),
        embedding_batch_chunks: int = 64,
        monitor: Monitor | None = None,
        close_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.cache = cache
        self.chunker = chunker or Chunker()
        self.max_document_bytes = max_document_bytes
        self.max_query_chars = max_query_chars
        self.max_k = max_k
        self.query_timeout_ms = query_timeout_ms
        self.rrf_k = rrf_k
        self.bm25_weight = bm25_weight
        self.vector_weight = vector_weight
        self.fusion_depth = fusion_depth
        self.cache_ttl_s = cache_ttl_s
        self.inline_embed_max_chunks = inline_embed_max_chunks
        self.close_timeout_s = close_timeout_s
        self.embedding_queue = None
        if embedder is not None:
            self.embedding_queue = EmbeddingQueue(
                store,
                embedder,
                batch_chunks=embedding_batch_chunks,
                on_batch=self._invalidate,
                monitor=monitor,
                close_timeout_s=close_timeout_s,
            )
        self._clock = clock

    async def start(self) -> None:
        """Start the store (migrations, index catch-up) and resume pending embeddings."""
        await self.store.start()
        if self.embedding_queue is not None:
            await self.embedding_queue.start()

    async def close(self) -> None:
        """Stop the embedding queue and close the store, each within `close_timeout_s`.

        Whatever a library below does with cancellation, this returns: a part that does not stop
        in time is logged and left behind.
        """
        if self.embedding_queue is not None:
            await self.embedding_queue.close()
        await finish_within(self.store.close(), self.close_timeout_s, "closing the knowledge store")

    async def embedding_progress(self, tenant: str, collection: str) -> EmbeddingProgress:
        """The collection's embedded and pending chunk counts (both 0 without a model)."""
        check_tenant(tenant)
        check_name(collection)
        if self.embedding_queue is None:
            await self.store.get_collection(tenant, collection)
            return EmbeddingProgress(0, 0)
        return await self.embedding_queue.progress(tenant, collection)

    async def wait_for_embeddings(
        self,
        tenant: str,
        collection: str,
        *,
        timeout_s: float | None = None,
        on_progress: Callable[[EmbeddingProgress], None] | None = None,
    ) -> EmbeddingProgress:
        """Wait until the queue has embedded every chunk of the collection."""
        if self.embedding_queue is None:
            return await self.embedding_progress(tenant, collection)
        return await self.embedding_queue.wait(
            check_tenant(tenant),
            check_name(collection),
            timeout_s=timeout_s,
            on_progress=on_progress,
        )

    async def health(self) -> str:
        """The store's status and whether vector search works (and if not, why: a clear warning)."""
        line = await self.store.health()
        if self.embedder is None:
            return f"{line}; vector/hybrid search off (no embedder: {EMBEDDER_HINT})"
        problem = self.store.vector_problem
        if problem is not None:
            return f"{line}; WARNING vector/hybrid search degraded: {problem}"
        return f"{line}; embedder {_model(self.embedder.info)}"

    # -- collections ---------------------------------------------------------------------------

    async def create_collection(self, tenant: str, name: str, description: str = "") -> Collection:
        """Create a collection, recording the embedder's model when there is one."""
        check_tenant(tenant)
        check_name(name)
        if not isinstance(description, str) or len(description) > 1000:
            raise InvalidDocument("description must be a string of at most 1000 characters")
        info = self.embedder.info if self.embedder is not None else None
        return await self.store.create_collection(tenant, name, description, info)

    async def ensure_collection(
        self, tenant: str, name: str, description: str = ""
    ) -> tuple[Collection, bool]:
        """The collection `name`, created first when it does not exist (with `description`;
        an existing one keeps its own), and whether this call created it. Safe when several
        callers race: one creates it, the others get it."""
        try:
            return await self.create_collection(tenant, name, description), True
        except CollectionExists:
            return await self.get_collection(tenant, name), False

    async def list_collections(self, tenant: str) -> list[Collection]:
        """The tenant's collections by name."""
        return await self.store.list_collections(check_tenant(tenant))

    async def get_collection(self, tenant: str, name: str) -> Collection:
        """One collection, or `CollectionNotFound` (also for another tenant's)."""
        return await self.store.get_collection(check_tenant(tenant), check_name(name))

    async def delete_collection(self, tenant: str, name: str) -> None:
        """Delete a collection and all its documents."""
        await self.store.delete_collection(check_tenant(tenant), check_name(name))
        self._invalidate(tenant, name)
