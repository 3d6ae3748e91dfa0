"""`GET /v1/cache/stats` and `POST /v1/cache/invalidate`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response

from companion.api._answer import Answer, json_answer
from companion.api._auth import require
from companion.api._state import State
from companion.keys import ApiKey

__all__ = ["router"]

router = APIRouter(prefix="/v1/cache", tags=["cache"])
AnyKey = Annotated[ApiKey, Depends(require())]
TENANT_PREFIX = "t:{tenant}:"
"""Every tenant-owned cache key starts with this, so invalidation never crosses tenants."""


class Invalidation(BaseModel):
    """Exactly one of: a key, a glob pattern over readable keys, or tags."""

    model_config = ConfigDict(extra="forbid", strict=True)

    key: str | None = Field(None, min_length=1, max_length=1024, examples=["user:42"])
    pattern: str | None = Field(None, min_length=1, max_length=1024, examples=["user:42:*"])
    tags: list[str] | None = Field(None, min_length=1, max_length=100, examples=[["user:42"]])

    @model_validator(mode="after")
    def _exactly_one(self) -> Invalidation:
        given = [name for name in ("key", "pattern", "tags") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `key`, `pattern` or `tags`")
        return self


class Invalidated(BaseModel):
    """How many entries went, over every tier."""

    removed: int


class TierCounters(Answer):
    """One tier's counters since the service started; `size` is counted when asked."""

    size: int
    max_entries: int | None = Field(description="Null for a tier without a bound (Redis).")
    hits: int
    misses: int
    evictions: int
    expirations: int
    promotions: int = Field(description="Entries copied up from L2 (counted on L1).")
    demotions: int = Field(description="Entries L1 evicted into L2 (counted on L2).")
    errors: int = Field(description="Failed calls to the tier (Redis unreachable).")
    hit_rate: float = Field(description="hits / (hits + misses); 0 before the first lookup.")


class CacheStatsAnswer(Answer):
    """Both tiers' counters and L1's most hit keys, `[key, hits]`."""

    l1: TierCounters
    l2: TierCounters
    hot_keys: list[tuple[str, int]]


@router.get(
    "/stats",
    summary="Per-tier size, hits, misses, hit rate, promotions, ... (admin)",
    response_model=CacheStatsAnswer,
    dependencies=[Depends(require("admin"))],
)
def cache_stats(state: State) -> Response:
    """Counters of L1 and L2 since start, and the hottest keys."""
    cache = state.require_cache()
    body = {**cache.stats().as_dict(), "hot_keys": [list(pair) for pair in cache.hot_keys(10)]}
    return json_answer(body)


@router.post("/invalidate", summary="Drop this tenant's entries by key, glob pattern or tags")
def cache_invalidate(body: Invalidation, state: State, key: AnyKey) -> Invalidated:
    """On every tier, and (with Redis) on every node's L1; only the caller's tenant is touched."""
    cache = state.require_cache()
    prefix = TENANT_PREFIX.format(tenant=key.tenant)
    if body.key is not None:
        removed = int(cache.delete(prefix + body.key))
    elif body.pattern is not None:
        removed = cache.invalidate(prefix + body.pattern)
    else:
        removed = cache.invalidate_tags(*(prefix + tag for tag in body.tags or ()))
    return Invalidated(removed=removed)
