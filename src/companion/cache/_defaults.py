"""What the cache defaults to when built by hand: each value read from its setting.

The settings table (`companion.config`) declares every default once; `TieredCache()`, the tiers
and `build_cache()` built without arguments get what the service gets from unset settings.
"""

from __future__ import annotations

from companion.config import setting_default

__all__ = [
    "L1_MAX_ENTRIES",
    "L1_TTL_S",
    "L2_MAX_ENTRIES",
    "L2_TTL_S",
    "NAMESPACE",
    "REDIS_PREFIX",
    "REDIS_RETRY_INTERVAL_S",
    "REDIS_TIMEOUT_S",
]

L1_MAX_ENTRIES: int = setting_default("cache_l1_max_entries")
L1_TTL_S: float = setting_default("cache_l1_ttl_s")
L2_MAX_ENTRIES: int = setting_default("cache_l2_max_entries")
L2_TTL_S: float = setting_default("cache_l2_ttl_s")
NAMESPACE: str = setting_default("cache_namespace")
# The service keeps its Redis keys under `<cache_namespace>:cache:`; by hand, under the default one.
REDIS_PREFIX = f"{NAMESPACE}:cache:"
REDIS_TIMEOUT_S: float = setting_default("cache_redis_timeout_ms") / 1000
REDIS_RETRY_INTERVAL_S: float = setting_default("cache_redis_retry_interval_s")
