"""`TieredCache`: L1 in front of L2, with promotion, demotion, tags, warming and coherence."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from companion.cache._decorator import CachedDecorator, cached
from companion.cache._defaults import L1_MAX_ENTRIES, L1_TTL_S, L2_MAX_ENTRIES, L2_TTL_S, NAMESPACE
from companion.cache._errors import InvalidCacheKey
from companion.cache._keys import check_key, check_namespace, check_tags, check_tier, check_ttl
from companion.cache._memory import MemoryTier
from companion.cache._single_flight import SingleFlight
from companion.cache._tier import MISSING, Evicted, Invalidation, SharedTier, Tier, TierStats

__all__ = ["CacheStats", "TieredCache", "WarmReport"]

logger = logging.getLogger("companion.cache")
Loader = Callable[[], object] | Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Per-tier counters; `promotions` count on L1 (arrivals), `demotions` on L2."""

    l1: TierStats
    l2: TierStats

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-ready form: `{"l1": {...}, "l2": {...}}`."""
        return {"l1": self.l1.as_dict(), "l2": self.l2.as_dict()}


@dataclass(frozen=True, slots=True)
class WarmReport:
    """Outcome of `warm()`: the keys loaded, and the error text of each loader that failed."""

    loaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Warmup:
    loader: Loader
    ttl_s: float | None
    tier: int
    tags: tuple[str, ...]


class TieredCache:
    """A two-level cache. Keys are strs, stored as `namespace:key`; see docs/cache.md."""

    def __init__(
        self,
        l1: Tier | None = None,
        l2: Tier | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        namespace: str = NAMESPACE,
    ) -> None:
        self.namespace = check_namespace(namespace)
        self._prefix = namespace + ":"
        self._l1: Tier = l1 if l1 is not None else MemoryTier(L1_MAX_ENTRIES, L1_TTL_S, clock=clock)
        self._l2: Tier = l2 if l2 is not None else MemoryTier(L2_MAX_ENTRIES, L2_TTL_S, clock=clock)
        self._l1_ttl_s = self._l1.default_ttl_s  # a promotion's cap, read once (not per get)
        # Concurrent misses of one full key compute once, across all of this cache's functions.
        self.flights = SingleFlight()
        self._warmups: dict[str, _Warmup] = {}
        self._names: dict[str, Callable[..., Any]] = {}
        # Bumped by every removal (local or from another node): a promotion that read L2 before
        # the removal must not put the removed value back into L1.
        self._generation = 0
        self._promotions = self._demotions = 0
        if isinstance(self._l2, SharedTier):
            self._l2.subscribe(self._on_remote_invalidation)

    @property
    def l1(self) -> Tier:
        """The hot tier."""
        return self._l1

    @property
    def l2(self) -> Tier:
        """The warm tier."""
        return self._l2

    @property
    def prefix(self) -> str:
        """`namespace:`, the start of every full key and stored tag of this cache."""
        return self._prefix

    def get(self, key: str, default: object = None) -> Any:
        """The cached value (L1, else L2 with promotion), or `default`."""
        try:
            full = self._prefix + key
        except TypeError:
            check_key(key)
            raise
        value = self._l1.get(full)
        if value is MISSING:
            check_key(key)
            value = self._lookup_l2(full)
            if value is MISSING:
                return default
        return value

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """The cached values among `keys`; L1 misses are fetched from L2 in one batch."""
        out: dict[str, Any] = {}
        wanted: list[str] = []
        for key in keys:
            value = self._l1.get(self._prefix + check_key(key))
            if value is MISSING:
                wanted.append(self._prefix + key)
            else:
                out[key] = value
        if wanted:
            generation = self._generation
            for full, found in self._l2.get_many(wanted).items():
                out[full[len(self._prefix) :]] = found.value
                self._promote(full, found.value, found.ttl_s, found.tags, generation)
        return out

    def set(
        self,
        key: str,
        value: object,
        ttl_s: float | None = None,
        tier: int = 1,
        tags: Sequence[str] = (),
    ) -> None:
        """Store: tier 1 writes L1 and L2, tier 2 writes L2 only; `ttl_s` None is each tier's."""
        self.store(
            self._prefix + check_key(key),
            value,
            check_ttl(ttl_s),
            check_tier(tier),
            self.qualify_tags(check_tags(tags)),
        )

    def delete(self, key: str) -> bool:
        """Remove `key` from every tier (and every node's L1); True if it was anywhere."""
        return self.remove(self._prefix + check_key(key))

    def invalidate(self, pattern: str) -> int:
        """Remove every key matching a glob (`*`, `?`, `[...]`) on every tier; return how many."""
        full = self._prefix + check_key(pattern)
        self._generation += 1
        return len(self._l1.invalidate(full) | self._l2.invalidate(full))

    def invalidate_tags(self, *tags: str) -> int:
        """Remove every entry stored with any of `tags` on every tier; return how many."""
        qualified = self.qualify_tags(check_tags(tags))
        self._generation += 1
        return len(self._l1.invalidate_tags(qualified) | self._l2.invalidate_tags(qualified))

    def clear(self) -> None:
        """Remove every entry of this namespace (L1 entirely, L2 under `namespace:`)."""
        self._generation += 1
        self._l1.clear()
        self._l2.invalidate(self._prefix + "*")

    def register_warmup(
        self,
        key: str,
        loader: Loader,
        ttl_s: float | None = None,
        tier: int = 1,
        tags: Sequence[str] = (),
    ) -> None:
        """Have `warm()` store `loader()` (sync or async) under `key`."""
        if not callable(loader):
            raise TypeError(f"loader must be callable, got {loader!r}")
        self._warmups[check_key(key)] = _Warmup(
            loader, check_ttl(ttl_s), check_tier(tier), check_tags(tags)
        )

    def warm(self) -> WarmReport:
        """Run every loader; a failing one is logged and reported, never raised.

        Async loaders run in a fresh event loop; inside a running loop use `warm_async()`.
        """
        report = WarmReport()
        for key, warmup in self._warmups.items():
            try:
                value = warmup.loader()
                if inspect.isawaitable(value):
                    value = _run_awaitable(value)
            except Exception as exc:
                self._warm_failed(report, key, exc)
                continue
            self._warm_store(report, key, warmup, value)
        return report

    async def warm_async(self) -> WarmReport:
        """Run every loader, async ones concurrently; failures are reported, never raised."""
        report = WarmReport()

        async def load(warmup: _Warmup) -> object:
            value = warmup.loader()
            return await value if inspect.isawaitable(value) else value

        items = list(self._warmups.items())
        results = await asyncio.gather(*(load(w) for _, w in items), return_exceptions=True)
        for (key, warmup), result in zip(items, results, strict=True):
            if isinstance(result, Exception):
                self._warm_failed(report, key, result)
            elif isinstance(result, BaseException):
                raise result
            else:
                self._warm_store(report, key, warmup, result)
        return report

    def stats(self) -> CacheStats:
        """Counters of each tier, read at call time (nothing is pushed on the hot path)."""
        return CacheStats(
            l1=replace(self._l1.stats(), promotions=self._promotions),
            l2=replace(self._l2.stats(), demotions=self._demotions),
        )

    def hot_keys(self, n: int = 10) -> list[tuple[str, int]]:
        """Up to `n` (key, hits) pairs of L1, most hit first, keys without the namespace."""
        cut = len(self._prefix)
        return [
            (key[cut:], hits) for key, hits in self._l1.hot_keys(n) if key.startswith(self._prefix)
        ]

    def cached(
        self,
        ttl_s: float | None = None,
        *,
        tier: int = 1,
        key: Callable[..., str] | None = None,
        tags: Sequence[str] | Callable[..., Sequence[str]] = (),
        cache_none: bool = True,
        name: str | None = None,
    ) -> CachedDecorator:
        """Decorator caching a sync or async function or method; see docs/cache.md."""
        return cached(
            self, ttl_s=ttl_s, tier=tier, key=key, tags=tags, cache_none=cache_none, name=name
        )

    def close(self) -> None:
        """Stop background threads and close connections the tiers opened."""
        self._l1.close()
        self._l2.close()

    async def aclose(self) -> None:
        """`close()` for async code (it waits for the listener thread off the loop)."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> TieredCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- Entries by full key (`prefix` + key): what `cached` uses (its `CacheSurface`). Nothing is
    # validated here: the decorator checks its arguments once, when it is built, not per call.

    def lookup(self, full: str) -> object:
        """The value under a full key (L1, else L2 with promotion), or `MISSING`."""
        value = self._l1.get(full)
        return self._lookup_l2(full) if value is MISSING else value

    def store(
        self, full: str, value: object, ttl_s: float | None, tier: int, tags: Sequence[str]
    ) -> None:
        """`set` by full key, with stored (`qualify_tags`) tags; `UnserializableValue` stores nothing."""
        # L2 first: a value the Redis format refuses raises before anything was stored.
        self._l2.set(full, value, ttl_s, tags)
        if tier == 1:
            self._demote(self._l1.set(full, value, ttl_s, tags))
        else:
            self._l1.delete(full)

    def store_l1(self, full: str, value: object, ttl_s: float | None, tags: Sequence[str]) -> None:
        """Store in L1 alone (what it evicts goes down to L2): for a value L2 cannot hold."""
        self._demote(self._l1.set(full, value, ttl_s, tags))

    def remove(self, full: str) -> bool:
        """`delete` by full key: from every tier and every node's L1; True if it was anywhere."""
        self._generation += 1
        in_l1 = self._l1.delete(full)
        return self._l2.delete(full) or in_l1

    def claim_name(self, name: str, fn: Callable[..., Any]) -> None:
        """Reserve the key part `name` for `fn`; `InvalidCacheKey` if another function holds it."""
        known = self._names.get(name)
        if known is not None and known is not fn:
            raise InvalidCacheKey(
                f"two cached functions are both named {name!r} in namespace {self.namespace!r}; "
                "pass name=... to one of them so they do not share entries"
            )
        self._names[name] = fn

    def qualify_tags(self, tags: tuple[str, ...]) -> tuple[str, ...]:
        """Checked tags as this cache stores them (each under `prefix`)."""
        return tuple(self._prefix + tag for tag in tags)

    def _lookup_l2(self, full: str) -> object:
        generation = self._generation
        found = self._l2.get_entry(full)
        if found is None:
            return MISSING
        value, ttl_s, tags = found
        self._promote(full, value, ttl_s, tags, generation)
        return value

    def _promote(
        self, full: str, value: object, ttl_s: float, tags: Sequence[str], generation: int
    ) -> None:
        # Keep the remaining TTL, capped at L1's own: L1 stays short-lived (it bounds staleness).
        ttl_s = min(ttl_s, self._l1_ttl_s)
        if ttl_s <= 0 or generation != self._generation:
            return
        added, evicted = self._l1.add(full, value, ttl_s, tags)
        if added:
            self._promotions += 1
        if evicted:
            self._demote(evicted)

    def _demote(self, evicted: Sequence[Evicted]) -> None:
        for key, value, ttl_s, tags in evicted:
            # Usually L2 already holds it (tier-1 writes go through); `add` keeps L2's longer TTL.
            self._l2.add(key, value, ttl_s, tags)
            self._demotions += 1

    def _on_remote_invalidation(self, change: Invalidation) -> None:
        self._generation += 1
        if change.everything:
            self._l1.clear()
            return
        for full in change.keys:
            self._l1.delete(full)
        if change.pattern is not None:
            self._l1.invalidate(change.pattern)
        if change.tags:
            self._l1.invalidate_tags(change.tags)

    def _warm_failed(self, report: WarmReport, key: str, exc: BaseException) -> None:
        logger.warning("cache warm-up of %r failed: %s: %s", key, type(exc).__name__, exc)
        report.failed[key] = f"{type(exc).__name__}: {exc}"

    def _warm_store(self, report: WarmReport, key: str, warmup: _Warmup, value: object) -> None:
        try:
            self.set(key, value, warmup.ttl_s, warmup.tier, warmup.tags)
        except Exception as exc:
            self._warm_failed(report, key, exc)
        else:
            report.loaded.append(key)


def _run_awaitable(awaitable: Awaitable[object]) -> object:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # never awaited: close it so no "never awaited" warning follows
        raise RuntimeError("async loader inside a running event loop: use await warm_async()")

    async def wait() -> object:
        return await awaitable

    return asyncio.run(wait())
