from __future__ import annotations

import threading
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.cache import MISSING, MemoryTier
from tests._clock import FakeClock


def test_ttl_expiry_on_the_injected_clock(clock: FakeClock) -> None:
    tier = MemoryTier(10, 5.0, clock=clock)
    tier.set("a", 1)
    tier.set("b", 2, ttl_s=20.0)
    clock.advance(4.9)
    assert tier.get("a") == 1
    clock.advance(0.1)
    assert tier.get("a") is MISSING
    assert tier.get("b") == 2
    stats = tier.stats()
    assert (stats.size, stats.expirations, stats.hits, stats.misses) == (1, 1, 2, 1)


def test_lru_order_and_eviction(clock: FakeClock) -> None:
    tier = MemoryTier(3, 60.0, clock=clock)
    for key in "abc":
        tier.set(key, key)
    assert tier.get("a") == "a"  # a becomes most recent: b is now the LRU
    evicted = tier.set("d", "d")
    assert [entry[0] for entry in evicted] == ["b"]
    assert tier.keys() == ["c", "a", "d"]
    assert tier.stats().evictions == 1


def test_expired_lru_entry_is_an_expiration_not_an_eviction(clock: FakeClock) -> None:
    tier = MemoryTier(1, 60.0, clock=clock)
    tier.set("a", 1, ttl_s=1.0)
    clock.advance(2)
    assert tier.set("b", 2) == []
    stats = tier.stats()
    assert (stats.evictions, stats.expirations) == (0, 1)


def test_none_is_a_value(clock: FakeClock) -> None:
    tier = MemoryTier(2, 60.0, clock=clock)
    tier.set("n", None)
    assert tier.get("n") is None


def test_entry_keeps_remaining_ttl_and_tags(clock: FakeClock) -> None:
    tier = MemoryTier(2, 60.0, clock=clock)
    tier.set("a", 1, ttl_s=30.0, tags=("t",))
    clock.advance(10)
    found = tier.get_entry("a")
    assert found is not None
    assert (found.value, found.ttl_s, found.tags) == (1, 20.0, ("t",))
    assert tier.get_entry("zz") is None


def test_add_only_when_absent_or_expired(clock: FakeClock) -> None:
    tier = MemoryTier(2, 60.0, clock=clock)
    assert tier.add("a", 1)[0]
    assert not tier.add("a", 2)[0]
    clock.advance(61)
    assert tier.add("a", 3)[0]
    assert tier.get("a") == 3


def test_glob_and_tag_invalidation(clock: FakeClock) -> None:
    tier = MemoryTier(10, 60.0, clock=clock)
    tier.set("user:1:name", "a", tags=("user:1",))
    tier.set("user:1:mail", "b", tags=("user:1", "mail"))
    tier.set("user:2:name", "c", tags=("user:2",))
    assert tier.invalidate("user:1:*") == {"user:1:name", "user:1:mail"}
    assert tier.invalidate_tags(["user:2", "mail"]) == {"user:2:name"}
    assert len(tier) == 0
    tier.set("x", 1, tags=("t",))
    tier.set("x", 2)  # re-set without tags: the old tag no longer reaches it
    assert tier.invalidate_tags(["t"]) == set()
    assert tier.get("x") == 2


def test_hot_keys_count_hits_since_stored(clock: FakeClock) -> None:
    tier = MemoryTier(10, 60.0, clock=clock)
    for key in "abc":
        tier.set(key, key)
    for key, times in (("a", 1), ("b", 5), ("c", 3)):
        for _ in range(times):
            tier.get(key)
    assert tier.hot_keys(2) == [("b", 5), ("c", 3)]


def test_read_buffer_is_replayed_when_long(clock: FakeClock) -> None:
    tier = MemoryTier(2, 60.0, clock=clock)
    tier.set("a", 1)
    tier.set("b", 2)
    for _ in range(200):
        tier.get("a")
    assert len(tier._reads) <= 65
    tier.set("c", 3)
    assert tier.keys() == ["a", "c"]
    assert tier.stats().hits == 200


def test_entries_read_for_promotion_are_counted_and_moved_at_once(clock: FakeClock) -> None:
    tier = MemoryTier(3, 60.0, clock=clock)
    for key in "abc":
        tier.set(key, key)
    # An L2 that only promotes is read only this way: nothing else would drain a read buffer.
    for _ in range(1000):
        assert tier.get_entry("a") is not None
    assert len(tier._reads) == 0
    assert tier.keys() == ["b", "c", "a"]
    assert tier.stats().hits == 1000
    # A buffered hit that came first is replayed first: c (read by `get`) then b (`get_entry`).
    assert tier.get("c") == "c"
    assert tier.get_entry("b") is not None
    assert tier.keys() == ["a", "c", "b"]
    assert tier.hot_keys(3) == [("a", 1000), ("b", 1), ("c", 1)]


