"""`KnowledgeBase`: validation, chunking, embedding, search fusion, snippets and result caching."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from companion.cache import TieredCache
from companion.config import setting_default
from companion.errors import CompanionError
from companion.knowledge._chunking import Chunker, TextSpan
from companion.knowledge._embedder import Embedder, EmbedderSource, to_float32_bytes
from companion.knowledge._embedding_queue import EmbeddingProgress, EmbeddingQueue
from companion.knowledge._errors import (
    CollectionExists,
    EmbedderRequired,
    EmbeddingModelMismatch,
    InvalidDocument,
)
from companion.knowledge._file_documents import FileIngest, documents_from
from companion.knowledge._filters import parse_filter
from companion.knowledge._fusion import (
    DEFAULT_FUSION,
    FusionMethod,
    rank_passages,
    result_hits,
)
from companion.knowledge._models import (
    Collection,
    Document,
    DocumentInput,
    DocumentSection,
    IngestProgress,
    Page,
    PreparedChunk,
    PreparedDocument,
    ScoredChunk,
    ScoredDocument,
    SearchHit,
    SearchMode,
    SearchResult,
)
from companion.knowledge._parsing import ParseLimits, ParseProblem, parse_file
from companion.knowledge._query import clean_query, query_terms
from companion.knowledge._shutdown import finish_within
from companion.knowledge._store import Store
from companion.knowledge._validation import (
    check_document,
    check_k,
    check_mode,
    check_name,
    check_tenant,
)

if TYPE_CHECKING:
    from companion.monitoring import Monitor

__all__ = ["EmbeddingProgress", "KnowledgeBase"]


EMBEDDER_HINT = (
    "install the embeddings extra (`pip install 'companion[embeddings]'`) and export the model "
    "once with `companion models export`"
)


DocumentLike = DocumentInput | Mapping[str, Any]


# Documents of one file (CSV rows, JSON lines) committed together.
_FILE_BATCH_DOCUMENTS = 256


class KnowledgeBase:
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
        fusion: FusionMethod = DEFAULT_FUSION,
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
        embedder_source: EmbedderSource | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        # Without an embedder, the source is asked again when one is needed (see `_look_for_model`).
        self.embedder_source = embedder_source
        self.cache = cache
        self.chunker = chunker or Chunker()
        self.max_document_bytes = max_document_bytes
        self.max_query_chars = max_query_chars
        self.max_k = max_k
        self.query_timeout_ms = query_timeout_ms
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.bm25_weight = bm25_weight
        self.vector_weight = vector_weight
        self.fusion_depth = fusion_depth
        self.cache_ttl_s = cache_ttl_s
        self.inline_embed_max_chunks = inline_embed_max_chunks
        self.close_timeout_s = close_timeout_s
        self._embedding_batch_chunks = embedding_batch_chunks
        self._monitor = monitor
        self.embedding_queue = self._queue(embedder) if embedder is not None else None
        self._clock = clock
        self._started = False
        self._model_lock = asyncio.Lock()

    # -- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the store (migrations, index catch-up) and resume pending embeddings."""
        await self.store.start()
        self._started = True
        if self.embedding_queue is not None:
            await self.embedding_queue.start()

    async def close(self) -> None:
        """Stop the embedding queue and close the store, each within `close_timeout_s`.

        Whatever a library below does with cancellation, this returns: a part that does not stop
        in time is logged and left behind.
        """
        self._started = False  # a model loading meanwhile is attached without starting its queue
        if self.embedding_queue is not None:
            await self.embedding_queue.close()
        await finish_within(self.store.close(), self.close_timeout_s, "closing the knowledge store")

    async def embedding_progress(self, tenant: str, collection: str) -> EmbeddingProgress:
        """The collection's embedded and pending chunk counts (both 0 while it has no model, until
        its first vector search, write or wait for embeddings gives it the loaded one)."""
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
        """Wait until the queue has embedded every chunk of the collection (one made without a
        model takes the loaded one first: waiting for its vectors asks for them)."""
        check_tenant(tenant)
        check_name(collection)
        await self._look_for_model()
        if self.embedding_queue is None:
            return await self.embedding_progress(tenant, collection)
        await self._adopted(await self.store.get_collection(tenant, collection))
        return await self.embedding_queue.wait(
            tenant,
            collection,
            timeout_s=timeout_s,
            on_progress=on_progress,
        )

    async def health(self) -> str:
        """The store's status and whether vector search works (and if not, why: a clear warning)."""
        line = await self.store.health()
        await self._look_for_model()
        if self.embedder is None:
            return f"{line}; vector/hybrid search off (no embedder: {self._embedder_hint()})"
        problem = self.store.vector_problem
        if problem is not None:
            return f"{line}; WARNING vector/hybrid search degraded: {problem}"
        stale = self.embedder_source.problem if self.embedder_source is not None else None
        if stale is not None:
            return f"{line}; embedder {_model(self.embedder.info)}; WARNING {stale}"
        return f"{line}; embedder {_model(self.embedder.info)}"

    # -- the embedding model ----------------------------------------------------------------

    async def attach_embedder(self, embedder: Embedder) -> None:
        """Start embedding with `embedder`, in a knowledge base that has none: collections created
        from now on record its model, and the queue embeds their pending chunks."""
        if self.embedder is not None:
            raise RuntimeError("this knowledge base already has an embedder")
        queue = self._queue(embedder)
        self.embedder, self.embedding_queue = embedder, queue
        if self._started:
            await queue.start()

    async def _look_for_model(self) -> None:
        """Load a model that appeared since the last look (`companion models export` beside a
        running service): a few `stat` calls when nothing changed, one load when it did."""
        source = self.embedder_source
        if self.embedder is not None or source is None or not source.changed():
            return
        async with self._model_lock:
            if self.embedder is None and source.changed():
                embedder = await asyncio.to_thread(source.load)
                if embedder is not None:
                    await self.attach_embedder(embedder)

    def _embedder_hint(self) -> str:
        source = self.embedder_source
        problem = source.problem if source is not None else None
        return problem or EMBEDDER_HINT

    def _queue(self, embedder: Embedder) -> EmbeddingQueue:
        return EmbeddingQueue(
            self.store,
            embedder,
            batch_chunks=self._embedding_batch_chunks,
            on_batch=self._invalidate,
            monitor=self._monitor,
            close_timeout_s=self.close_timeout_s,
        )

    # -- collections ------------------------------------------------------------------------

    async def create_collection(self, tenant: str, name: str, description: str = "") -> Collection:
        """Create a collection, recording the embedder's model when there is one."""
        check_tenant(tenant)
        check_name(name)
        if not isinstance(description, str) or len(description) > 1000:
            raise InvalidDocument("description must be a string of at most 1000 characters")
        await self._look_for_model()
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

    async def _adopted(self, target: Collection) -> Collection:
        """`target`, given this service's model when it has none: a collection made before the
        model was exported has no vector to disagree with, so it takes the model and the queue
        embeds its chunks (no `companion reindex`, which a running service's store refuses)."""
        if target.embedding is not None or self.embedder is None or self.embedding_queue is None:
            return target
        tenant, name = target.tenant, target.name
        adopted = await self.store.adopt_embedding(tenant, name, self.embedder.info)
        self.embedding_queue.notify(tenant, name)
        self._invalidate(tenant, name)
        return adopted

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

    # -- documents --------------------------------------------------------------------------

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
        target = await self._adopted(await self.store.get_collection(tenant, collection))
        embedder = self._writing_embedder(target)
        stored = await self.store.content_hashes(tenant, collection, ids)
        hashes = {doc.id: self._content_hash(doc, target) for doc in valid}
        changed: list[DocumentInput] = []
        kept_unembedded = False
        for doc in valid:
            known = stored.get(doc.id or "")
            if known == hashes[doc.id]:
                continue
            # Written while no model embedded it (before its collection took one), it is still
            # unchanged: its missing vectors are the queue's work, not a reason to rewrite it.
            if (
                known is not None
                and embedder is not None
                and known == self._content_hash(doc, None)
            ):
                kept_unembedded = True
                continue
            changed.append(doc)
        prepared, deferred = await asyncio.to_thread(
            self._prepare, changed, hashes, embedder, defer_embedding
        )
        if prepared:
            await self.store.upsert(tenant, collection, prepared)
            self._invalidate(tenant, collection)
        if (deferred or kept_unembedded) and self.embedding_queue is not None:
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

    async def ingest_file(
        self,
        tenant: str,
        collection: str,
        data: bytes,
        *,
        filename: str,
        content_type: str | None = None,
        limits: ParseLimits | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> FileIngest:
        """Parse one file (PDF, DOCX, HTML, Markdown, text, CSV, JSON lines) and upsert what it
        holds; a file or document that cannot be read is a problem in the answer, never an error,
        so one bad file or row loses nothing good.

        A whole file is one document with the id `filename` (its pages and headings as sections);
        a CSV row or JSON line is one document, with its own `id` or `filename:line`.
        """
        check_tenant(tenant)
        check_name(collection)
        await self.store.get_collection(tenant, collection)  # a missing collection is an error
        try:
            parsed = await asyncio.to_thread(
                parse_file,
                data,
                filename=filename,
                content_type=content_type,
                limits=limits or ParseLimits(),
            )
        except CompanionError as exc:
            return FileIngest(
                filename, None, (), 0, 0, 0, (ParseProblem.from_error(filename, exc),)
            )
        problems = list(parsed.problems)
        by_id: dict[str, DocumentInput] = {}
        for document in parsed.documents:
            for candidate in documents_from(
                document, filename, parsed.format, metadata or {}, self.max_document_bytes
            ):
                try:
                    checked = check_document(candidate, self.max_document_bytes)
                except CompanionError as exc:
                    problems.append(ParseProblem(filename, document.line, exc.message))
                    continue
                assert checked.id is not None
                if checked.id in by_id:
                    problems.append(
                        ParseProblem(
                            filename,
                            document.line,
                            f"id {checked.id!r} again: the later one is kept",
                        )
                    )
                by_id[checked.id] = checked
        inputs = list(by_id.values())
        written = unchanged = chunks = 0
        for start in range(0, len(inputs), _FILE_BATCH_DOCUMENTS):
            batch = inputs[start : start + _FILE_BATCH_DOCUMENTS]
            _, batch_unchanged, batch_chunks = await self._upsert(
                tenant, collection, batch, defer_embedding=True
            )
            written += len(batch) - batch_unchanged
            unchanged += batch_unchanged
            chunks += batch_chunks
        return FileIngest(
            filename,
            parsed.format,
            tuple(doc.id or "" for doc in inputs),
            written,
            unchanged,
            chunks,
            tuple(problems),
        )

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

    def _content_hash(self, doc: DocumentInput, target: Collection | None) -> str:
        # The chunking policy and model are part of the hash: changing either re-indexes on upsert.
        # `target` None: the hash of a document written without a model.
        policy = (self.chunker.size, self.chunker.overlap, self.chunker.unit)
        embedding = target.embedding if target is not None else None
        model = _model(embedding) if embedding and self.embedder else None
        sections = [[x.start_char, x.end_char, x.page, x.headings] for x in doc.sections]
        canonical = orjson.dumps(
            [doc.text, doc.title, doc.metadata, doc.source, policy, model, sections],
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(canonical).hexdigest()

    def _split(self, doc: DocumentInput) -> list[tuple[TextSpan, DocumentSection | None]]:
        """The document's chunks, each with the section it lies in: a section is chunked on its
        own, so no chunk spans two pages or two headings."""
        if not doc.sections:
            return [(span, None) for span in self.chunker.split(doc.text)]
        chunks: list[tuple[TextSpan, DocumentSection | None]] = []
        for section in doc.sections:
            for span in self.chunker.split(doc.text[section.start_char : section.end_char]):
                start, end = (
                    section.start_char + span.start_char,
                    section.start_char + span.end_char,
                )
                chunks.append((replace(span, start_char=start, end_char=end), section))
        return chunks

    def _prepare(
        self,
        documents: list[DocumentInput],
        hashes: dict[str | None, str],
        embedder: Embedder | None,
        defer: bool,
    ) -> tuple[list[PreparedDocument], bool]:
        """Chunk (and embed) `documents`; the flag says the embedding was left to the queue."""
        splits = [self._split(doc) for doc in documents]
        texts = [span.text for spans in splits for span, _ in spans]
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
                    section.page if section else None,
                    section.headings if section else (),
                )
                for i, (span, section) in enumerate(spans)
            ]
            assert doc.id is not None
            prepared.append(
                PreparedDocument(
                    doc.id, doc.text, doc.title, doc.metadata, doc.source, hashes[doc.id], chunks
                )
            )
        return prepared, deferred

    # -- search -----------------------------------------------------------------------------

    async def search(
        self,
        tenant: str,
        collection: str,
        query: str,
        *,
        mode: SearchMode | str = "bm25",
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        with_snippets: bool = True,
    ) -> SearchResult:
        """The `k` best chunks for `query`; see docs/knowledge.md for modes and filters."""
        started = self._clock()
        check_tenant(tenant)
        check_name(collection)
        mode = check_mode(mode)
        k = check_k(k, self.max_k)
        text = clean_query(query, self.max_query_chars)
        conditions = parse_filter(filter)
        if mode != "bm25":
            await self._look_for_model()
        warnings: tuple[str, ...] = ()
        problem = self.store.vector_problem
        if mode != "bm25" and self.embedder is not None and problem is not None:
            warnings = (f"{mode} search ran as bm25: {problem}",)
            mode = "bm25"
        key = None
        if self.cache is not None:
            key = self._cache_key(
                tenant=tenant,
                collection=collection,
                text=text,
                mode=mode,
                k=k,
                filter=filter,
                with_snippets=with_snippets,
                # Keyed by what it saw: a write through another node makes a new key at once.
                version=await self.store.write_version(tenant, collection),
            )
            hit = self.cache.get(key)
            if hit is not None:
                hits = [SearchHit(**item) for item in hit]
                took_ms = (self._clock() - started) * 1000
                return SearchResult(hits, took_ms, 0.0, cached=True, warnings=warnings)
        terms = query_terms(text)
        embedding_ms, pending = 0.0, 0
        semantic: list[ScoredChunk] = []
        if mode == "bm25":
            # The store raises CollectionNotFound itself; no separate lookup on the hot path.
            lexical = await self._bm25(tenant, collection, terms, k, conditions)
        else:
            lexical, semantic, pending, embedding_ms = await self._with_vectors(
                tenant, collection, text, terms, mode=mode, k=k, conditions=conditions
            )
        if pending:
            warnings += (
                f"{pending} chunks of {collection!r} are still waiting for their embeddings "
                "and are left out of the vector ranking",
            )
        keys = [chunk.key for document in lexical for chunk in document.chunks]
        if mode != "bm25":
            # Vector and hybrid rankings run deep (fusion_depth chunks and BM25 documents): rank
            # on the chunks' owners alone, then read the texts of the `k` shown.
            keys += [chunk.key for chunk in semantic]
            ranked = self._passages(lexical, semantic, await self.store.chunk_owners(keys), k)
            records = await self.store.fetch_chunks([chunk.key for chunk in ranked])
        else:  # BM25 alone brings about `k` passages: one read serves ranking and hits
            records = await self.store.fetch_chunks(keys)
            owners = {key: record.document_id for key, record in records.items()}
            ranked = self._passages(lexical, semantic, owners, k)
        hits = result_hits(ranked, records, frozenset(terms) if with_snippets else None)
        if self.cache is not None and key is not None and not pending:
            self.cache.set(
                key, [h.to_dict() for h in hits], self.cache_ttl_s, tags=(_tag(tenant, collection),)
            )
        took_ms = (self._clock() - started) * 1000 - embedding_ms
        return SearchResult(
            hits, took_ms, embedding_ms, cached=False, warnings=warnings, pending_embeddings=pending
        )

    async def _bm25(
        self,
        tenant: str,
        collection: str,
        terms: list[str],
        k: int,
        conditions: Any,
        *,
        passages: int | None = None,
    ) -> list[ScoredDocument]:
        if not terms:  # punctuation only: nothing can match, but the collection must exist
            await self.store.get_collection(tenant, collection)
            return []
        return await self.store.search_text(
            tenant,
            collection,
            terms,
            k=k,
            conditions=conditions,
            timeout_ms=self.query_timeout_ms,
            passages=passages,
        )

    async def _with_vectors(
        self,
        tenant: str,
        collection: str,
        text: str,
        terms: list[str],
        *,
        mode: str,
        k: int,
        conditions: Any,
    ) -> tuple[list[ScoredDocument], list[ScoredChunk], int, float]:
        """`(BM25 documents, nearest chunks, chunks waiting for a vector, embedding ms)`."""
        target = await self._adopted(await self.store.get_collection(tenant, collection))
        embed_started = self._clock()
        vector = await self._embed_query(target, text)
        embedding_ms = (self._clock() - embed_started) * 1000
        # Chunks still in the embedding queue are left out of the vector ranking (BM25 finds
        # them already): the caller says so rather than look complete.
        pending = 0
        if self.embedding_queue is not None:
            pending = await self.store.pending_embeddings(tenant, collection)
            if pending:
                # Chunks another process left waiting (a CLI that adopted the collection and
                # exited, a write that raced the model's arrival): this queue takes them on.
                self.embedding_queue.notify(tenant, collection)
        # Chunks, not documents, come back from the vector index: ask for enough of them that
        # `k` documents are found even when several chunks of one are close.
        depth = max(k, self.fusion_depth)
        nearest = self.store.search_vector(
            tenant,
            collection,
            vector,
            k=depth if mode == "hybrid" else max(depth, 3 * k),
            conditions=conditions,
            timeout_ms=self.query_timeout_ms,
        )
        if mode == "vector":
            return [], await nearest, pending, embedding_ms
        # Vector first: it starts its worker thread before a BM25 search that may run inline.
        semantic, lexical = await asyncio.gather(
            nearest, self._bm25(tenant, collection, terms, depth, conditions, passages=k)
        )
        return lexical, semantic, pending, embedding_ms

    def _passages(
        self,
        lexical: list[ScoredDocument],
        semantic: list[ScoredChunk],
        owners: Mapping[int, str],
        k: int,
    ) -> list[ScoredChunk]:
        weights = (self.bm25_weight, self.vector_weight)
        return rank_passages(
            lexical, semantic, owners, k, weights=weights, method=self.fusion, rrf_k=self.rrf_k
        )

    async def _embed_query(self, target: Collection, text: str) -> Sequence[float]:
        if self.embedder is None:
            raise EmbedderRequired(
                f"vector and hybrid search need an embedding model, and none is loaded: "
                f"{self._embedder_hint()}; mode 'bm25' works without one"
            )
        self._writing_embedder(target)
        embedder = self.embedder
        vectors = await asyncio.to_thread(embedder.embed, [text])
        return vectors[0]

    def _cache_key(
        self,
        *,
        tenant: str,
        collection: str,
        text: str,
        mode: str,
        k: int,
        filter: Mapping[str, Any] | None,
        with_snippets: bool,
        version: str | None,
    ) -> str:
        canonical = orjson.dumps(
            [text, mode, k, filter, with_snippets, version], option=orjson.OPT_SORT_KEYS
        )
        digest = hashlib.sha256(canonical).hexdigest()[:32]
        return f"t:{tenant}:knowledge:{collection}:{digest}"

    # -- re-embedding -----------------------------------------------------------------------

    async def reindex(
        self,
        tenant: str,
        collection: str,
        *,
        batch_size: int = 64,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Re-embed every chunk with the current embedder and record its model; return the count."""
        await self._look_for_model()
        if self.embedder is None:
            raise EmbedderRequired(f"reindex needs an embedding model: {self._embedder_hint()}")
        check_tenant(tenant)
        check_name(collection)
        embedder = self.embedder
        # A collection without a model takes this one before its first vector is written, so a
        # node adopting another model meanwhile is refused rather than mixing the two.
        await self.store.adopt_embedding(tenant, collection, embedder.info)
        after, done = 0, 0
        while True:
            rows = await self.store.chunks_to_embed(tenant, collection, after, batch_size)
            if not rows:
                break
            vectors = await asyncio.to_thread(embedder.embed, [text for _, text in rows])
            await self.store.set_vectors(
                tenant,
                collection,
                [(key, to_float32_bytes(v)) for (key, _), v in zip(rows, vectors, strict=True)],
            )
            after, done = rows[-1][0], done + len(rows)
            if on_progress is not None:
                on_progress(done)
        await self.store.set_embedding(tenant, collection, embedder.info)
        self._invalidate(tenant, collection)
        return done


def _tag(tenant: str, collection: str) -> str:
    # Tenant-owned cache entries start with `t:<tenant>:`, as the service's invalidation expects.
    return f"t:{tenant}:knowledge:{collection}"


def _model(info: Any) -> str:
    return f"{info.model}@{info.version} ({info.dimension} dims)"
