"""A pool of zygotes behind a bounded queue; dead or worn-out zygotes are replaced."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
from dataclasses import dataclass
from typing import Any

from companion.execution._errors import ExecutorBusy, SandboxUnavailable
from companion.execution._launcher import LaunchPlan
from companion.execution._zygote import Zygote, ZygoteFailed, service_fds_per_zygote

__all__ = ["PoolStats", "ZygotePool"]

_log = logging.getLogger("companion.execution")
_START_TIMEOUT_S = 30.0
_SPARE_FDS = 1024  # for everything else the service opens (connections, files, databases)


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot for metrics and `/readyz`."""

    size: int
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


class ZygotePool:
    """`size` zygotes; callers wait in a queue of at most `max_queue`, then get `ExecutorBusy`."""

    def __init__(self, plan: LaunchPlan, size: int, max_queue: int, runs_per_worker: int) -> None:
        self._plan = plan
        self._size = size
        self._max_queue = max_queue
        self._runs_per_worker = runs_per_worker
        self._idle: asyncio.Queue[Zygote] = asyncio.Queue()
        self._all: dict[int, Zygote] = {}
        self._waiting = 0
        self._replaced = 0
        self._runs = 0
        self._replacing: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        """Start every zygote concurrently; fail if none can start."""
        reserve_fds(self._size * service_fds_per_zygote(self._plan.init["languages"]))
        results = await asyncio.gather(
            *(self._start_one(index) for index in range(self._size)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if len(failures) == self._size:
            raise SandboxUnavailable(f"no sandbox could start: {failures[0]}")
        for failure in failures:
            _log.error("a sandbox zygote failed to start: %s", failure)

    async def _start_one(self, index: int) -> None:
        zygote = Zygote(self._plan, index)
        try:
            await zygote.start(_START_TIMEOUT_S)
        except BaseException:
            await zygote.kill()
            raise
        self._all[index] = zygote
        self._idle.put_nowait(zygote)

    @property
    def landlock_abi(self) -> int:
        """The Landlock ABI the zygotes applied (0: none)."""
        return max((z.landlock_abi for z in self._all.values()), default=0)

    def stats(self) -> PoolStats:
        """Current size, idle count and queue depth."""
        return PoolStats(
            size=len(self._all),
            idle=self._idle.qsize(),
            waiting=self._waiting,
            max_queue=self._max_queue,
            replaced=self._replaced,
            runs=self._runs,
        )

    async def run(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Run on the next free zygote; `ZygoteFailed` when it died (it is replaced meanwhile)."""
        if self._closed:
            raise SandboxUnavailable("the sandbox pool is shut down")
        if self._idle.empty() and self._waiting >= self._max_queue:
            raise ExecutorBusy(
                f"All {self._size} sandboxes are busy and {self._waiting} runs are queued.",
                retry_after_s=1.0,
            )
        zygote = self._idle_now() or await self._wait_for_zygote(timeout_s)
        self._runs += 1
        try:
            result = await zygote.run(request, timeout_s)
        except ZygoteFailed:
            self._replace(zygote)
            raise
        except BaseException:
            # Cancelled mid-run: the zygote's pipe may hold a half-read frame; never reuse it.
            self._replace(zygote)
            raise
        if zygote.runs >= self._runs_per_worker:
            self._replace(zygote)
        else:
            self._idle.put_nowait(zygote)
        return result

    def _idle_now(self) -> Zygote | None:
        """A live idle zygote without waiting (and without arming a timer), or None."""
        while not self._idle.empty():
            zygote = self._idle.get_nowait()
            if zygote.alive:
                return zygote
            _log.warning("sandbox zygote %d died while idle; replacing it", zygote.index)
            self._replace(zygote)
        return None

    async def _wait_for_zygote(self, timeout_s: float) -> Zygote:
        self._waiting += 1
        try:
            async with asyncio.timeout(timeout_s):
                return await self._healthy_zygote()
        except TimeoutError:
            if not self._all:
                raise SandboxUnavailable("no sandbox is running (replacements failed)") from None
            raise ExecutorBusy("Timed out waiting for a free sandbox.", retry_after_s=1.0) from None
        finally:
            self._waiting -= 1

    async def _healthy_zygote(self) -> Zygote:
        """The next idle zygote that is still alive; dead ones found idle are replaced."""
        while True:
            zygote = await self._idle.get()
            if zygote.alive:
                return zygote
            _log.warning("sandbox zygote %d died while idle; replacing it", zygote.index)
            self._replace(zygote)

    def _replace(self, zygote: Zygote) -> None:
        self._all.pop(zygote.index, None)
        self._replaced += 1
        task = asyncio.create_task(self._respawn(zygote))
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _respawn(self, old: Zygote) -> None:
        await old.close()
        if self._closed:
            return
        try:
            await self._start_one(old.index)
        except Exception as exc:  # logged; the pool runs on with one fewer zygote
            _log.error("could not replace sandbox zygote %d: %s", old.index, exc)

    async def close(self) -> None:
        """Stop every zygote and wait for replacements in flight."""
        self._closed = True
        for task in list(self._replacing):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(zygote.close() for zygote in self._all.values()))
        self._all.clear()
