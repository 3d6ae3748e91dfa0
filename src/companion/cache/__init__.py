"""companion.cache: a tiered (L1 memory, L2 memory or Redis) cache; see docs/cache.md."""

from typing import TYPE_CHECKING

from companion.cache._build import build_cache
from companion.cache._decorator import Cached, CacheInfo
from companion.cache._errors import InvalidCacheKey, InvalidTier, InvalidTTL, UnserializableValue
from companion.cache._memory import MemoryTier
from companion.cache._tier import MISSING, Evicted, Found, Invalidation, SharedTier, Tier, TierStats
from companion.cache._tiered import CacheStats, TieredCache, WarmReport

if TYPE_CHECKING:
    from companion.cache._redis import RedisTier


# redis-py costs ~19 MiB of memory on import: loaded only when a Redis tier is asked for.
def __getattr__(name: str) -> object:
    if name == "RedisTier":
        from companion.cache._redis import RedisTier

        return RedisTier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MISSING",
    "CacheInfo",
    "CacheStats",
    "Cached",
    "Evicted",
    "Found",
    "InvalidCacheKey",
    "InvalidTTL",
    "InvalidTier",
    "Invalidation",
    "MemoryTier",
    "RedisTier",
    "SharedTier",
    "Tier",
    "TierStats",
    "TieredCache",
    "UnserializableValue",
    "WarmReport",
    "build_cache",
]
