from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from companion.cache import (
    MemoryTier,
    RedisTier,
    TieredCache,
    UnserializableValue,
    build_cache,
)
from tests._clock import FakeClock
from tests._services import RedisServer

pytestmark = pytest.mark.redis


def _poll(condition: Callable[[], bool], timeout_s: float = 5.0) -> float:
    """Seconds until `condition()` held; fails after `timeout_s`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout_s, "condition not reached in time"
        time.sleep(0.0005)  # real-time: waiting on a pub/sub message or a thread
    return time.monotonic() - start


def _node(url: str, prefix: str, clock: FakeClock, namespace: str = "app") -> TieredCache:
    return TieredCache(
        MemoryTier(10, 60.0, clock=clock),
        RedisTier(url, prefix=prefix, clock=clock, default_ttl_s=300.0, retry_interval_s=5.0),
        clock=clock,
        namespace=namespace,
    )


@pytest.fixture
def pair(redis_url: str, redis_prefix: str, clock: FakeClock) -> Iterator[tuple[TieredCache, ...]]:
    one, two = _node(redis_url, redis_prefix, clock), _node(redis_url, redis_prefix, clock)
    try:
        for node in (one, two):
            _poll(lambda node=node: node.l2.bus_connected)  # type: ignore[attr-defined]
        yield one, two
    finally:
        one.close()
        two.close()


@pytest.fixture
def tier(redis_url: str, redis_prefix: str, clock: FakeClock) -> Iterator[RedisTier]:
    built = RedisTier(redis_url, prefix=redis_prefix, clock=clock)
    yield built
    built.close()


def test_round_trip_with_types_ttl_and_tags(tier: RedisTier) -> None:
    value = {"ids": (1, 2), "raw": b"\x00", "none": None}
    tier.set("k", value, 30.0, ("t",))
    found = tier.get_entry("k")
    assert found is not None
    assert found.value == value
    assert 29.0 < found.ttl_s <= 30.0
    assert found.tags == ("t",)
    assert tier.get("absent") is not None  # MISSING, not None
    assert tier.get_many(["k", "absent"]).keys() == {"k"}


def test_add_is_set_if_absent(tier: RedisTier) -> None:
    assert tier.add("k", 1, 10.0, ())[0]
    assert not tier.add("k", 2, 10.0, ())[0]
    assert tier.get("k") == 1


def test_glob_and_tag_invalidation_in_redis(tier: RedisTier) -> None:
    tier.set("user:42:a", 1, None, ("user:42",))
    tier.set("user:42:b", 2, None, ())
    tier.set("user:7:a", 3, None, ("user:7",))
    assert tier.invalidate("user:42:*") == {"user:42:a", "user:42:b"}
    assert tier.invalidate_tags(["user:7", "nothing"]) == {"user:7:a"}
    assert tier.stats().size == 0


def test_unserialisable_values_raise_before_any_write(tier: RedisTier) -> None:
    with pytest.raises(UnserializableValue, match="cannot store"):
        tier.set("k", object(), None, ())
    assert tier.stats().size == 0


def test_decorator_keeps_unserialisable_results_in_l1(
    pair: tuple[TieredCache, ...], caplog: pytest.LogCaptureFixture
) -> None:
    one, _ = pair
    calls = []

    class Result:
        pass

    @one.cached()
    def f(x: int) -> Result:
        calls.append(x)
        return Result()

    with caplog.at_level(logging.WARNING, logger="companion.cache"):
        first = f(1)
        assert f(1) is first
        f(2)
    assert calls == [1, 2]
    assert caplog.text.count("kept in L1 only") == 1


def test_two_nodes_share_values_and_invalidations(pair: tuple[TieredCache, ...]) -> None:
    one, two = pair
    one.set("user:42", {"name": "Ada"}, tags=["user:42"])
    assert two.get("user:42") == {"name": "Ada"}  # from Redis
    # Promoted into two's L1 (once the set's own drop message, which may land after, has passed).
    _poll(lambda: two.get("user:42") is not None and two.l1.get_entry("app:user:42") is not None)

    one.set("user:42", {"name": "Grace"})  # a set drops the old value from two's L1
    _poll(lambda: two.l1.get_entry("app:user:42") is None)
    assert two.get("user:42") == {"name": "Grace"}

    one.invalidate("user:*")
    _poll(lambda: two.l1.get_entry("app:user:42") is None)
    assert two.get("user:42") is None

    two.set("user:43", 1, tags=["team"])
    _poll(lambda: one.get("user:43") == 1 and one.l1.get_entry("app:user:43") is not None)
    two.invalidate_tags("team")
    _poll(lambda: one.l1.get_entry("app:user:43") is None)

    one.set("k", 1)
    _poll(lambda: two.get("k") == 1 and two.l1.get_entry("app:k") is not None)
    one.delete("k")
    _poll(lambda: two.l1.get_entry("app:k") is None)


def test_cross_node_invalidation_latency(pair: tuple[TieredCache, ...]) -> None:
    one, two = pair
    latencies = []
    for i in range(20):
        one.set(f"k{i}", i)
        _poll(lambda i=i: two.get(f"k{i}") == i and two.l1.get_entry(f"app:k{i}") is not None)  # type: ignore[misc]
        start = time.perf_counter()
        one.delete(f"k{i}")
        _poll(lambda i=i: two.l1.get_entry(f"app:k{i}") is None)  # type: ignore[misc]
        latencies.append(time.perf_counter() - start)
    latencies.sort()
    print(
        f"cross-node invalidation: median {latencies[10] * 1e3:.2f} ms, max {latencies[-1] * 1e3:.2f} ms"
    )
    assert latencies[10] < 1.0  # generous: the bound documented is the L1 TTL, this is the norm


def test_namespaces_do_not_see_each_other(
    redis_url: str, redis_prefix: str, clock: FakeClock
) -> None:
    a = _node(redis_url, redis_prefix, clock, namespace="tenant-a")
    b = _node(redis_url, redis_prefix, clock, namespace="tenant-b")
    try:
        a.set("k", 1)
        assert b.get("k") is None
        b.clear()
        assert a.get("k") == 1
    finally:
        a.close()
        b.close()


def test_redis_outage_degrades_to_l1_and_recovers(
    private_redis: RedisServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    cache = build_cache(private_redis.url, clock=clock, namespace="app", redis_retry_interval_s=5.0)
    try:
        cache.set("kept", 1)
        private_redis.stop()
        with caplog.at_level(logging.INFO, logger="companion.cache"):
            for _ in range(3):
                assert cache.get("kept") == 1  # L1 still serves
                cache.set("new", 2)  # no exception
                assert cache.get("absent") is None
                assert cache.delete("nothing") is False
                assert cache.invalidate("x*") == 0
                clock.advance(6)  # past the retry interval: the next call tries Redis again
            errors = cache.stats().l2.errors
            assert errors >= 3
            assert caplog.text.count("Redis cache tier unavailable") == 1

            private_redis.start()
            clock.advance(6)
            cache.set("after", 3)
            assert cache.l2.get("app:after") == 3
            assert "available again" in caplog.text
        assert cache.stats().l2.errors == errors
        _poll(lambda: cache.l2.bus_connected, timeout_s=10)  # type: ignore[attr-defined]
    finally:
        cache.close()


def test_client_is_not_closed_when_injected(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        tier = RedisTier(client=client, prefix=redis_prefix)
        tier.set("k", 1, None, ())
        tier.close()
        assert client.ping()
    finally:
        client.close()
