"""`MemoryTier`: an in-process LRU with per-entry TTL whose hits take no lock.

Layout: a dict from key to a slotted node, the nodes also forming a doubly linked list in LRU order
(a dict alone would need O(n) scans to evict once its front fills with deleted slots). A hit only
reads the dict and appends its key to a read buffer (`deque.append` is atomic); whoever next holds
the lock (a write, a read for promotion, `stats()`, or a hit that finds the buffer long) replays the
buffer in order, moving each node to the MRU end and counting its hit. Eviction happens under the
same lock after a replay, so it is exact LRU; the hit and per-key counters are exact too (one
buffered key, one hit).
"""

from __future__ import annotations

import fnmatch
import heapq
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from companion.cache._defaults import L1_MAX_ENTRIES, L1_TTL_S
from companion.cache._keys import check_ttl
from companion.cache._tier import MISSING, Evicted, Found, KeySet, TierStats

__all__ = ["MemoryTier"]

# Replay the read buffer once it holds this many keys: bounds its memory, amortises the lock.
_DRAIN_AT = 64
_new_tuple = tuple.__new__


class _Node:
    __slots__ = ("expires_at", "hits", "key", "next", "prev", "value")

    key: str
    value: object
    expires_at: float
    hits: int
    prev: _Node
    next: _Node


