"""`RedisTier`: the L2 several nodes share, behind a circuit breaker so Redis trouble never reaches
the caller.

Data lives at `{prefix}k:{key}` (a JSON record, see `_serialize`), tag sets at `{prefix}t:{tag}`,
and invalidations are published on `{prefix}invalidate`. Every call that fails (refused, reset,
timed out) counts one error and opens the breaker: for `retry_interval_s` on the injected clock
calls return a miss or do nothing without touching the network; then one call tries again and, if
it succeeds, closes the breaker. One warning is logged when an outage starts and one line when it
ends, never one per call.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from companion.cache._bus import InvalidationBus, encode_message
from companion.cache._defaults import (
    L2_TTL_S,
    REDIS_PREFIX,
    REDIS_RETRY_INTERVAL_S,
    REDIS_TIMEOUT_S,
)
from companion.cache._keys import check_ttl
from companion.cache._serialize import dumps, loads
from companion.cache._tier import MISSING, Evicted, Found, Invalidation, KeySet, TierStats

__all__ = ["RedisTier"]

logger = logging.getLogger("companion.cache")
T = TypeVar("T")
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})
_SCAN_BATCH = 500


class RedisTier:
    """Shared tier in Redis: TTL kept by Redis, values in a safe format, never raises on outages."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        default_ttl_s: float = L2_TTL_S,
        prefix: str = REDIS_PREFIX,
        clock: Callable[[], float] = time.monotonic,
        timeout_s: float = REDIS_TIMEOUT_S,
        retry_interval_s: float = REDIS_RETRY_INTERVAL_S,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("pass exactly one of url= or client=")
        if client is None:
            # No client-side retries: the breaker decides when to try again.
            client = redis.Redis.from_url(
                url,  # type: ignore[arg-type]
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 0),
            )
            self._owns_client = True
        else:
            self._owns_client = False
        self._client = client
        self._default_ttl_s = check_ttl(default_ttl_s) or L2_TTL_S
        self._prefix = prefix
        self._data_prefix = prefix + "k:"
        self._tag_prefix = prefix + "t:"
        self.channel = prefix + "invalidate"
        self.node = uuid.uuid4().hex
        self._clock = clock
        self._retry_interval_s = retry_interval_s
        self._lock = threading.Lock()
        self._open_until: float | None = None
        self._outage_started = 0.0
        self._hits = self._misses = self._errors = 0
        self._bus: InvalidationBus | None = None

    @property
    def default_ttl_s(self) -> float:
        """TTL of entries stored without one."""
        return self._default_ttl_s

    @property
    def available(self) -> bool:
        """False while the breaker is open (Redis failed within the last retry interval)."""
        return self._open_until is None

    @property
    def bus_connected(self) -> bool:
        """True while this node is subscribed to the invalidation channel."""
        return self._bus is not None and self._bus.connected.is_set()

    def get(self, key: str) -> object:
        """The value, or `MISSING` (also while Redis is unavailable)."""
        found = self.get_entry(key)
        return MISSING if found is None else found.value

    def get_entry(self, key: str) -> Found | None:
        """The entry with its remaining TTL, in one round trip (GET and PTTL pipelined)."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, Found]:
        """The entries among `keys`: one MGET plus PTTLs, in one round trip."""
        if not keys:
            return {}
        names = [self._data_prefix + key for key in keys]

        def op(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.mget(names)
            for name in names:
                pipe.pttl(name)
            return pipe.execute()

        replies = self._call(op, None)
        if replies is None:
            with self._lock:
                self._misses += len(keys)
            return {}
        found: dict[str, Found] = {}
        for key, raw, pttl_ms in zip(keys, replies[0], replies[1:], strict=True):
            if raw is None or pttl_ms == -2:
                continue
            try:
                value, tags = loads(raw)
            except ValueError:
                # Written by an incompatible version or corrupted: a miss, counted as an error.
                logger.warning("unreadable cache record at %s%s", self._data_prefix, key)
                with self._lock:
                    self._errors += 1
                continue
            ttl_s = self._default_ttl_s if pttl_ms < 0 else pttl_ms / 1000
            found[key] = Found(value, ttl_s, tags)
        with self._lock:
            self._hits += len(found)
            self._misses += len(keys) - len(found)
        return found

    def set(
        self, key: str, value: object, ttl_s: float | None = None, tags: Sequence[str] = ()
    ) -> Sequence[Evicted]:
        """Store, and tell the other nodes to drop `key` from their L1 (same round trip)."""
        self._write(key, value, ttl_s, tags, only_if_absent=False)
        return ()

    def add(
        self, key: str, value: object, ttl_s: float | None = None, tags: Sequence[str] = ()
    ) -> tuple[bool, Sequence[Evicted]]:
        """Store only if absent (SET NX); nothing is published since no value changed."""
        return self._write(key, value, ttl_s, tags, only_if_absent=True), ()

    def delete(self, key: str) -> bool:
        """Remove one key everywhere."""
        name = self._data_prefix + key
        message = encode_message(self.node, Invalidation(keys=(key,)))

        def op(client: redis.Redis) -> bool:
            pipe = client.pipeline(transaction=False)
            pipe.unlink(name)
            pipe.publish(self.channel, message)
            return bool(pipe.execute()[0])

        return self._call(op, False)

    def invalidate(self, pattern: str) -> KeySet:
        """Remove the keys matching a glob (SCAN then UNLINK in pipelined batches)."""
        match = self._data_prefix.translate(_GLOB_SPECIAL) + pattern
        message = encode_message(self.node, Invalidation(pattern=pattern))
        return self._call(lambda client: self._unlink_scan(client, match, message), KeySet())

    def invalidate_tags(self, tags: Iterable[str]) -> KeySet:
        """Remove the keys carrying any of `tags`, and the tag sets themselves."""
        tags = tuple(tags)
        tag_names = [self._tag_prefix + tag for tag in tags]
        message = encode_message(self.node, Invalidation(tags=tags))

        def op(client: redis.Redis) -> KeySet:
            pipe = client.pipeline(transaction=False)
            for name in tag_names:
                pipe.smembers(name)
            members = {m.decode() for group in pipe.execute() for m in group}
            removed = self._unlink(client, sorted(members))
            pipe = client.pipeline(transaction=False)
            pipe.unlink(*tag_names)
            pipe.publish(self.channel, message)
            pipe.execute()
            return removed

        return self._call(op, KeySet()) if tags else KeySet()

    def clear(self) -> None:
        """Remove every key under this tier's prefix (all namespaces sharing it)."""
        match = self._prefix.translate(_GLOB_SPECIAL) + "*"
        message = encode_message(self.node, Invalidation(everything=True))
        self._call(lambda client: self._unlink_scan(client, match, message), KeySet())

    def stats(self) -> TierStats:
        """Counters, and the number of keys under the prefix (a SCAN: O(keys in the database))."""
        match = self._data_prefix.translate(_GLOB_SPECIAL) + "*"
        size = self._call(
            lambda client: sum(1 for _ in client.scan_iter(match=match, count=_SCAN_BATCH)), 0
        )
        with self._lock:
            return TierStats(
                size=size,
                max_entries=None,
                hits=self._hits,
                misses=self._misses,
                evictions=0,
                expirations=0,
                errors=self._errors,
            )

    def hot_keys(self, n: int) -> list[tuple[str, int]]:
        """Not tracked for Redis: always empty."""
        return []

    def subscribe(self, listener: Callable[[Invalidation], None]) -> None:
        """Start the invalidation listener (once); it reconnects by itself."""
        if self._bus is None:
            self._bus = InvalidationBus(
                self._client,
                self.channel,
                self.node,
                listener,
                retry_interval_s=min(self._retry_interval_s, 1.0),
            )

    def close(self) -> None:
        """Stop the listener; close the client if this tier created it."""
        if self._bus is not None:
            self._bus.close()
            self._bus = None
        if self._owns_client:
            self._client.close()

    def _write(
        self,
        key: str,
        value: object,
        ttl_s: float | None,
        tags: Sequence[str],
        *,
        only_if_absent: bool,
    ) -> bool:
        record = dumps(value, tuple(tags))  # before any I/O: a bad value raises, Redis or not
        ttl_ms = max(1, round((self._default_ttl_s if ttl_s is None else ttl_s) * 1000))
        name = self._data_prefix + key

        def op(client: redis.Redis) -> bool:
            pipe = client.pipeline(transaction=False)
            pipe.set(name, record, px=ttl_ms, nx=only_if_absent)
            for tag in tags:
                tag_name = self._tag_prefix + tag
                pipe.sadd(tag_name, key)
                # The tag set must outlive its longest-lived member: set a TTL once, then only extend.
                pipe.pexpire(tag_name, ttl_ms, nx=True)
                pipe.pexpire(tag_name, ttl_ms, gt=True)
            if not only_if_absent:
                pipe.publish(self.channel, encode_message(self.node, Invalidation(keys=(key,))))
            return bool(pipe.execute()[0])

        return self._call(op, False)

    def _unlink_scan(self, client: redis.Redis, match: str, message: bytes) -> KeySet:
        names = [n.decode() for n in client.scan_iter(match=match, count=_SCAN_BATCH)]
        start = len(self._data_prefix)
        keys = [n[start:] for n in names if n.startswith(self._data_prefix)]
        removed = self._unlink(client, keys)
        others = [n for n in names if not n.startswith(self._data_prefix)]
        pipe = client.pipeline(transaction=False)
        if others:
            pipe.unlink(*others)
        pipe.publish(self.channel, message)
        pipe.execute()
        return removed

    def _unlink(self, client: redis.Redis, keys: Sequence[str]) -> KeySet:
        removed: KeySet = set()
        for start in range(0, len(keys), _SCAN_BATCH):
            batch = keys[start : start + _SCAN_BATCH]
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.unlink(self._data_prefix + key)
            removed.update(key for key, gone in zip(batch, pipe.execute(), strict=True) if gone)
        return removed

    def _call(self, op: Callable[[redis.Redis], T], fallback: T) -> T:
        if self._open_until is not None and self._clock() < self._open_until:
            return fallback
        try:
            result = op(self._client)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return fallback
        if self._open_until is not None:
            self._recovered()
        return result

    def _failed(self, exc: BaseException) -> None:
        now = self._clock()
        with self._lock:
            self._errors += 1
            starting = self._open_until is None
            self._open_until = now + self._retry_interval_s
            if starting:
                self._outage_started = now
        if starting:
            logger.warning(
                "Redis cache tier unavailable (%s: %s); serving from L1, retrying every %g s",
                type(exc).__name__,
                exc,
                self._retry_interval_s,
            )
        # Drop every pooled connection: after a restart each would otherwise fail once more.
        self._client.connection_pool.disconnect()

    def _recovered(self) -> None:
        with self._lock:
            if self._open_until is None:
                return
            self._open_until = None
            down_s = self._clock() - self._outage_started
        logger.info("Redis cache tier available again after %.1f s", down_s)
