"""`build_cache`: the one call the service makes to get its cache from its settings."""

from __future__ import annotations

import time
from collections.abc import Callable

from companion.cache._defaults import (
    L1_MAX_ENTRIES,
    L1_TTL_S,
    L2_MAX_ENTRIES,
    L2_TTL_S,
    NAMESPACE,
    REDIS_PREFIX,
    REDIS_RETRY_INTERVAL_S,
    REDIS_TIMEOUT_S,
)
from companion.cache._memory import MemoryTier
from companion.cache._tier import Tier
from companion.cache._tiered import TieredCache

__all__ = ["build_cache"]


def build_cache(
    redis_url: str | None = None,
    *,
    l1_max_entries: int = L1_MAX_ENTRIES,
    l1_ttl_s: float = L1_TTL_S,
    l2_max_entries: int = L2_MAX_ENTRIES,
    l2_ttl_s: float = L2_TTL_S,
    namespace: str = NAMESPACE,
    redis_prefix: str = REDIS_PREFIX,
    redis_timeout_s: float = REDIS_TIMEOUT_S,
    redis_retry_interval_s: float = REDIS_RETRY_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
) -> TieredCache:
    """A memory L1 in front of Redis (when `redis_url` is set) or of a larger memory L2.

    `l2_max_entries` applies to the memory L2 only; Redis bounds itself (`maxmemory`).
    Close the result with `close()` / `await aclose()`.
    """
    l2: Tier
    if redis_url:
        from companion.cache._redis import RedisTier  # redis-py only when Redis is configured

        l2 = RedisTier(
            redis_url,
            default_ttl_s=l2_ttl_s,
            prefix=redis_prefix,
            clock=clock,
            timeout_s=redis_timeout_s,
            retry_interval_s=redis_retry_interval_s,
        )
    else:
        l2 = MemoryTier(l2_max_entries, l2_ttl_s, clock=clock)
    try:
        l1 = MemoryTier(l1_max_entries, l1_ttl_s, clock=clock)
        return TieredCache(l1, l2, clock=clock, namespace=namespace)
    except Exception:
        l2.close()
        raise
