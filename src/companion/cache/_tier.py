"""The `Tier` protocol every cache level implements, and the small records tiers exchange."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, NamedTuple, Protocol, runtime_checkable

__all__ = [
    "MISSING",
    "Evicted",
    "Found",
    "Invalidation",
    "KeySet",
    "SharedTier",
    "Tier",
    "TierStats",
]


KeySet = set[str]  # spelled once here: inside tier classes `set` names the method


class _Missing:
    """Type of `MISSING`: absent, as distinct from a cached `None`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class Found(NamedTuple):
    """An entry read for promotion: its value, the seconds it has left and its tags."""

    value: object
    ttl_s: float
    tags: tuple[str, ...]


# An entry a tier dropped for room while still fresh (a demotion candidate):
# (key, value, remaining ttl_s, tags). A plain tuple: NamedTuple construction costs ~0.3 µs.
Evicted = tuple[str, object, float, tuple[str, ...]]


class Invalidation(NamedTuple):
    """What another node removed: some keys, a glob pattern, some tags, or everything."""

    keys: tuple[str, ...] = ()
    pattern: str | None = None
    tags: tuple[str, ...] = ()
    everything: bool = False


@dataclass(frozen=True, slots=True)
class TierStats:
    """Counters of one tier since it was built; `size` is counted when asked."""

    size: int
    max_entries: int | None
    hits: int
    misses: int
    evictions: int
    expirations: int
    promotions: int = 0
    demotions: int = 0
    errors: int = 0

    @property
    def hit_rate(self) -> float:
        """Hits over lookups, 0.0 before the first lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, `hit_rate` included."""
        return {**asdict(self), "hit_rate": self.hit_rate}


class Tier(Protocol):
    """One cache level. Keys are already namespaced; TTLs already validated (seconds > 0)."""

    @property
    def default_ttl_s(self) -> float:
        """TTL of entries stored without one."""
        ...

    def get(self, key: str) -> object:
        """The fresh value, or `MISSING`."""
        ...

    def get_entry(self, key: str) -> Found | None:
        """The fresh entry with its remaining TTL and tags (for promotion), or None."""
        ...

    def get_many(self, keys: Sequence[str]) -> dict[str, Found]:
        """The fresh entries among `keys`, in one round trip where the tier is remote."""
        ...

    def set(
        self, key: str, value: object, ttl_s: float | None, tags: Sequence[str]
    ) -> Sequence[Evicted]:
        """Store (replacing); return the fresh entries evicted to make room."""
        ...

    def add(
        self, key: str, value: object, ttl_s: float | None, tags: Sequence[str]
    ) -> tuple[bool, Sequence[Evicted]]:
        """Store only if absent; return whether stored and the entries evicted for it."""
        ...

    def delete(self, key: str) -> bool:
        """Remove one key; True if it was there."""
        ...

    def invalidate(self, pattern: str) -> KeySet:
        """Remove the keys matching a glob (`*`, `?`, `[...]`); return them."""
        ...

    def invalidate_tags(self, tags: Iterable[str]) -> KeySet:
        """Remove the keys carrying any of `tags`; return them."""
        ...

    def clear(self) -> None:
        """Remove every entry of this tier."""
        ...

    def stats(self) -> TierStats:
        """Counters and current size."""
        ...

    def hot_keys(self, n: int) -> list[tuple[str, int]]:
        """Up to `n` (key, hits) pairs, most hit first; empty where the tier does not track it."""
        ...

    def close(self) -> None:
        """Release connections and threads; idempotent."""
        ...


@runtime_checkable
class SharedTier(Tier, Protocol):
    """A tier several nodes share: it tells each node what the others removed."""

    def subscribe(self, listener: Callable[[Invalidation], None]) -> None:
        """Call `listener` (from a background thread) for every other node's removal."""
        ...
