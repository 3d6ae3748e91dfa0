"""A pool of zygotes shared fairly by tenants; dead, hung or worn-out zygotes are replaced.

Fairness: a tenant holds at most `max_per_tenant` zygotes at once, and when a zygote comes free it
goes to the waiting tenant that holds the fewest (the longest waiter among equals), not to whoever
queued first. So one tenant saturating its allowance with long runs never makes another tenant's
short run wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from companion.execution._child_run import OutputListener
from companion.execution._errors import ExecutorBusy, SandboxUnavailable
from companion.execution._identities import SandboxIdentities
from companion.execution._launcher import LaunchPlan
from companion.execution._zygote import Zygote, ZygoteLost, service_fds_per_zygote

__all__ = ["PoolStats", "ZygotePool"]

_log = logging.getLogger("companion.execution")
_START_TIMEOUT_S = 30.0
_SPARE_FDS = 1024  # for everything else the service opens (connections, files, databases)
# A replacement that fails to start is retried after this long, doubling up to the maximum.
_RESPAWN_BACKOFF_S = 0.5
_RESPAWN_BACKOFF_MAX_S = 30.0
# A run whose zygote failed before the run's request reached a child moves to another zygote.
_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot for metrics and `/readyz`."""

    size: int
    target_size: int
    idle: int
    waiting: int
    max_queue: int
    replaced: int
    runs: int


