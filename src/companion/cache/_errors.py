"""Cache leaf errors: bad arguments are caller mistakes, so each is an `InvalidInput` (HTTP 400).

InvalidInput
├── InvalidCacheKey        a key that is not a non-empty str, or an argument with no stable key form
├── InvalidTTL             a TTL that is not a finite number of seconds above zero
├── InvalidTier            a tier other than 1 or 2
└── UnserializableValue    a value the Redis tier cannot store safely
"""

from __future__ import annotations

from companion.errors import InvalidInput

__all__ = ["InvalidCacheKey", "InvalidTTL", "InvalidTier", "UnserializableValue"]


class InvalidCacheKey(InvalidInput):
    """A cache key (or a cached function's argument) that cannot be used as a key."""

    code = "cache_key_invalid"
    title = "Invalid cache key"


class InvalidTTL(InvalidInput):
    """A time-to-live that is not a finite number of seconds above zero."""

    code = "cache_ttl_invalid"
    title = "Invalid cache TTL"


class InvalidTier(InvalidInput):
    """A tier number other than 1 (L1) or 2 (L2)."""

    code = "cache_tier_invalid"
    title = "Invalid cache tier"


class UnserializableValue(InvalidInput):
    """A value whose type the Redis tier's safe format does not support."""

    code = "cache_value_unserializable"
    title = "Value cannot be cached in Redis"
