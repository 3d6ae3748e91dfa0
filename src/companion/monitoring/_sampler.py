"""The background sampler: process gauges and event-loop lag every `interval_s`, then thresholds.

This is the only place that calls psutil (30-90 µs a call), so nothing on the request path does.
CPU percent is `cpu_percent(interval=None)`: the share since the previous sample, never blocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

import psutil

from companion.config import setting_default
from companion.errors import InvalidInput
from companion.monitoring._monitor import Monitor

__all__ = ["Sampler"]

_log = logging.getLogger(__name__)


class Sampler:
    """Samples process metrics into a `Monitor` and evaluates its thresholds, as an asyncio task."""

    def __init__(
        self,
        monitor: Monitor,
        *,
        interval_s: float = setting_default("monitoring_sample_interval_s"),
        process: psutil.Process | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not interval_s > 0:
            raise InvalidInput(f"interval_s must be > 0, got {interval_s!r}")
        self._monitor = monitor
        self._interval_s = float(interval_s)
        self._process = process or psutil.Process()
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._process.cpu_percent(None)  # prime: the first reading is always 0.0

    @property
    def running(self) -> bool:
        """Whether the background task is alive."""
        return self._task is not None and not self._task.done()

    def sample_once(self, loop_lag_s: float | None = None) -> None:
        """Take one sample now and evaluate thresholds (what the task does each interval)."""
        monitor, process = self._monitor, self._process
        with process.oneshot():
            monitor.record_memory(process.memory_info().rss)
            monitor.record_cpu(process.cpu_percent(None))
            monitor.threads.set(process.num_threads())
            with contextlib.suppress(AttributeError, psutil.Error):  # num_fds is POSIX-only
                monitor.open_fds.set(process.num_fds())
        if loop_lag_s is not None:
            monitor.loop_lag.set(max(loop_lag_s, 0.0))
        monitor.evaluate()

    async def start(self) -> None:
        """Start the task in the running loop (idempotent)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="companion-sampler"
            )

    async def stop(self) -> None:
        """Cancel the task and wait for it to finish."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Sampler:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        lag_s: float | None = None
        while True:
            try:
                self.sample_once(lag_s)
            except Exception:
                # One bad sample (a vanished /proc entry, a broken callback) must not end sampling.
                _log.exception("monitoring sample failed")
            before = loop.time()
            await self._sleep(self._interval_s)
            # How late the loop woke us is how long other callbacks held it.
            lag_s = loop.time() - before - self._interval_s
