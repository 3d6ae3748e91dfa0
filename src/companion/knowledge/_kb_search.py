"""`KnowledgeBase`'s search: BM25, vector and hybrid queries, fusion, snippets and result caching."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from companion.knowledge._errors import EmbedderRequired
from companion.knowledge._filters import parse_filter
from companion.knowledge._fusion import reciprocal_rank_fusion
from companion.knowledge._kb_base import EMBEDDER_HINT, KbBase, _tag
from companion.knowledge._models import Collection, ScoredChunk, SearchHit, SearchMode
from companion.knowledge._query import clean_query, make_snippet, query_terms
from companion.knowledge._validation import check_k, check_mode, check_name, check_tenant

__all__ = ["KbSearch", "SearchResult"]


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Hits best first; `took_ms` excludes `embedding_ms`, the time spent embedding the query."""

    results: list[SearchHit]
    took_ms: float
    embedding_ms: float
    cached: bool
    warnings: tuple[str, ...] = ()
    pending_embeddings: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The HTTP response body."""
        return {
            "results": [hit.to_dict() for hit in self.results],
            "took_ms": round(self.took_ms, 3),
            "embedding_ms": round(self.embedding_ms, 3),
            "cached": self.cached,
            "warnings": list(self.warnings),
            "pending_embeddings": self.pending_embeddings,
        }


class KbSearch(KbBase):
    """The search methods of `KnowledgeBase`."""

    # -- search --------------------------------------------------------------------------------

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
        embedding_ms = 0.0
        pending = 0
        ranked: list[ScoredChunk]
        if mode == "bm25":
            # The store raises CollectionNotFound itself; no separate lookup on the hot path.
            ranked = await self._bm25(tenant, collection, terms, k, conditions)
        else:
            target = await self.store.get_collection(tenant, collection)
            embed_started = self._clock()
            vector = await self._embed_query(target, text)
            embedding_ms = (self._clock() - embed_started) * 1000
            if self.embedding_queue is not None:
                # Chunks still in the embedding queue are left out of the vector ranking (BM25
                # finds them already): say so rather than look complete.
                pending = await self.store.pending_embeddings(tenant, collection)
            if pending:
                warnings += (
                    f"{pending} chunks of {collection!r} are still waiting for their embeddings "
                    "and are left out of the vector ranking",
                )
            if mode == "vector":
                ranked = await self.store.search_vector(
                    tenant,
                    collection,
                    vector,
                    k=k,
                    conditions=conditions,
                    timeout_ms=self.query_timeout_ms,
                )
            else:
                depth = max(k, self.fusion_depth)
                # Vector first: it starts its worker thread before a BM25 search that may run inline.
                semantic, lexical = await asyncio.gather(
                    self.store.search_vector(
                        tenant,
                        collection,
                        vector,
                        k=depth,
                        conditions=conditions,
                        timeout_ms=self.query_timeout_ms,
                    ),
                    self._bm25(tenant, collection, terms, depth, conditions),
                )
                ranked = reciprocal_rank_fusion(
                    [(self.bm25_weight, lexical), (self.vector_weight, semantic)], self.rrf_k, k
                )
        hits = await self._hits(ranked, frozenset(terms) if with_snippets else None)
        if self.cache is not None and key is not None and not pending:
            self.cache.set(
                key, [h.to_dict() for h in hits], self.cache_ttl_s, tags=(_tag(tenant, collection),)
            )
        took_ms = (self._clock() - started) * 1000 - embedding_ms
        return SearchResult(
            hits, took_ms, embedding_ms, cached=False, warnings=warnings, pending_embeddings=pending
        )

    async def _bm25(
        self, tenant: str, collection: str, terms: list[str], k: int, conditions: Any
    ) -> list[ScoredChunk]:
        if not terms:  # punctuation only: nothing can match, but the collection must exist
            await self.store.get_collection(tenant, collection)
            return []
        return await self.store.search_text(
            tenant, collection, terms, k=k, conditions=conditions, timeout_ms=self.query_timeout_ms
        )

    async def _embed_query(self, target: Collection, text: str) -> Sequence[float]:
        if self.embedder is None:
            raise EmbedderRequired(
                f"vector and hybrid search need an embedding model, and none is loaded: "
                f"{EMBEDDER_HINT}; mode 'bm25' works without one"
            )
        if target.embedding is None:
            raise EmbedderRequired(
                f"collection {target.name!r} was created without an embedding model; run "
                f"`companion reindex --collection {target.name}` to embed it"
            )
        self._writing_embedder(target)
        embedder = self.embedder
        vectors = await asyncio.to_thread(embedder.embed, [text])
        return vectors[0]

    async def _hits(
        self, ranked: list[ScoredChunk], terms: frozenset[str] | None
    ) -> list[SearchHit]:
        records = await self.store.fetch_chunks([hit.key for hit in ranked])
        hits: list[SearchHit] = []
        for scored in ranked:
            record = records.get(scored.key)
            if record is None:  # deleted between the index read and this fetch
                continue
            snippet = make_snippet(record.text, terms) if terms is not None else None
            hits.append(
                SearchHit(
                    document_id=record.document_id,
                    chunk_id=f"{record.document_id}#{record.ordinal}",
                    score=round(scored.score, 6),
                    text=record.text,
                    snippet=snippet,
                    title=record.title,
                    metadata=record.metadata,
                )
            )
        return hits

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