class MemoryTier:
    """In-process tier: LRU eviction beyond `max_entries`, per-entry TTL on an injected clock."""

    def __init__(
        self,
        max_entries: int = L1_MAX_ENTRIES,
        default_ttl_s: float = L1_TTL_S,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if type(max_entries) is not int or max_entries < 1:
            raise ValueError(f"max_entries must be an int >= 1, got {max_entries!r}")
        self.max_entries = max_entries
        self._default_ttl_s = check_ttl(default_ttl_s) or L1_TTL_S
        self._clock = clock
        self._data: dict[str, _Node] = {}
        self._reads: deque[str | None] = deque()  # keys read, None for a miss
        self._lock = threading.Lock()
        self._tags: dict[str, set[str]] = {}
        self._key_tags: dict[str, tuple[str, ...]] = {}
        root = _Node()
        root.prev = root.next = root
        self._root = root
        self._hits = self._misses = self._evictions = self._expirations = 0

    @property
    def default_ttl_s(self) -> float:
        """TTL of entries stored without one."""
        return self._default_ttl_s

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> object:
        """The fresh value, or `MISSING` (the hot path: no lock, no allocation)."""
        node = self._data.get(key)
        if node is not None and node.expires_at > self._clock():
            reads = self._reads
            reads.append(key)
            if len(reads) > _DRAIN_AT:
                self._try_drain()
            return node.value
        if node is None:
            # Absent at this look: a miss, whatever a concurrent set does next. Counted like a
            # hit, by replaying the reads later (None marks a miss), so this path takes no lock.
            reads = self._reads
            reads.append(None)
            if len(reads) > _DRAIN_AT:
                self._try_drain()
            return MISSING
        return self._get_locked(key)

    def get_entry(self, key: str) -> Found | None:
        """The fresh entry with its remaining TTL and tags, or None (the read of a promotion)."""
        now = self._clock()
        lock = self._lock
        lock.acquire()  # not `with`: 0.06 µs against 0.16 on 3.11, twice in every promotion
        try:
            node = self._data.get(key)
            if node is None or node.expires_at <= now:
                self._miss_locked(key, node)
                return None
            # The lock is held anyway: count the hit and move the entry now, after the buffered
            # reads that came before it. (Buffering it too let the buffer of a tier read only this
            # way, an L2 that promotes, grow without bound: nothing else drained it.)
            if self._reads:
                self._drain_locked()
            node.hits += 1
            self._hits += 1
            root = self._root
            if node.next is not root:
                node.prev.next = node.next
                node.next.prev = node.prev
                last = root.prev
                last.next = root.prev = node
                node.prev, node.next = last, root
            # `tuple.__new__` skips the NamedTuple's Python-level `__new__`: 0.1 µs instead of 0.23.
            return _new_tuple(
                Found, (node.value, node.expires_at - now, self._key_tags.get(key, ()))
            )
        finally:
            lock.release()

    def get_many(self, keys: Sequence[str]) -> dict[str, Found]:
        """The fresh entries among `keys`."""
        found = {}
        for key in keys:
            entry = self.get_entry(key)
            if entry is not None:
                found[key] = entry
        return found

    def set(
        self, key: str, value: object, ttl_s: float | None = None, tags: Sequence[str] = ()
    ) -> Sequence[Evicted]:
        """Store as most recently used; return the fresh entries evicted for room."""
        now = self._clock()
        expires_at = now + (self._default_ttl_s if ttl_s is None else ttl_s)
        with self._lock:
            if self._reads:
                self._drain_locked()
            self._store_locked(key, value, expires_at, tags)
            if len(self._data) > self.max_entries:
                return self._evict_locked(now)
        return ()

    def add(
        self, key: str, value: object, ttl_s: float | None = None, tags: Sequence[str] = ()
    ) -> tuple[bool, Sequence[Evicted]]:
        """Store only if no fresh entry has this key."""
        now = self._clock()
        node = self._data.get(key)
        if node is not None and node.expires_at > now:
            # Nothing to store (a demotion into an L2 that still holds the entry): decided without
            # the lock, like a hit, since a refusal changes nothing.
            return False, ()
        expires_at = now + (self._default_ttl_s if ttl_s is None else ttl_s)
        lock = self._lock
        lock.acquire()  # as in `get_entry`: the other lock of a promotion
        try:
            node = self._data.get(key)
            if node is not None and node.expires_at > now:
                return False, ()
            if self._reads:
                self._drain_locked()
            self._store_locked(key, value, expires_at, tags)
            if len(self._data) > self.max_entries:
                return True, self._evict_locked(now)
            return True, ()
        finally:
            lock.release()

    def delete(self, key: str) -> bool:
        """Remove one key; True if it was there (even if expired)."""
        with self._lock:
            return self._remove_locked(key) is not None

    def invalidate(self, pattern: str) -> KeySet:
        """Remove the keys matching a glob; return them."""
        match = re.compile(fnmatch.translate(pattern)).match
        with self._lock:
            removed = {key for key in self._data if match(key)}
            for key in removed:
                self._remove_locked(key)
        return removed

    def invalidate_tags(self, tags: Iterable[str]) -> KeySet:
        """Remove the keys carrying any of `tags`; return them."""
        removed: KeySet = set()
        with self._lock:
            for tag in tags:
                for key in list(self._tags.get(tag, ())):
                    if self._remove_locked(key) is not None:
                        removed.add(key)
        return removed

    def clear(self) -> None:
        """Remove every entry (counters are kept)."""
        with self._lock:
            self._drain_locked()
            self._data.clear()
            self._tags.clear()
            self._key_tags.clear()
            self._root.prev = self._root.next = self._root

    def stats(self) -> TierStats:
        """Counters, after dropping expired entries so that `size` counts fresh ones."""
        now = self._clock()
        with self._lock:
            self._drain_locked()
            for key in [k for k, node in self._data.items() if node.expires_at <= now]:
                self._remove_locked(key)
                self._expirations += 1
            return TierStats(
                size=len(self._data),
                max_entries=self.max_entries,
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                expirations=self._expirations,
            )

    def hot_keys(self, n: int) -> list[tuple[str, int]]:
        """Up to `n` (key, hits since stored) pairs, most hit first."""
        with self._lock:
            self._drain_locked()
            nodes = heapq.nlargest(n, self._data.values(), key=lambda node: node.hits)
            return [(node.key, node.hits) for node in nodes if node.hits]

    def keys(self) -> list[str]:
        """Keys from least to most recently used (expired ones included until dropped)."""
        with self._lock:
            self._drain_locked()
            out, node = [], self._root.next
            while node is not self._root:
                out.append(node.key)
                node = node.next
            return out

    def close(self) -> None:
        """Nothing to release."""

    # Everything below runs with self._lock held.

    def _get_locked(self, key: str) -> object:
        with self._lock:
            node = self._data.get(key)
            if node is None:
                self._misses += 1
                return MISSING
            if node.expires_at > self._clock():
                self._reads.append(key)  # a concurrent set landed since the unlocked look
                return node.value
            self._miss_locked(key, node)
            return MISSING

    def _miss_locked(self, key: str, node: _Node | None) -> None:
        self._misses += 1
        if node is not None:
            self._remove_locked(key)
            self._expirations += 1

    def _try_drain(self) -> None:
        if self._lock.acquire(blocking=False):
            try:
                self._drain_locked()
            finally:
                self._lock.release()

    def _drain_locked(self) -> None:
        reads, data, root = self._reads, self._data, self._root
        count = len(reads)  # readers may append meanwhile: replay only what is there now
        misses = 0
        for _ in range(count):
            key = reads.popleft()
            if key is None:
                misses += 1
                continue
            node = data.get(key)
            if node is None:
                continue
            node.hits += 1
            if node.next is not root:
                node.prev.next = node.next
                node.next.prev = node.prev
                last = root.prev
                last.next = root.prev = node
                node.prev, node.next = last, root
        self._hits += count - misses
        self._misses += misses

    def _store_locked(
        self, key: str, value: object, expires_at: float, tags: Sequence[str]
    ) -> None:
        root = self._root
        node = self._data.get(key)
        if node is None:
            node = _Node()
            node.key, node.value, node.expires_at, node.hits = key, value, expires_at, 0
            self._data[key] = node
        else:
            # Readers may see the new value with the old expiry for an instant: both are valid.
            node.value, node.expires_at, node.hits = value, expires_at, 0
            node.prev.next = node.next
            node.next.prev = node.prev
            if self._key_tags:
                self._untag_locked(key)
        last = root.prev
        last.next = root.prev = node
        node.prev, node.next = last, root
        if tags:
            self._key_tags[key] = tuple(tags)
            for tag in tags:
                self._tags.setdefault(tag, set()).add(key)

    def _remove_locked(self, key: str) -> _Node | None:
        node = self._data.pop(key, None)
        if node is not None:
            node.prev.next = node.next
            node.next.prev = node.prev
            self._untag_locked(key)
        return node

    def _untag_locked(self, key: str) -> None:
        tags = self._key_tags.pop(key, None)
        if tags:
            for tag in tags:
                keys = self._tags.get(tag)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._tags[tag]

    def _evict_locked(self, now: float) -> list[Evicted]:
        data, root, key_tags, evicted = self._data, self._root, self._key_tags, []
        while len(data) > self.max_entries:
            node = root.next
            key = node.key
            del data[key]
            root.next = node.next
            node.next.prev = root
            tags: tuple[str, ...] = ()
            if key_tags:
                tags = key_tags.get(key, ())
                self._untag_locked(key)
            if node.expires_at <= now:
                self._expirations += 1
            else:
                self._evictions += 1
                evicted.append((key, node.value, node.expires_at - now, tags))
        return evicted
