"""The sandbox identities (user and group ids, by slot) that one executor's sandboxes run as."""

from __future__ import annotations

import heapq

from companion.execution._errors import SandboxUnavailable

__all__ = ["SandboxIdentities"]


class SandboxIdentities:
    """Slots `0..count-1`, each held by at most one live sandbox: the plain and preloaded pools
    and every session take from the same set, so no two sandboxes ever share a user (a shared
    one would share per-user kernel limits, such as RLIMIT_NPROC, across tenants)."""

    def __init__(self, count: int) -> None:
        self._free = list(range(count))  # a heap: the lowest free slot first

    def take(self) -> int:
        """A free slot, or `SandboxUnavailable` when every identity is held."""
        if not self._free:
            raise SandboxUnavailable("every sandbox identity is in use; retrying")
        return heapq.heappop(self._free)

    def give(self, slot: int) -> None:
        """Free `slot`: call once its sandbox has exited (never while it may still run)."""
        heapq.heappush(self._free, slot)

    @property
    def free(self) -> int:
        """How many slots are free."""
        return len(self._free)
