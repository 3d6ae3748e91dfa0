"""companion.cache: a tiered (L1 memory, L2 memory or Redis) cache; see docs/cache.md."""

from companion.cache._build import build_cache
from companion.cache._decorator import Cached, CacheInfo
from companion.cache._errors import InvalidCacheKey, InvalidTier, InvalidTTL, UnserializableValue
from companion.cache._memory import MemoryTier
from companion.cache._redis import RedisTier
from companion.cache._tier import MISSING, Evicted, Found, Invalidation, SharedTier, Tier, TierStats
from companion.cache._tiered import CacheStats, TieredCache, WarmReport

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