def test_refused_add_changes_nothing(clock: FakeClock) -> None:
    tier = MemoryTier(2, 60.0, clock=clock)
    tier.set("a", 1, tags=("t",))
    tier.set("b", 2)
    assert tier.add("a", 9, 5.0, ("u",)) == (False, ())
    found = tier.get_entry("a")
    assert found is not None
    assert (found.value, found.ttl_s, found.tags) == (1, 60.0, ("t",))
    assert tier.keys() == ["b", "a"]  # moved by the read, not by the refused add


def test_clear_keeps_counters(clock: FakeClock) -> None:
    tier = MemoryTier(2, 60.0, clock=clock)
    tier.set("a", 1)
    tier.get("a")
    tier.clear()
    assert tier.get("a") is MISSING
    assert tier.keys() == []
    assert (tier.stats().hits, tier.stats().misses) == (1, 1)


def test_counters_are_exact_under_threads(clock: FakeClock) -> None:
    tier = MemoryTier(50, 60.0, clock=clock)
    for i in range(50):
        tier.set(f"k{i}", i)
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        barrier.wait()
        for i in range(2000):
            tier.get(f"k{(i + worker) % 50}")
            tier.get("absent")
            assert tier.get_entry(f"k{(i + 7 * worker) % 50}") is not None
            assert tier.add(f"k{i % 50}", -1) == (False, ())  # refused: the entry is fresh
            if i % 100 == 0:
                tier.set(f"k{i % 50}", i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = tier.stats()
    assert (stats.hits, stats.misses, stats.size) == (32000, 16000, 50)
    assert sum(hits for _, hits in tier.hot_keys(50)) <= 32000


def test_bad_construction() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryTier(0)


class Model:
    """The simplest correct LRU with TTL: an OrderedDict of key -> (value, expires_at)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.data: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def get(self, key: str, now: float) -> object:
        if key not in self.data:
            return MISSING
        value, expires_at = self.data[key]
        if expires_at <= now:
            del self.data[key]
            return MISSING
        self.data.move_to_end(key)
        return value

    def set(self, key: str, value: int, ttl_s: float, now: float) -> list[str]:
        self.data[key] = (value, now + ttl_s)
        self.data.move_to_end(key)
        evicted = []
        while len(self.data) > self.max_entries:
            old, (_, expires_at) = self.data.popitem(last=False)
            if expires_at > now:
                evicted.append(old)
        return evicted

    def add(self, key: str, value: int, ttl_s: float, now: float) -> tuple[bool, list[str]]:
        if key in self.data and self.data[key][1] > now:
            return False, []
        return True, self.set(key, value, ttl_s, now)

    def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None


keys = st.sampled_from(["a", "b", "c", "d", "e"])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("get"), keys),
        st.tuples(st.just("get_entry"), keys),
        st.tuples(st.just("set"), keys, st.integers(0, 9), st.sampled_from([1.0, 5.0])),
        st.tuples(st.just("add"), keys, st.integers(0, 9), st.sampled_from([1.0, 5.0])),
        st.tuples(st.just("delete"), keys),
        st.tuples(st.just("tick"), st.sampled_from([0.5, 1.0, 3.0])),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4), operations)
def test_memory_tier_matches_the_model(max_entries: int, ops: list[tuple[object, ...]]) -> None:
    clock = FakeClock()
    tier = MemoryTier(max_entries, 5.0, clock=clock)
    model = Model(max_entries)
    for op in ops:
        if op[0] == "get":
            assert tier.get(op[1]) == model.get(op[1], clock())  # type: ignore[arg-type]
        elif op[0] == "get_entry":
            found = tier.get_entry(op[1])  # type: ignore[arg-type]
            expected = model.get(op[1], clock())  # type: ignore[arg-type]
            assert (MISSING if found is None else found.value) == expected
        elif op[0] == "set":
            _, key, value, ttl = op
            got = [entry[0] for entry in tier.set(key, value, ttl)]  # type: ignore[arg-type]
            assert got == model.set(key, value, ttl, clock())  # type: ignore[arg-type]
        elif op[0] == "add":
            _, key, value, ttl = op
            added, evicted = tier.add(key, value, ttl)  # type: ignore[arg-type]
            want = model.add(key, value, ttl, clock())  # type: ignore[arg-type]
            assert (added, [entry[0] for entry in evicted]) == want
        elif op[0] == "delete":
            assert tier.delete(op[1]) == model.delete(op[1])  # type: ignore[arg-type]
        else:
            clock.advance(op[1])  # type: ignore[arg-type]
        assert tier.keys() == list(model.data)
