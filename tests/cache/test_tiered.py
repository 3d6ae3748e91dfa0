from __future__ import annotations

import asyncio
import logging

import pytest

from companion.cache import (
    InvalidCacheKey,
    InvalidTier,
    InvalidTTL,
    MemoryTier,
    TieredCache,
    build_cache,
)
from tests._clock import FakeClock


def test_get_set_delete_and_default(cache: TieredCache) -> None:
    cache.set("a", 1)
    assert cache.get("a") == 1
    assert cache.get("missing", "dflt") == "dflt"
    assert cache.delete("a")
    assert not cache.delete("a")
    assert cache.get("a") is None


def test_none_is_cached(cache: TieredCache) -> None:
    cache.set("n", None)
    assert cache.get("n", "dflt") is None


def test_tier_1_writes_through_and_tier_2_skips_l1(cache: TieredCache) -> None:
    cache.set("hot", 1)
    cache.set("warm", 2, tier=2)
    assert cache.l1.get("t:hot") == 1
    assert cache.l2.get("t:hot") == 1
    assert cache.l1.stats().size == 1
    assert cache.l2.get("t:warm") == 2


def test_l2_hit_promotes_with_the_remaining_ttl(cache: TieredCache, clock: FakeClock) -> None:
    cache.set("k", "v", ttl_s=8.0, tier=2)
    clock.advance(5)
    assert cache.get("k") == "v"
    found = cache.l1.get_entry("t:k")
    assert found is not None
    assert found.ttl_s == pytest.approx(3.0)
    assert cache.stats().l1.promotions == 1


def test_promotion_is_capped_at_the_l1_ttl(cache: TieredCache, clock: FakeClock) -> None:
    cache.set("k", "v", tier=2)  # L2 default: 100 s
    assert cache.get("k") == "v"
    found = cache.l1.get_entry("t:k")
    assert found is not None
    assert found.ttl_s == 10.0  # L1 default


def test_l1_eviction_demotes_to_l2(clock: FakeClock) -> None:
    l2 = MemoryTier(10, 100.0, clock=clock)
    with TieredCache(MemoryTier(2, 10.0, clock=clock), l2, clock=clock, namespace="t") as cache:
        cache.set("a", 1, tier=2)
        cache.get("a")  # promoted: in L1 and L2
        l2.delete("t:a")  # L2 lost it (e.g. evicted there)
        cache.set("b", 2)
        cache.set("c", 3)  # evicts a from L1: demoted back to L2
        assert l2.get("t:a") == 1
        assert cache.get("a") == 1
        stats = cache.stats()
        assert stats.l1.evictions >= 1
        assert stats.l2.demotions >= 1


def test_ttl_expiry_on_both_tiers(cache: TieredCache, clock: FakeClock) -> None:
    cache.set("k", 1, ttl_s=5.0)
    clock.advance(5)
    assert cache.get("k") is None
    cache.set("d", 1)  # defaults: 10 s in L1, 100 s in L2
    clock.advance(50)
    assert cache.get("d") == 1  # from L2, promoted
    clock.advance(60)
    assert cache.get("d") is None


def test_glob_invalidation_on_every_tier(cache: TieredCache) -> None:
    cache.set("user:42:name", "ada")
    cache.set("user:42:mail", "a@x", tier=2)
    cache.set("user:7:name", "bob")
    assert cache.invalidate("user:42:*") == 2
    assert cache.get("user:42:name") is None
    assert cache.get("user:42:mail") is None
    assert cache.get("user:7:name") == "bob"


def test_tag_invalidation_on_every_tier(cache: TieredCache) -> None:
    cache.set("a", 1, tags=["user:42"])
    cache.set("b", 2, tier=2, tags=["user:42", "x"])
    cache.set("c", 3, tags=["user:7"])
    assert cache.invalidate_tags("user:42") == 2
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, None, 3)


def test_promoted_entry_keeps_its_tags(cache: TieredCache) -> None:
    cache.set("b", 2, tier=2, tags=["t1"])
    assert cache.get("b") == 2
    assert cache.l1.invalidate_tags(["t:t1"]) == {"t:b"}


