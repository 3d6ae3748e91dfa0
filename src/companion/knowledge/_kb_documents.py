"""`KnowledgeBase`'s documents: validated, hashed, chunked and embedded upserts; bulk ingest; reads."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from companion.knowledge._embedder import Embedder, to_float32_bytes
from companion.knowledge._errors import InvalidDocument
from companion.knowledge._kb_base import KbBase, _model
from companion.knowledge._models import (
    Collection,
    Document,
    DocumentInput,
    Page,
    PreparedChunk,
    PreparedDocument,
)
from companion.knowledge._validation import check_document, check_name, check_tenant

__all__ = ["DocumentLike", "IngestProgress", "KbDocuments"]

DocumentLike = DocumentInput | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """Progress of a bulk ingest, reported after each committed batch."""

    documents_done: int
    documents_skipped: int
    chunks_written: int


class KbDocuments(KbBase):
    """The document methods of `KnowledgeBase`."""

    # -- documents -----------------------------------------------------------------------------

    async def upsert(
        self, tenant: str, collection: str, documents: Sequence[DocumentLike]
    ) -> list[str]:
        """Add or replace documents in one transaction; return their ids in input order.

        A document whose content hash is unchanged is not chunked, embedded or rewritten.
        """
        ids, _, _ = await self._upsert(tenant, collection, documents)
        return ids

    async def _upsert(
        self,
        tenant: str,
        collection: str,
        documents: Sequence[DocumentLike],
        *,
        defer_embedding: bool = False,
    ) -> tuple[list[str], int, int]:
        check_tenant(tenant)
        check_name(collection)
        valid = [check_document(doc, self.max_document_bytes) for doc in documents]
        ids = [doc.id for doc in valid if doc.id is not None]
        if len(set(ids)) != len(ids):
            raise InvalidDocument("the same document id appears twice in one request")
        target = await self.store.get_collection(tenant, collection)
        embedder = self._writing_embedder(target)
        stored = await self.store.content_hashes(tenant, collection, ids)
        hashes = {doc.id: self._content_hash(doc, target) for doc in valid}
        changed = [doc for doc in valid if stored.get(doc.id or "") != hashes[doc.id]]
        prepared, deferred = await asyncio.to_thread(
            self._prepare, changed, hashes, embedder, defer_embedding
        )
        if prepared:
            await self.store.upsert(tenant, collection, prepared)
            self._invalidate(tenant, collection)
        if deferred and self.embedding_queue is not None:
            self.embedding_queue.notify(tenant, collection)
        chunks = sum(len(doc.chunks) for doc in prepared)
        return ids, len(valid) - len(changed), chunks

    async def ingest(
        self,
        tenant: str,
        collection: str,
        documents: Iterable[DocumentLike],
        *,
        batch_size: int = 64,
        on_progress: Callable[[IngestProgress], None] | None = None,
    ) -> IngestProgress:
        """Bulk upsert committed in batches of `batch_size`; `on_progress` after each batch.

        With an embedding queue the batches commit without vectors and the queue embeds them.
        """
        done = skipped = chunks = 0
        batch: list[DocumentLike] = []

        async def flush() -> None:
            nonlocal done, skipped, chunks
            _, batch_skipped, batch_chunks = await self._upsert(
                tenant, collection, batch, defer_embedding=True
            )
            done += len(batch)
            skipped += batch_skipped
            chunks += batch_chunks
            batch.clear()
            if on_progress is not None:
                on_progress(IngestProgress(done, skipped, chunks))

        for document in documents:
            batch.append(document)
            if len(batch) >= batch_size:
                await flush()
        if batch:
            await flush()
        return IngestProgress(done, skipped, chunks)

    async def get_document(self, tenant: str, collection: str, document_id: str) -> Document:
        """One document, or `DocumentNotFound`."""
        check_tenant(tenant)
        return await self.store.get_document(tenant, check_name(collection), document_id)

    async def list_documents(
        self, tenant: str, collection: str, *, limit: int = 100, after: str | None = None
    ) -> Page:
        """Documents ordered by id; pass `Page.next_after` as `after` for the next page."""
        check_tenant(tenant)
        if not 1 <= limit <= 1000:
            raise InvalidDocument(f"limit must be from 1 to 1000, got {limit}")
        return await self.store.list_documents(tenant, check_name(collection), limit, after)

    async def delete_document(self, tenant: str, collection: str, document_id: str) -> None:
        """Delete one document, or `DocumentNotFound`."""
        check_tenant(tenant)
        await self.store.delete_document(tenant, check_name(collection), document_id)
        self._invalidate(tenant, collection)

    def _content_hash(self, doc: DocumentInput, target: Collection) -> str:
        # The chunking policy and model are part of the hash: changing either re-indexes on upsert.
        policy = (self.chunker.size, self.chunker.overlap, self.chunker.unit)
        model = _model(target.embedding) if target.embedding and self.embedder else None
        canonical = orjson.dumps(
            [doc.text, doc.title, doc.metadata, doc.source, policy, model],
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(canonical).hexdigest()

    def _prepare(
        self,
        documents: list[DocumentInput],
        hashes: dict[str | None, str],
        embedder: Embedder | None,
        defer: bool,
    ) -> tuple[list[PreparedDocument], bool]:
        """Chunk (and embed) `documents`; the flag says the embedding was left to the queue."""
        splits = [self.chunker.split(doc.text) for doc in documents]
        texts = [span.text for spans in splits for span in spans]
        # A large write commits without vectors (BM25-searchable at once) and the queue embeds
        # it; a small one is embedded first, so it is vector-searchable once acknowledged.
        deferred = embedder is not None and self.embedding_queue is not None
        deferred = deferred and (defer or len(texts) > self.inline_embed_max_chunks)
        if deferred:
            embedder = None
        # One embedding call for every chunk of the batch: the model runs full batches, not one
        # document's few chunks at a time.
        vectors = iter(embedder.embed(texts) if embedder is not None and texts else ())
        prepared: list[PreparedDocument] = []
        for doc, spans in zip(documents, splits, strict=True):
            chunks = [
                PreparedChunk(
                    i,
                    span.text,
                    span.start_char,
                    span.end_char,
                    to_float32_bytes(next(vectors)) if embedder is not None else None,
                )
                for i, span in enumerate(spans)
            ]
            assert doc.id is not None
            prepared.append(
                PreparedDocument(
                    doc.id, doc.text, doc.title, doc.metadata, doc.source, hashes[doc.id], chunks
                )
            )
        return prepared, deferred
