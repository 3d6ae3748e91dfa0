"""Building the knowledge base the settings describe (the service and the CLI share this)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from companion.cache import TieredCache
from companion.config import Settings
from companion.knowledge._chunking import Chunker
from companion.knowledge._embedder import Embedder, EmbedderSource
from companion.knowledge._knowledge_base import KnowledgeBase
from companion.knowledge._sqlite_store import SqliteStore
from companion.knowledge._store import Store

if TYPE_CHECKING:
    from companion.monitoring import Monitor

__all__ = ["build_knowledge_base"]


def build_knowledge_base(
    settings: Settings,
    *,
    cache: TieredCache | None = None,
    embedder: Embedder | None = None,
    monitor: Monitor | None = None,
    serving: bool = True,
    embedder_source: EmbedderSource | None = None,
) -> KnowledgeBase:
    """A knowledge base (not started) on PostgreSQL when `database_url` is set, else embedded.

    `serving=False` is for one-off commands beside a running node: on PostgreSQL their BM25
    indexes go to a temporary directory, built for the collections they search only.
    `embedder_source` (a `ModelDirectory`) lets a knowledge base started without a model load one
    exported later, and names what is missing meanwhile.
    """
    store: Store
    if settings.database_url is not None:
        from companion.knowledge._postgres_store import PostgresStore

        store = PostgresStore(
            settings.database_url.get_secret_value(),
            schema=settings.database_schema,
            index_dir=settings.data_dir / "knowledge-postgres" if serving else None,
            follow=serving,
        )
    else:
        store = SqliteStore(
            settings.data_dir / "knowledge",
            exact_vector_max_chunks=settings.knowledge_exact_max_chunks,
        )
    return KnowledgeBase(
        store,
        embedder,
        cache=cache,
        chunker=Chunker(settings.knowledge_chunk_chars, settings.knowledge_chunk_overlap_chars),
        max_document_bytes=settings.knowledge_max_document_bytes,
        max_query_chars=settings.knowledge_max_query_chars,
        query_timeout_ms=settings.knowledge_query_timeout_ms,
        fusion=settings.knowledge_hybrid_fusion,
        rrf_k=settings.knowledge_rrf_rank_offset,
        bm25_weight=settings.knowledge_hybrid_bm25_weight,
        vector_weight=settings.knowledge_hybrid_vector_weight,
        cache_ttl_s=settings.knowledge_cache_ttl_s,
        inline_embed_max_chunks=settings.knowledge_inline_embed_max_chunks,
        monitor=monitor,
        embedder_source=embedder_source,
    )
