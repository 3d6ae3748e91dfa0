"""From rankings to a result list: documents ranked (and fused by reciprocal rank), then their
passages.

A search ranks documents, not chunks: BM25 ranks documents by their whole text, the vector search
by their most similar chunk, and a hybrid search fuses the two document rankings (a weighted mean
of min-max scaled scores by default, or reciprocal rank fusion). The result list then
holds passages (chunks) of the ranked documents, in document order: the best passage of each of the
first `k` documents, and, when fewer than `k` documents match, more passages of the best ones, so a
collection of one long document still answers with `k` passages.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from companion.config import setting_default
from companion.knowledge._models import ChunkRecord, ScoredChunk, ScoredDocument, SearchHit
from companion.knowledge._query import make_snippet

__all__ = [
    "DEFAULT_FUSION",
    "FusionMethod",
    "RankedDocument",
    "fuse_documents",
    "lexical_ranking",
    "passages_by_document",
    "rank_passages",
    "result_hits",
    "semantic_ranking",
]


# How a hybrid search fuses its two document rankings; see `fuse_documents`.
FusionMethod = Literal["convex", "rrf"]
DEFAULT_FUSION: FusionMethod = setting_default("knowledge_hybrid_fusion")


@dataclass(frozen=True, slots=True)
class RankedDocument:
    """A document in one ranking: its id, its score there, and its chunk keys, best first."""

    document_id: str
    score: float
    chunks: tuple[int, ...]


def fuse_documents(
    rankings: Sequence[tuple[float, Sequence[RankedDocument]]],
    k: int,
    *,
    method: FusionMethod = "convex",
    rrf_k: int = 60,
) -> list[RankedDocument]:
    """The best `k` documents of the weighted `(weight, ranking)` pairs (ties by id).

    `convex`: each ranking's scores are scaled to [0, 1] over its list (min-max), and a document's
    fused score is the weighted mean of its scaled scores (0 where a ranking missed it); it keeps
    how far apart the scores are, which rank alone throws away. `rrf`: `weight / (rrf_k + rank)`
    summed over the rankings. A document's passages are fused by their rank among that document's
    passages in each ranking, so the passage both rankings liked comes first.
    """
    scores: dict[str, float] = {}
    total = sum(weight for weight, _ in rankings) or 1.0
    for weight, ranking in rankings:
        if not ranking:
            continue
        high = max(document.score for document in ranking)
        low = min(document.score for document in ranking)
        for rank, document in enumerate(ranking, start=1):
            if method == "rrf":
                part = weight / (rrf_k + rank)
            else:  # one score for the whole list (or one document) scales to 1
                scaled = (document.score - low) / (high - low) if high > low else 1.0
                part = weight / total * scaled
            key = document.document_id
            scores[key] = scores.get(key, 0.0) + part
    best = heapq.nsmallest(k, scores.items(), key=lambda item: (-item[1], item[0]))
    passages: dict[str, dict[int, float]] = {document_id: {} for document_id, _ in best}
    for weight, ranking in rankings:
        for document in ranking:
            fused = passages.get(document.document_id)
            if fused is not None:
                for place, chunk in enumerate(document.chunks, start=1):
                    fused[chunk] = fused.get(chunk, 0.0) + weight / (rrf_k + place)
    return [
        RankedDocument(
            document_id,
            score,
            tuple(sorted(passages[document_id], key=lambda c: (-passages[document_id][c], c))),
        )
        for document_id, score in best
    ]


def rank_passages(
    lexical: Sequence[ScoredDocument],
    semantic: Sequence[ScoredChunk],
    owners: Mapping[int, str],
    k: int,
    *,
    weights: tuple[float, float] = (1.0, 1.0),
    method: FusionMethod = "convex",
    rrf_k: int = 60,
) -> list[ScoredChunk]:
    """A search's result chunks: the BM25 documents and the nearest chunks' documents ranked
    (fused by `weights`, BM25's then the vectors', when both came), then their passages;
    `owners` names each chunk's document."""
    rankings: list[tuple[float, list[RankedDocument]]] = []
    if lexical:
        rankings.append((weights[0], lexical_ranking(lexical, owners)))
    if semantic:
        rankings.append((weights[1], semantic_ranking(semantic, owners)))
    if not rankings:
        return []
    documents = (
        rankings[0][1]
        if len(rankings) == 1
        else fuse_documents(rankings, k, method=method, rrf_k=rrf_k)
    )
    return passages_by_document(documents, k)


def passages_by_document(documents: Sequence[RankedDocument], k: int) -> list[ScoredChunk]:
    """At most `k` passages of `documents`, grouped by document in rank order, each scored with
    its document's score: first one passage per document, then (when fewer than `k` documents
    were ranked) second passages of the best documents, and so on."""
    taken = [0] * len(documents)
    total, depth = 0, 0
    while total < k:
        progressed = False
        for position, document in enumerate(documents):
            if total == k:
                break
            if depth < len(document.chunks):
                taken[position] += 1
                total += 1
                progressed = True
        if not progressed:
            break
        depth += 1
    return [
        ScoredChunk(chunk, document.score)
        for document, count in zip(documents, taken, strict=True)
        for chunk in document.chunks[:count]
    ]


def lexical_ranking(
    documents: Sequence[ScoredDocument], owners: Mapping[int, str]
) -> list[RankedDocument]:
    """Documents as BM25 ranked them, named by `owners` (chunk key -> document id)."""
    ranking: list[RankedDocument] = []
    for document in documents:
        chunks = tuple(chunk.key for chunk in document.chunks if chunk.key in owners)
        if chunks:  # none: deleted between the index read and the fetch
            ranking.append(RankedDocument(owners[chunks[0]], document.score, chunks))
    return ranking


def semantic_ranking(
    chunks: Sequence[ScoredChunk], owners: Mapping[int, str]
) -> list[RankedDocument]:
    """Documents by their most similar chunk, each with its chunks in similarity order."""
    grouped: dict[str, tuple[float, list[int]]] = {}
    for chunk in chunks:
        owner = owners.get(chunk.key)
        if owner is not None:
            grouped.setdefault(owner, (chunk.score, []))[1].append(chunk.key)
    return [RankedDocument(doc, score, tuple(keys)) for doc, (score, keys) in grouped.items()]


def result_hits(
    ranked: Sequence[ScoredChunk], records: Mapping[int, ChunkRecord], terms: frozenset[str] | None
) -> list[SearchHit]:
    """The hits of `ranked` chunks, with snippets marking `terms` (none when `terms` is None);
    a chunk missing from `records` (deleted since it was ranked) is left out."""
    hits: list[SearchHit] = []
    for scored in ranked:
        record = records.get(scored.key)
        if record is None:
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
                page=record.page,
                headings=record.headings,
            )
        )
    return hits
