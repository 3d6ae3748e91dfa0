"""Per-key request limits held by the app: sliding-window rate limits and runs in flight.

The guard (`_auth.require`) and the routes with a concurrency limit use these through `AppState`;
they know nothing of requests or routes themselves.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from companion.config import Settings
from companion.errors import RateLimited
from companion.keys import ApiKey, Scope

__all__ = ["InFlight", "RateLimits"]

_log = logging.getLogger("companion.api")


class RateLimits:
    """Per-key request limits (sliding window counters), one per scope; in memory or in Redis."""

    def __init__(self, settings: Settings) -> None:
        storage: Storage
        self._redis_pool: Any = None
        if settings.redis_url is not None:
            import redis.asyncio as aioredis

            url = settings.redis_url.get_secret_value()
            timeout_s = settings.cache_redis_timeout_ms / 1000
            # Our own pool, so shutdown can close it; short timeouts so an outage fails fast (open).
            self._redis_pool = aioredis.ConnectionPool.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            )
            storage = RedisStorage(
                "async+" + url, implementation="redispy", connection_pool=self._redis_pool
            )
        else:
            storage = MemoryStorage()
        # Sliding-window counters: two counters per key and window, no per-request event list
        # (the moving window keeps one entry per request and, in memory, trims it on a thread:
        # ~200 µs a request, measured).
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._default = parse(settings.rate_limit_default)
        self._per_scope: dict[str, RateLimitItem] = {"execute": parse(settings.rate_limit_execute)}
        self._failing_since: float | None = None

    async def close(self) -> None:
        """Close the Redis connections, if any."""
        if self._redis_pool is not None:
            await self._redis_pool.disconnect()

    def item_for(self, scope: Scope | None) -> RateLimitItem:
        """The limit that applies to a route needing `scope`."""
        return self._per_scope.get(scope or "", self._default)

    async def hit(self, key: ApiKey, scope: Scope | None) -> None:
        """Count one request; `RateLimited` (429) with `Retry-After` and `RateLimit-*` when over."""
        item = self.item_for(scope)
        bucket = scope or "any"
        try:
            allowed = await self._limiter.hit(item, key.key_id, bucket)
        except Exception as exc:  # the store is down: fail open, log once per outage
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                _log.warning("rate limiting is failing open: %s", type(exc).__name__)
            return
        if self._failing_since is not None:
            self._failing_since = None
            _log.info("rate limiting recovered")
        if allowed:
            return
        reset_at, remaining = await self._limiter.get_window_stats(item, key.key_id, bucket)
        retry_after_s = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(
            f"Rate limit of {item} exceeded for this key.",
            retry_after_s=retry_after_s,
            headers={
                "RateLimit-Limit": str(item.amount),
                "RateLimit-Remaining": str(max(remaining, 0)),
                "RateLimit-Reset": str(retry_after_s),
            },
        )


class InFlight:
    """Per-key count of requests in flight, for routes with a concurrency limit."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def acquire(self, key_id: str, limit: int) -> None:
        """Take one of the key's `limit` slots, or `RateLimited` (429) when all are taken; the
        caller must `release` it (`slot` does both)."""
        count = self._counts.get(key_id, 0)
        if count >= limit:
            raise RateLimited(
                f"This key already has {count} runs in flight (the limit is {limit}).",
                retry_after_s=1.0,
            )
        self._counts[key_id] = count + 1

    def release(self, key_id: str) -> None:
        """Give back a slot `acquire` took."""
        count = self._counts.get(key_id, 0) - 1
        if count > 0:
            self._counts[key_id] = count
        else:
            self._counts.pop(key_id, None)

    @contextlib.asynccontextmanager
    async def slot(self, key_id: str, limit: int) -> AsyncIterator[None]:
        """Hold one of the key's `limit` slots, or `RateLimited` (429) when all are taken."""
        self.acquire(key_id, limit)
        try:
            yield
        finally:
            self.release(key_id)
