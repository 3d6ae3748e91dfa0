"""Reciprocal rank fusion: merging ranked lists by `weight / (rrf_k + rank)`, robust to score scales."""

from __future__ import annotations

from collections.abc import Sequence

from companion.knowledge._models import ScoredChunk

__all__ = ["reciprocal_rank_fusion"]


def reciprocal_rank_fusion(
    ranked_lists: Sequence[tuple[float, Sequence[ScoredChunk]]], rrf_k: int, k: int
) -> list[ScoredChunk]:
    """The best `k` chunks of the weighted `(weight, list)` pairs, fused by rank (ties by key)."""
    fused: dict[int, float] = {}
    for weight, ranked in ranked_lists:
        for rank, hit in enumerate(ranked, start=1):
            fused[hit.key] = fused.get(hit.key, 0.0) + weight / (rrf_k + rank)
    best = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [ScoredChunk(key, score) for key, score in best]
