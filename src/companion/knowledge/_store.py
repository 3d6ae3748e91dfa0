"""The `Store` protocol: where collections, documents and chunks live, and how they are searched.

A store owns durability and retrieval; the `KnowledgeBase` in front of it owns validation, chunking,
embedding, fusion, snippets and caching, so both stores return exactly the same results shape.
Every method that writes is one transaction: when it returns the write is committed, when it
raises nothing was written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from companion.knowledge._filters import Condition
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

__all__ = ["Store"]


class Store(Protocol):
    """A knowledge store; see `SqliteStore` (embedded) and `PostgresStore` (several nodes)."""

    @property
    def vector_problem(self) -> str | None:
        """Why this store cannot search vectors (None when it can)."""

    async def start(self) -> None:
        """Open, migrate and bring derived indexes up to date."""

    async def close(self) -> None:
        """Release files, connections and threads."""

    async def health(self) -> str:
        """A one-line status for `/readyz`; raises a `CompanionError` when unusable."""

    async def create_collection(
        self, tenant: str, name: str, description: str, embedding: EmbeddingInfo | None
    ) -> Collection:
        """Create a collection; `CollectionExists` when the tenant has one of that name."""

    async def list_collections(self, tenant: str) -> list[Collection]:
        """The tenant's collections by name."""

    async def get_collection(self, tenant: str, name: str) -> Collection:
        """One collection, or `CollectionNotFound`."""

    async def delete_collection(self, tenant: str, name: str) -> None:
        """Delete a collection and everything in it, or `CollectionNotFound`."""

    async def set_embedding(self, tenant: str, name: str, embedding: EmbeddingInfo | None) -> None:
        """Record the model the collection's vectors now come from."""

    async def adopt_embedding(self, tenant: str, name: str, embedding: EmbeddingInfo) -> Collection:
        """Record `embedding` for a collection that has no model yet (one made without a model:
        none of its chunks has a vector); leave one that has a model as it is. The collection
        as it is afterwards, so a caller racing another node sees which model won."""

    async def content_hashes(self, tenant: str, name: str, ids: Sequence[str]) -> dict[str, str]:
        """The stored content hash of each of `ids` that exists."""

    async def upsert(self, tenant: str, name: str, documents: Sequence[PreparedDocument]) -> None:
        """Insert or replace `documents` (and their chunks) in one transaction."""

    async def get_document(self, tenant: str, name: str, document_id: str) -> Document:
        """One document, or `DocumentNotFound`."""

    async def list_documents(self, tenant: str, name: str, limit: int, after: str | None) -> Page:
        """Documents ordered by id, `limit` at most, starting after the id `after`."""

    async def delete_document(self, tenant: str, name: str, document_id: str) -> None:
        """Delete one document and its chunks, or `DocumentNotFound`."""

    async def write_version(self, tenant: str, name: str) -> str | None:
        """The collection's state when other processes write it too (it changes with each
        committed write and between two collections of one name, so a cached search result can
        be keyed by it); None when every write goes through this process, which drops its cached
        results itself."""

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
        """The best `k` documents for analyzed `terms` (OR) by BM25 over their whole text, each
        with its best chunks: one when `passages` (default `k`, the hits the result will show)
        documents match, else up to `passages`."""

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
        """Nearest chunks by cosine similarity to a unit `vector`, best first."""

    async def fetch_chunks(self, keys: Sequence[int]) -> dict[int, ChunkRecord]:
        """The chunks of `keys` (missing keys are left out)."""

    async def chunk_owners(self, keys: Sequence[int]) -> dict[int, str]:
        """The document id of each chunk of `keys` (missing keys are left out): what ranking
        needs, without the texts and metadata `fetch_chunks` reads."""

    async def chunks_to_embed(
        self, tenant: str, name: str, after_key: int, limit: int, *, missing_only: bool = False
    ) -> list[tuple[int, str]]:
        """`(key, text)` of the collection's chunks in key order (only those without a vector
        when `missing_only`), for the embedding queue and re-embedding."""

    async def pending_embeddings(self, tenant: str, name: str) -> int:
        """How many of the collection's chunks have no vector yet (the embedding queue's work)."""

    async def collections_pending_embeddings(self) -> list[tuple[str, str]]:
        """`(tenant, name)` of every collection with a model and chunks without a vector."""

    async def set_vectors(
        self, tenant: str, name: str, vectors: Sequence[tuple[int, bytes]]
    ) -> None:
        """Replace the vectors of existing chunks (float32 bytes) in one transaction."""
