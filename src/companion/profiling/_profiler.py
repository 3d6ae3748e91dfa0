"""`Profiler`: `@profile` and `measure` feeding bounded per-name statistics, plus process usage."""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, ParamSpec, TypeVar, cast, overload

import psutil

from companion.errors import InvalidInput
from companion.profiling._report import SORT_KEYS, render
from companion.profiling._stats import CallStats, ProfileStats
from companion.profiling._trace import Trace

__all__ = ["OVERFLOW_NAME", "Profiler"]

P = ParamSpec("P")
R = TypeVar("R")
Clock = Callable[[], float]

OVERFLOW_NAME = "<overflow>"


class Profiler:
    """Times named functions and blocks; memory stays flat whatever the number of calls or names."""

    def __init__(
        self,
        *,
        clock: Clock = time.perf_counter,
        max_names: int = 1000,
        relative_accuracy: float = 0.01,
        enabled: bool = True,
    ) -> None:
        if max_names < 1:
            raise InvalidInput(f"max_names must be >= 1, got {max_names!r}")
        self._clock = clock
        self._max_names = max_names
        self._relative_accuracy = relative_accuracy
        self._stats: dict[str, CallStats] = {}
        self._lock = threading.Lock()
        self._process: psutil.Process | None = None
        self.enabled = enabled

    def enable(self) -> None:
        """Start recording (calls are timed)."""
        self.enabled = True

    def disable(self) -> None:
        """Stop recording: decorated functions then cost one attribute check."""
        self.enabled = False

    def clear(self) -> None:
        """Forget every statistic (names stay registered so decorated functions keep working)."""
        with self._lock:
            for stats in self._stats.values():
                stats.clear()

    @overload
    def profile(self, name: Callable[P, R]) -> Callable[P, R]: ...
    @overload
    def profile(self, name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
    def profile(self, name: str | Callable[P, R] | None = None) -> Any:
        """Decorate a sync or async function, or a (sync or async) generator function."""
        if callable(name):
            return self._decorate(name, None)
        return lambda fn: self._decorate(fn, name)

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        """Time a block as `name`; a block that raises is counted in `errors` and re-raised."""
        if not self.enabled:
            yield
            return
        stats, clock = self._named(name), self._clock
        start = clock()
        try:
            yield
        except BaseException:
            stats.record_error(clock() - start)
            raise
        stats.record(clock() - start)

    def record(self, name: str, duration_s: float, *, error: bool = False) -> None:
        """Record one call measured elsewhere (e.g. by the HTTP middleware)."""
        if not self.enabled:
            return
        stats = self._named(name)
        if error:
            stats.record_error(duration_s)
        else:
            stats.record(duration_s)

    def trace(self, interval_s: float = 0.001) -> Trace:
        """Deep mode: `with profiler.trace() as t:` captures a sampled call tree of the block."""
        return Trace(interval_s=interval_s)

    def stats(self, name: str) -> ProfileStats | None:
        """Statistics of one name, or None if it was never recorded."""
        stats = self._stats.get(name)
        return None if stats is None else stats.snapshot()

    def all_stats(self) -> list[ProfileStats]:
        """Statistics of every name that has recorded at least one call."""
        with self._lock:
            every = list(self._stats.values())
        return [s for s in (stats.snapshot() for stats in every) if s.count]

    def report(
        self,
        sort_by: str = "total_s",
        *,
        fmt: Literal["text", "json"] = "text",
        limit: int | None = 50,
    ) -> str:
        """The top `limit` names sorted by any column (descending), as a text table or JSON."""
        if sort_by not in SORT_KEYS:
            raise InvalidInput(f"sort_by must be one of {', '.join(SORT_KEYS)}; got {sort_by!r}")
        return render(self.all_stats(), sort_by=sort_by, fmt=fmt, limit=limit)

    def slowest(self, n: int = 10) -> list[ProfileStats]:
        """The `n` names with the highest average duration."""
        return sorted(self.all_stats(), key=lambda s: s.avg_s or 0.0, reverse=True)[:n]

    def most_called(self, n: int = 10) -> list[ProfileStats]:
        """The `n` names called most often."""
        return sorted(self.all_stats(), key=lambda s: s.count, reverse=True)[:n]

    def memory_usage(self) -> dict[str, float]:
        """Process memory: `rss_bytes`, `vms_bytes` and `percent` of physical memory."""
        process = self._proc()
        info = process.memory_info()
        return {"rss_bytes": info.rss, "vms_bytes": info.vms, "percent": process.memory_percent()}

    def cpu_usage(self) -> dict[str, float]:
        """CPU `percent` (of one core) since the previous call, and `threads`; never blocks."""
        process = self._proc()
        return {"percent": process.cpu_percent(interval=None), "threads": process.num_threads()}

    def _proc(self) -> psutil.Process:
        if self._process is None:
            self._process = psutil.Process()
            self._process.cpu_percent(interval=None)  # the first reading is a baseline
        return self._process

    def _named(self, name: str) -> CallStats:
        stats = self._stats.get(name)
        if stats is not None:
            return stats
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"a profiled name must be a non-empty string, got {name!r}")
        with self._lock:
            stats = self._stats.get(name)
            if stats is None:
                if len(self._stats) >= self._max_names:
                    name = OVERFLOW_NAME  # bounded: later names share one entry
                stats = self._stats.setdefault(name, CallStats(name, self._relative_accuracy))
            return stats

    def _decorate(self, fn: Callable[P, R], name: str | None) -> Callable[P, R]:
        stats = self._named(name or f"{fn.__module__}.{fn.__qualname__}")
        if inspect.isasyncgenfunction(fn):
            return cast(Callable[P, R], self._wrap_async_gen(fn, stats))
        if inspect.isgeneratorfunction(fn):
            return cast(Callable[P, R], self._wrap_gen(fn, stats))
        if inspect.iscoroutinefunction(fn):
            return cast(Callable[P, R], self._wrap_async(fn, stats))
        clock = self._clock

        @functools.wraps(fn)
        def profiled(*args: P.args, **kwargs: P.kwargs) -> R:
            if not self.enabled:
                return fn(*args, **kwargs)
            start = clock()
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                stats.record_error(clock() - start)
                raise
            stats.record(clock() - start)
            return result

        return profiled

    def _wrap_async(self, fn: Callable[..., Any], stats: CallStats) -> Callable[..., Any]:
        clock = self._clock

        @functools.wraps(fn)
        async def profiled(*args: Any, **kwargs: Any) -> Any:
            if not self.enabled:
                return await fn(*args, **kwargs)
            start = clock()
            try:
                result = await fn(*args, **kwargs)
            except BaseException:
                stats.record_error(clock() - start)
                raise
            stats.record(clock() - start)
            return result

        return profiled

    def _wrap_gen(self, fn: Callable[..., Any], stats: CallStats) -> Callable[..., Any]:
        # A generator is timed from creation to exhaustion (its consumer's time included).
        clock = self._clock

        @functools.wraps(fn)
        def profiled(*args: Any, **kwargs: Any) -> Any:
            if not self.enabled:
                return (yield from fn(*args, **kwargs))
            start = clock()
            try:
                result = yield from fn(*args, **kwargs)
            except GeneratorExit:
                stats.record(clock() - start)  # closed early by its consumer: not an error
                raise
            except BaseException:
                stats.record_error(clock() - start)
                raise
            stats.record(clock() - start)
            return result

        return profiled

    def _wrap_async_gen(self, fn: Callable[..., Any], stats: CallStats) -> Callable[..., Any]:
        clock = self._clock

        @functools.wraps(fn)
        async def profiled(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            # Iteration is forwarded; `asend`/`athrow` values are not (rare on profiled code).
            if not self.enabled:
                async for item in fn(*args, **kwargs):
                    yield item
                return
            start = clock()
            try:
                async for item in fn(*args, **kwargs):
                    yield item
            except GeneratorExit:
                stats.record(clock() - start)
                raise
            except BaseException:
                stats.record_error(clock() - start)
                raise
            stats.record(clock() - start)

        return profiled
