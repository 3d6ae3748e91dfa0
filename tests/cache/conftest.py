"""Fixtures of the cache tests: a fake clock, and caches built on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from companion.cache import MemoryTier, TieredCache
from tests._clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> Iterator[TieredCache]:
    """L1 of 3 entries / 10 s, L2 of 10 entries / 100 s: small enough to watch evictions."""
    with TieredCache(
        MemoryTier(3, 10.0, clock=clock),
        MemoryTier(10, 100.0, clock=clock),
        clock=clock,
        namespace="t",
    ) as built:
        yield built