def test_clear_is_scoped_to_the_namespace(clock: FakeClock) -> None:
    shared_l2 = MemoryTier(10, 100.0, clock=clock)
    one = TieredCache(MemoryTier(3, 10.0, clock=clock), shared_l2, namespace="one")
    two = TieredCache(MemoryTier(3, 10.0, clock=clock), shared_l2, namespace="two")
    one.set("k", 1)
    two.set("k", 2)
    one.clear()
    assert one.get("k") is None
    assert two.get("k") == 2


def test_get_many(cache: TieredCache) -> None:
    cache.set("a", 1)
    cache.set("b", 2, tier=2)
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    assert cache.stats().l1.promotions == 1


def test_stats_arithmetic(cache: TieredCache) -> None:
    cache.set("a", 1)
    cache.set("b", 2, tier=2)
    cache.get("a")  # L1 hit
    cache.get("b")  # L1 miss, L2 hit, promoted
    cache.get("b")  # L1 hit
    cache.get("c")  # miss on both
    stats = cache.stats()
    assert (stats.l1.hits, stats.l1.misses) == (2, 2)
    assert (stats.l2.hits, stats.l2.misses) == (1, 1)
    assert stats.l1.hit_rate == 0.5
    assert stats.l1.promotions == 1
    assert (stats.l1.size, stats.l2.size) == (2, 2)
    assert stats.as_dict()["l2"]["hit_rate"] == 0.5


def test_hot_keys_without_namespace(cache: TieredCache) -> None:
    cache.set("a", 1)
    cache.set("b", 2)
    for _ in range(3):
        cache.get("b")
    cache.get("a")
    assert cache.hot_keys(1) == [("b", 3)]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda c: c.set(42, 1), InvalidCacheKey, "non-empty str"),
        (lambda c: c.get(["k"]), InvalidCacheKey, "non-empty str"),
        (lambda c: c.get(42), InvalidCacheKey, "non-empty str"),
        (lambda c: c.set("k", 1, ttl_s=-1), InvalidTTL, "> 0"),
        (lambda c: c.set("k", 1, tier=3), InvalidTier, "tier must be 1"),
        (lambda c: c.set("k", 1, tags="t"), InvalidCacheKey, "sequence of str"),
        (lambda c: c.cached(ttl_s=0), InvalidTTL, "> 0"),
        (lambda c: c.cached(tier=0), InvalidTier, "tier"),
    ],
)
def test_bad_input_raises_typed_errors(
    cache: TieredCache, call: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call(cache)  # type: ignore[operator]


def test_warm_sync_and_async_loaders_failure_reported(
    cache: TieredCache, caplog: pytest.LogCaptureFixture
) -> None:
    async def fetch() -> str:
        return "async"

    def broken() -> int:
        raise RuntimeError("db down")

    cache.register_warmup("sync", lambda: "sync", ttl_s=30)
    cache.register_warmup("async", fetch)
    cache.register_warmup("broken", broken)
    with caplog.at_level(logging.WARNING, logger="companion.cache"):
        report = cache.warm()
    assert report.loaded == ["sync", "async"]
    assert report.failed == {"broken": "RuntimeError: db down"}
    assert (cache.get("sync"), cache.get("async")) == ("sync", "async")
    assert "broken" in caplog.text


async def test_warm_async(cache: TieredCache) -> None:
    async def fetch() -> str:
        await asyncio.sleep(0)
        return "async"

    cache.register_warmup("sync", lambda: 1)
    cache.register_warmup("async", fetch, tier=2)
    report = await cache.warm_async()
    assert report.loaded == ["sync", "async"]
    assert cache.get("async") == "async"
    # The sync entry point refuses async loaders inside a running loop, without raising.
    assert "warm_async" in cache.warm().failed["async"]


def test_build_cache_memory_defaults() -> None:
    with build_cache() as cache:
        assert cache.stats().l1.max_entries == 100
        assert cache.stats().l2.max_entries == 1000
        assert cache.l1.default_ttl_s == 60.0
        assert cache.l2.default_ttl_s == 600.0


def test_namespace_is_validated() -> None:
    with pytest.raises(InvalidCacheKey, match="namespace"):
        TieredCache(namespace="a:b")
