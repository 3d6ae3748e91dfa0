from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from companion.cache import InvalidCacheKey, MemoryTier, TieredCache
from tests._clock import FakeClock


def test_hit_after_miss_and_readable_key(cache: TieredCache) -> None:
    calls = []

    @cache.cached()
    def f(a: int, b: str) -> int:
        calls.append((a, b))
        return a * 2

    assert f(42, "x") == 84
    assert f(42, "x") == 84
    assert calls == [(42, "x")]
    assert cache.get(f"{__name__}.test_hit_after_miss_and_readable_key.<locals>.f:42,'x'") == 84
    assert f.cache_info().hits == 1
    assert f.cache_info().misses == 1


def test_ttl_is_honoured(cache: TieredCache, clock: FakeClock) -> None:
    calls = []

    @cache.cached(ttl_s=2)
    def f() -> int:
        calls.append(1)
        return len(calls)

    assert f() == 1
    clock.advance(1.9)
    assert f() == 1
    clock.advance(0.1)
    assert f() == 2  # expired on both tiers: ttl_s applies to L2 too


def test_none_is_cached_unless_told_otherwise(cache: TieredCache) -> None:
    calls = []

    @cache.cached()
    def f() -> None:
        calls.append(1)

    @cache.cached(cache_none=False)
    def g() -> None:
        calls.append(2)

    f(), f(), g(), g()
    assert calls == [1, 2, 2]


def test_keyword_and_unhashable_arguments(cache: TieredCache) -> None:
    calls = []

    @cache.cached()
    def f(items: list[int], *, scale: int = 1) -> int:
        calls.append(1)
        return sum(items) * scale

    assert f([1, 2], scale=2) == 6
    assert f([1, 2], scale=2) == 6
    assert f([1, 2]) == 3
    assert len(calls) == 2


def test_invalidate_and_bypass(cache: TieredCache) -> None:
    calls = []

    @cache.cached()
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    assert f.invalidate(1)
    assert not f.invalidate(1)
    f(1)
    assert f.bypass(1) == 1
    assert calls == [1, 1, 1]


def test_custom_key_and_tags(cache: TieredCache) -> None:
    @cache.cached(key=lambda user_id: f"user:{user_id}", tags=lambda user_id: [f"user:{user_id}"])
    def profile(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    profile(42)
    assert cache.invalidate("*:user:42") == 1
    profile(42)
    assert cache.invalidate_tags("user:42") == 1


def test_methods_leave_self_out_of_the_key(cache: TieredCache) -> None:
    calls = []

    class Repo:
        @cache.cached()
        def load(self, item: int) -> int:
            calls.append(item)
            return item * 10

    one, two = Repo(), Repo()
    assert one.load(1) == 10
    assert two.load(1) == 10  # same entry: self is not part of the key
    assert calls == [1]
    assert one.load.invalidate(1)
    assert Repo.load(two, 1) == 10
    assert one.load.bypass(1) == 10
    assert calls == [1, 1, 1]
    assert one.load.cache_info().misses == 2
    assert Repo.load.invalidate(one, 1)


async def test_async_functions_and_methods(cache: TieredCache) -> None:
    calls = []

    @cache.cached()
    async def fetch(x: int) -> list[int]:
        await asyncio.sleep(0)
        calls.append(x)
        return [x]

    class Service:
        @cache.cached(ttl_s=5)
        async def get(self, x: int) -> int:
            calls.append(-x)
            return -x

    assert await fetch(1) == [1]
    assert await fetch(1) == [1]  # the second call used to break
    assert await Service().get(2) == -2
    assert await Service().get(2) == -2
    assert calls == [1, -2]


def _define(module: str, cache: TieredCache) -> Any:
    namespace: dict[str, Any] = {"__name__": module, "cache": cache}
    exec("@cache.cached()\ndef lookup(x):\n    return (__name__, x)\n", namespace)
    return namespace["lookup"]


def test_same_named_functions_in_two_modules_do_not_collide(cache: TieredCache) -> None:
    a, b = _define("app.users", cache), _define("app.orders", cache)
    assert a(1) == ("app.users", 1)
    assert b(1) == ("app.orders", 1)
    assert a(1) == ("app.users", 1)


def test_same_qualified_name_twice_is_refused(cache: TieredCache) -> None:
    _define("app.users", cache)
    with pytest.raises(InvalidCacheKey, match="name="):
        _define("app.users", cache)


def test_an_exception_is_not_cached(cache: TieredCache) -> None:
    calls = []

    @cache.cached()
    def f() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first call fails")
        return 5

    with pytest.raises(RuntimeError):
        f()
    assert f() == 5


def test_single_flight_under_fifty_threads(cache: TieredCache) -> None:
    calls = []
    barrier = threading.Barrier(51)
    release = threading.Event()

    @cache.cached()
    def slow(x: int) -> int:
        calls.append(x)
        release.wait(5)
        return x

    results: list[int] = []

    def call() -> None:
        barrier.wait()
        results.append(slow(3))

    threads = [threading.Thread(target=call) for _ in range(50)]
    for thread in threads:
        thread.start()
    barrier.wait()  # every thread is about to call; the first one blocks in slow()
    release.set()
    for thread in threads:
        thread.join()
    assert calls == [3]  # late arrivals hit the cache, early ones joined the flight
    assert results == [3] * 50


async def test_single_flight_under_fifty_tasks_and_shared_exception(cache: TieredCache) -> None:
    calls = []
    release = asyncio.Event()

    @cache.cached()
    async def slow(x: int) -> int:
        calls.append(x)
        await release.wait()
        if x < 0:
            raise ValueError("negative")
        return x

    tasks = [asyncio.create_task(slow(4)) for _ in range(50)]
    failing = [asyncio.create_task(slow(-1)) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*tasks) == [4] * 50
    results = await asyncio.gather(*failing, return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert calls == [4, -1]


def test_tier_2_functions_read_through_l2(clock: FakeClock) -> None:
    with TieredCache(
        MemoryTier(2, 10.0, clock=clock), MemoryTier(10, 100.0, clock=clock), namespace="t"
    ) as cache:

        @cache.cached(tier=2)
        def f(x: int) -> int:
            return x

        f(1)
        assert cache.l1.stats().size == 0
        f(1)  # L2 hit, promoted
        assert cache.l1.stats().size == 1
        assert f.cache_info() == (f.cache_info().name, 1, 1)


def test_arguments_without_a_stable_form_are_refused(cache: TieredCache) -> None:
    @cache.cached()
    def f(x: object) -> int:
        return 1

    with pytest.raises(InvalidCacheKey, match="no stable repr"):
        f(object())