def reserve_fds(needed: int) -> None:
    """Raise the soft open-files limit (toward the hard one) so `needed` more fds fit: a large pool
    holds thousands, and service managers often start processes with a soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = len(os.listdir("/proc/self/fd")) + needed + _SPARE_FDS
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    if raised < wanted:
        _log.warning(
            "the sandbox pool needs about %d open files but the hard limit is %d; lower "
            "COMPANION_EXECUTION_POOL_SIZE or raise the limit (ulimit -n)",
            wanted,
            hard,
        )


@dataclass(eq=False)
class _Waiter:
    tenant: str
    granted: asyncio.Future[Zygote] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ZygotePool:
    """`size` zygotes; callers wait in a queue of at most `max_queue`, then get `ExecutorBusy`."""

    def __init__(
        self,
        plan: LaunchPlan,
        size: int,
        max_queue: int,
        runs_per_worker: int,
        *,
        identities: SandboxIdentities,
        max_per_tenant: int | None = None,
        first_index: int = 0,
    ) -> None:
        """`first_index`: zygotes are numbered from it (their scratch folders and log lines):
        pools of one executor take ranges apart."""
        self._plan = plan
        self._size = size
        self._max_queue = max_queue
        self._runs_per_worker = runs_per_worker
        self._max_per_tenant = max_per_tenant or size
        self._idle: deque[Zygote] = deque()
        self._all: dict[int, Zygote] = {}
        self._waiters: deque[_Waiter] = deque()
        self._held: dict[str, int] = {}  # zygotes each tenant holds now
        self._replaced = 0
        self._runs = 0
        self._replacing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._closing = asyncio.Event()
        self._started = first_index
        self._renewing: set[Zygote] = set()
        self._identities = identities

    async def start(self) -> None:
        """Start every zygote concurrently; fail if none can start."""
        reserve_fds(self._size * service_fds_per_zygote(self._plan.init["languages"]))
        results = await asyncio.gather(
            *(self._start_one() for _ in range(self._size)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if len(failures) == self._size:
            raise SandboxUnavailable(f"no sandbox could start: {failures[0]}")
        for failure in failures:
            _log.error("a sandbox zygote failed to start: %s", failure)
            self._respawn_later(_RESPAWN_BACKOFF_S)

    async def _start_one(self) -> None:
        self._started += 1  # every zygote gets its own number (its scratch, its log lines)
        # And an identity no live sandbox has (of this pool, another, or a session).
        slot = self._identities.take()
        zygote = Zygote(self._plan, self._started, slot, on_failure=self._on_failure)
        try:
            await zygote.start(_START_TIMEOUT_S)
        except BaseException:
            await self._close(zygote, kill=True)
            raise
        self._all[zygote.index] = zygote
        self._release(zygote)

    def pids(self) -> list[int]:
        """The process ids of the live zygotes (each the top of its sandbox's process tree)."""
        return [pid for zygote in self._all.values() if (pid := zygote.pid) is not None]

    @property
    def landlock_abi(self) -> int:
        """The Landlock ABI the zygotes applied (0: none)."""
        return max((z.landlock_abi for z in self._all.values()), default=0)

    def stats(self) -> PoolStats:
        """Current size (live zygotes), the configured size, idle count and queue depth."""
        return PoolStats(
            size=len(self._all),
            target_size=self._size,
            idle=len(self._idle),
            waiting=len(self._waiters),
            max_queue=self._max_queue,
            replaced=self._replaced,
            runs=self._runs,
        )

    async def run(
        self,
        request: dict[str, Any],
        timeout_s: float,
        tenant: str = "default",
        listener: OutputListener | None = None,
    ) -> dict[str, Any]:
        """Run on a zygote this tenant may take; `ZygoteFailed` when it died mid-run (it is
        replaced meanwhile). A zygote lost before the run started is replaced and the run retried."""
        if self._closed:
            raise SandboxUnavailable("the sandbox pool is shut down")
        for attempt in range(_ATTEMPTS):
            zygote = await self._acquire(tenant, timeout_s)
            self._runs += 1
            try:
                result = await zygote.run(request, timeout_s, listener)
            except ZygoteLost:
                self._replace(zygote)
                if attempt + 1 == _ATTEMPTS:
                    raise
                continue
            except asyncio.CancelledError:
                # The caller went away (a streaming client hung up): the run's child was killed
                # through its pidfd, and its pipes were its own, so the zygote serves on; its
                # next run waits for the killed child's `finished` as after any run.
                self._release(zygote)
                raise
            except BaseException:
                # Failed mid-run (the zygote broke the protocol, say): never reuse it.
                self._replace(zygote)
                raise
            finally:
                self._held[tenant] -= 1
                if not self._held[tenant]:
                    del self._held[tenant]
                # The tenant may be under its share again: a waiter of its own may now take an
                # idle zygote kept for others (its zygote below may be being replaced instead).
                self._grant_idle()
            if zygote.runs >= self._runs_per_worker and zygote not in self._renewing:
                # Worn out: it serves on until its successor is ready, so the pool never shrinks
                # (retiring first emptied the pool for ~0.3 s when zygotes wore out together).
                self._renewing.add(zygote)
                self._spawn(self._renew(zygote))
            self._release(zygote)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acquire(self, tenant: str, timeout_s: float) -> Zygote:
        """A live zygote for `tenant`, at once when one is idle and the tenant is under its share."""
        if self._held.get(tenant, 0) < self._max_per_tenant and (zygote := self._idle_now()):
            self._held[tenant] = self._held.get(tenant, 0) + 1
            return zygote
        if len(self._waiters) >= self._max_queue:
            raise ExecutorBusy(
                f"All {self._size} sandboxes are busy and {len(self._waiters)} runs are queued.",
                retry_after_s=1.0,
            )
        waiter = _Waiter(tenant)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                return await waiter.granted  # `_release` counted it in `_held`
        except TimeoutError:
            if not self._all:
                raise SandboxUnavailable("no sandbox is running (replacements failed)") from None
            raise ExecutorBusy("Timed out waiting for a free sandbox.", retry_after_s=1.0) from None
        except BaseException:
            if waiter.granted.done() and not waiter.granted.cancelled():
                # Granted in the same loop turn as the cancellation: hand the zygote on.
                self._held[tenant] -= 1
                self._release(waiter.granted.result())
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _idle_now(self) -> Zygote | None:
        """A live idle zygote, one that has finished wiping after its last run if any has (a
        run handed to a zygote still wiping waits for it); None when none is idle. Dead ones
        found idle are replaced."""
        for zygote in [z for z in self._idle if not z.alive]:
            _log.warning("sandbox zygote %d died while idle; replacing it", zygote.index)
            self._idle.remove(zygote)
            self._replace(zygote)
        chosen = next((z for z in self._idle if z.clean), None) or next(iter(self._idle), None)
        if chosen is not None:
            self._idle.remove(chosen)
        return chosen

    def _release(self, zygote: Zygote) -> None:
        """Give a free zygote to the fairest waiter, or put it back in the idle list."""
        if self._all.get(zygote.index) is not zygote:
            self._spawn(self._close(zygote))  # retired while it ran: its successor serves already
            return
        if not zygote.alive:
            self._replace(zygote)
            return
        waiter = self._next_waiter()
        if waiter is None:
            self._idle.append(zygote)
            return
        self._waiters.remove(waiter)
        self._held[waiter.tenant] = self._held.get(waiter.tenant, 0) + 1
        waiter.granted.set_result(zygote)

    def _grant_idle(self) -> None:
        """Hand idle zygotes to waiters that may take them now."""
        while self._idle and self._next_waiter() is not None:
            zygote = self._idle_now()
            if zygote is None:
                return
            self._release(zygote)

    def _next_waiter(self) -> _Waiter | None:
        """The waiter whose tenant holds the fewest zygotes and is under its share; the oldest
        such waiter on a tie (the deque is in arrival order)."""
        best: _Waiter | None = None
        for waiter in self._waiters:
            if waiter.granted.done():
                continue
            held = self._held.get(waiter.tenant, 0)
            if held < self._max_per_tenant and (
                best is None or held < self._held.get(best.tenant, 0)
            ):
                best = waiter
        return best

    def _on_failure(self, zygote: Zygote) -> None:
        """A zygote failed on its own (exited, hung, broke the protocol): an idle one is replaced
        now; a busy one when its run returns."""
        if zygote in self._idle:
            self._idle.remove(zygote)
            self._replace(zygote)

    def _replace(self, zygote: Zygote) -> None:
        if self._all.get(zygote.index) is not zygote:
            return  # already being replaced
        del self._all[zygote.index]
        self._replaced += 1
        self._spawn(self._respawn(zygote))

    async def _close(self, zygote: Zygote, *, kill: bool = False) -> None:
        """Stop a zygote, then free its identity for a successor (never while it may run)."""
        try:
            await (zygote.kill() if kill else zygote.close())
        finally:
            self._identities.give(zygote.slot)

    def _respawn_later(self, delay_s: float) -> None:
        self._spawn(self._respawn(None, delay_s))

    async def _renew(self, old: Zygote) -> None:
        """Start the successor of a worn-out zygote, then retire it (now if idle, else when its
        run returns); if the successor cannot start, the old one serves on and tries again later."""
        try:
            if self._closed:
                return
            try:
                await self._start_one()
            except Exception as exc:
                _log.error("could not renew sandbox zygote %d: %s", old.index, exc)
                return
            if self._all.get(old.index) is old:
                del self._all[old.index]
                self._replaced += 1
                if old in self._idle:
                    self._idle.remove(old)
                    await self._close(old)
        finally:
            self._renewing.discard(old)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _respawn(self, old: Zygote | None, delay_s: float = 0.0) -> None:
        """Start a zygote in place of `old`, retrying with backoff until it starts or the pool
        closes: the pool returns to its configured size by itself."""
        if old is not None:
            await self._close(old)
        while True:
            if delay_s:
                # Woken early by `close`: a replacement in progress is awaited, never cancelled
                # (cancelling a subprocess start leaks its transport).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay_s)
            if self._closed:
                return
            try:
                await self._start_one()
                return
            except Exception as exc:  # logged; retried below
                delay_s = min(max(delay_s * 2, _RESPAWN_BACKOFF_S), _RESPAWN_BACKOFF_MAX_S)
                _log.error(
                    "could not start a sandbox zygote (retrying in %.1f s): %s", delay_s, exc
                )

    async def close(self) -> None:
        """Stop every zygote and wait for replacements in flight."""
        self._closed = True
        self._closing.set()
        for task in list(self._replacing):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(self._close(zygote) for zygote in self._all.values()))
        self._all.clear()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.granted.done():
                waiter.granted.set_exception(SandboxUnavailable("the sandbox pool is shut down"))
