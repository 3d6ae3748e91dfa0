"""Single flight: concurrent misses for one key run the computation once; the others wait for it.

Threads wait on a lock the leader holds; tasks await a shared task of the running loop (so
cancelling one waiter does not cancel the computation the others wait for). An exception reaches
every waiter and nothing is cached. Flights are keyed by cache key; async flights also by event
loop, since a future can only be awaited on its own loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Flight:
    __slots__ = ("done", "error", "value", "waiters")

    def __init__(self) -> None:
        # Held by the leader until the result is in; a bare Lock is ~10x cheaper than an Event.
        self.done = threading.Lock()
        self.done.acquire()
        self.value: Any = None
        self.error: BaseException | None = None
        self.waiters = 0


class SingleFlight:
    """Deduplicates concurrent computations of the same key, for threads and for tasks."""

    def __init__(self) -> None:
        self._flights: dict[str, _Flight] = {}
        self._tasks: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Task[Any]] = {}

    def run(self, key: str, compute: Callable[[], T]) -> T:
        """Return `compute()`, or the result of the call already running for `key`."""
        mine = _Flight()
        flight = self._flights.setdefault(key, mine)  # atomic: exactly one caller becomes leader
        if flight is not mine:
            flight.waiters += 1
            with flight.done:  # returns once the leader released it
                pass
            if flight.error is not None:
                raise flight.error
            return flight.value  # type: ignore[no-any-return]
        try:
            flight.value = compute()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[key]
            flight.done.release()
        return flight.value  # type: ignore[no-any-return]

    async def run_async(self, key: str, compute: Callable[[], Awaitable[T]]) -> T:
        """Await `compute()`, or the computation already running for `key` on this loop."""
        loop = asyncio.get_running_loop()
        slot = (loop, key)
        task = self._tasks.get(slot)
        if task is None:
            task = loop.create_task(_await(compute))
            self._tasks[slot] = task
            task.add_done_callback(lambda done: self._finish(slot, done))
        # shield: a cancelled waiter leaves the computation running for the others.
        return await asyncio.shield(task)

    def waiting(self, key: str) -> int:
        """How many threads are waiting on the running computation of `key` (for tests)."""
        flight = self._flights.get(key)
        return flight.waiters if flight is not None else 0

    def _finish(self, slot: tuple[asyncio.AbstractEventLoop, str], task: asyncio.Task[Any]) -> None:
        if self._tasks.get(slot) is task:
            del self._tasks[slot]
        if not task.cancelled():
            task.exception()  # retrieved, so a failure nobody awaited is not logged as lost


async def _await(compute: Callable[[], Awaitable[T]]) -> T:
    return await compute()
