"""Shared state of `KnowledgeBase`'s parts: its settings, the writing embedder, cache invalidation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from companion.cache import TieredCache
from companion.knowledge._chunking import Chunker
from companion.knowledge._embedder import Embedder
from companion.knowledge._embedding_queue import EmbeddingQueue
from companion.knowledge._errors import EmbeddingModelMismatch
from companion.knowledge._models import Collection
from companion.knowledge._store import Store

__all__ = ["EMBEDDER_HINT", "KbBase"]

EMBEDDER_HINT = (
    "install the embeddings extra (`pip install 'companion[embeddings]'`) and export the model "
    "once with `companion models export`"
)


class KbBase:
    """What every part of `KnowledgeBase` shares; `KnowledgeBase.__init__` sets these attributes."""

    store: Store
    embedder: Embedder | None
    cache: TieredCache | None
    chunker: Chunker
    max_document_bytes: int
    max_query_chars: int
    max_k: int
    query_timeout_ms: int
    rrf_k: int
    bm25_weight: float
    vector_weight: float
    fusion_depth: int
    cache_ttl_s: float
    inline_embed_max_chunks: int
    embedding_queue: EmbeddingQueue | None
    _clock: Callable[[], float]

    def _writing_embedder(self, target: Collection) -> Embedder | None:
        if target.embedding is None or self.embedder is None:
            return None
        if target.embedding != self.embedder.info:
            raise EmbeddingModelMismatch(
                f"collection {target.name!r} holds vectors of {_model(target.embedding)} but this "
                f"service embeds with {_model(self.embedder.info)}; run `companion reindex "
                f"--collection {target.name}` to re-embed it"
            )
        return self.embedder

    def _invalidate(self, tenant: str, collection: str) -> None:
        if self.cache is not None:
            self.cache.invalidate_tags(_tag(tenant, collection))


def _tag(tenant: str, collection: str) -> str:
    # Tenant-owned cache entries start with `t:<tenant>:`, as the service's invalidation expects.
    return f"t:{tenant}:knowledge:{collection}"


def _model(info: Any) -> str:
    return f"{info.model}@{info.version} ({info.dimension} dims)"
