"""Benchmark rows of `companion.cache`, each next to `cachetools` (the `bench` extra) in the same run."""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Callable
from typing import Any

from companion.bench._case import Case, Operation, Target
from companion.cache import MemoryTier, TieredCache

__all__ = ["cases", "memory_ratio"]

_GROUP = "cache"
_MEMORY_ENTRIES = 100_000
_L1_ENTRIES = 100  # the defaults of TieredCache and of the settings
_L2_ENTRIES = 1000


def cases() -> list[Case]:
    """The cache rows: SPEC section 6 and the seed's L1 hit and L2 promotion."""
    return [
        Case(
            _GROUP,
            "@cached L1 hit, f(42, 'x')",
            ours=_ours_cached_hit,
            peer=_peer_cached_hit,
            peer_name="cachetools.cached(TTLCache)",
            target=Target(max_ratio=0.75),
            seed_figure="57 µs",
            batch=1000,
        ),
        Case(
            _GROUP,
            "TieredCache.get, L1 hit",
            ours=_ours_get_hit,
            peer=_peer_get_hit,
            peer_name="cachetools.TTLCache.__getitem__",
            target=Target(max_ratio=1.5),
            seed_figure="57 µs",
            batch=1000,
        ),
        Case(
            _GROUP,
            "TieredCache.get, L2 hit promoted to L1",
            ours=_ours_l2_promotion,
            peer=_peer_l2_promotion,
            peer_name="cachetools LRUCache over TTLCache, promoted by hand",
            target=Target(max_ratio=1.5),
            seed_figure="56 µs",
            batch=1000,
        ),
        Case(
            _GROUP,
            "@cached miss: compute and store",
            ours=_ours_miss,
            peer=_peer_miss,
            peer_name="cachetools.cached(TTLCache)",
            target=Target(max_ratio=2.0),
            batch=100,
        ),
        Case(
            _GROUP,
            f"memory of {_MEMORY_ENTRIES:,} small entries in a memory tier",
            ours=lambda: lambda: _traced(_build_tier),
            peer=lambda: lambda: _traced(_build_dict),
            peer_name="plain dict of the same entries",
            target=Target(max_ratio=2.0),
            unit="bytes",
        ),
    ]


def memory_ratio(entries: int = _MEMORY_ENTRIES) -> tuple[int, int]:
    """(bytes of a full MemoryTier, bytes of a dict of the same entries), keys and values included.

    Measured with tracemalloc around building each structure from scratch; the target is ours at
    most 2x the dict's.
    """
    return _traced(lambda: _build_tier(entries)), _traced(lambda: _build_dict(entries))


def _traced(build: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return after - before


def _entries(entries: int) -> Any:
    # Keys like the decorator's, values a distinct int each: "small entries".
    return ((f"companion:app.lookup:{i}", i * 7 + 1000) for i in range(entries))


def _build_tier(entries: int = _MEMORY_ENTRIES) -> MemoryTier:
    tier = MemoryTier(entries, 600.0)
    for key, value in _entries(entries):
        tier.set(key, value)
    return tier


def _build_dict(entries: int = _MEMORY_ENTRIES) -> dict[str, int]:
    return dict(_entries(entries))


def _ours_cached_hit() -> Operation:
    cache = TieredCache(namespace="bench")

    @cache.cached()
    def f(a: int, b: str) -> int:
        return a

    f(42, "x")
    return lambda: f(42, "x")


def _peer_cached_hit() -> Operation:
    import cachetools

    @cachetools.cached(cachetools.TTLCache(maxsize=100, ttl=60))
    def f(a: int, b: str) -> int:
        return a

    f(42, "x")
    return lambda: f(42, "x")


def _ours_get_hit() -> Operation:
    cache = TieredCache(namespace="bench")
    cache.set("user:42", {"name": "Ada"})
    get = cache.get
    return lambda: get("user:42")


def _peer_get_hit() -> Operation:
    import cachetools

    cache: cachetools.TTLCache[str, object] = cachetools.TTLCache(maxsize=100, ttl=60)
    cache["user:42"] = {"name": "Ada"}
    getitem = cache.__getitem__
    return lambda: getitem("user:42")


def _cycling(get: Callable[[str], object]) -> Operation:
    # Cycling through 10x L1's capacity: every get misses L1, hits L2 and promotes (evicting
    # the least recently used L1 entry), which is the seed's "L2 promotion".
    keys = itertools.cycle([f"user:{i}" for i in range(_L2_ENTRIES)])
    return lambda: get(next(keys))


def _ours_l2_promotion() -> Operation:
    cache = TieredCache(namespace="bench")
    for i in range(_L2_ENTRIES):
        cache.set(f"user:{i}", {"id": i}, tier=2)
    return _cycling(cache.get)


def _peer_l2_promotion() -> Operation:
    import cachetools

    l1: cachetools.LRUCache[str, object] = cachetools.LRUCache(maxsize=_L1_ENTRIES)
    l2: cachetools.TTLCache[str, object] = cachetools.TTLCache(maxsize=_L2_ENTRIES, ttl=600)
    for i in range(_L2_ENTRIES):
        l2[f"user:{i}"] = {"id": i}

    def get(key: str) -> object:
        try:
            return l1[key]
        except KeyError:
            value = l2[key]
            l1[key] = value
            return value

    return _cycling(get)


def _ours_miss() -> Operation:
    cache = TieredCache(namespace="bench")

    @cache.cached()
    def f(a: int) -> int:
        return a

    counter = itertools.count()
    return lambda: f(next(counter))


def _peer_miss() -> Operation:
    import cachetools

    @cachetools.cached(cachetools.TTLCache(maxsize=100, ttl=60))
    def f(a: int) -> int:
        return a

    counter = itertools.count()
    return lambda: f(next(counter))
