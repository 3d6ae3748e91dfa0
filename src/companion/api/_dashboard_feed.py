"""The dashboard's data: a point sampled every `dashboard_sample_interval_s`, kept in a ring.

Everything is computed here, in the background, once per interval; `GET /dashboard/data` only
returns the bytes last encoded, so any number of open dashboards costs nothing per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from companion.api._dashboard_session import SessionSigner
from companion.cache import TieredCache
from companion.config import Settings
from companion.execution import Executor
from companion.monitoring import MetricNotFound, Monitor

__all__ = ["DashboardFeed", "FeedSources"]

_log = logging.getLogger("companion.api")
# Latency points cover the current 10 s slot of the windowed sketches and the one before it.
_LATENCY_WINDOW_S = 20.0
_HEALTH_EVERY_S = 15.0


class FeedSources(Protocol):
    """What the feed reads, at each sample: the app's `AppState` is one.

    Declared here so the feed stands below the state that holds it; the cache and the executor
    are read anew each time because the lifespan starts them after the feed is built.
    """

    @property
    def settings(self) -> Settings:
        """The settings (read once, when the feed is built)."""
        ...

    @property
    def monitor(self) -> Monitor:
        """Requests, alerts, health and process metrics."""
        ...

    @property
    def cache(self) -> TieredCache | None:
        """The cache, once started."""
        ...

    @property
    def executor(self) -> Executor | None:
        """The sandbox executor, once started (None when execution is off)."""
        ...


class DashboardFeed:
    """Samples the app's subsystems into a bounded history and keeps the encoded JSON ready."""

    def __init__(self, state: FeedSources, clock: Callable[[], float] = time.time) -> None:
        settings = state.settings
        self._state = state
        self._clock = clock
        self.interval_s = settings.dashboard_sample_interval_s
        secret = settings.dashboard_session_secret
        self.signer = SessionSigner(
            secret.get_secret_value().encode() if secret else None,
            settings.dashboard_session_ttl_s,
        )
        self._points: deque[dict[str, Any]] = deque(maxlen=settings.dashboard_history_entries)
        self._previous: dict[str, Any] = {}
        self._health_at = -1e18
        self._task: asyncio.Task[None] | None = None
        self.body = orjson.dumps(self._payload())

    def sample(self) -> None:
        """Take one point and re-encode the payload (what the task does every interval)."""
        now = self._clock()
        monitor = self._state.monitor
        counts: dict[str, int] = {}
        routes: dict[str, dict[str, Any]] = {}
        elapsed_s = now - self._previous.get("t", now)
        for route in monitor.endpoints():
            count = monitor.request_stats(route)["count"]
            window = monitor.request_stats(route, _LATENCY_WINDOW_S)
            counts[route] = count
            # A route first seen since the last point had zero requests then.
            before = self._previous["counts"].get(route, 0) if self._previous else count
            routes[route] = {
                "count": count,
                "rps": (count - before) / elapsed_s if elapsed_s > 0 else 0.0,
                **{q: _ms(window[q]) for q in ("p50", "p95", "p99")},
            }
        tools = {"calls": _total(monitor, "companion_tools_calls_total")}
        tools["cache_hits"] = _total(monitor, "companion_tools_cache_hits_total")
        point = {
            "t": now,
            "routes": routes,
            "cache": self._cache_rates(),
            "sandbox": self._sandbox(),
            "tools": tools,
            "process": {
                "rss_bytes": monitor.memory.labels().value,
                "cpu_percent": monitor.cpu.labels().value,
            },
        }
        self._previous = {"t": now, "counts": counts}
        self._points.append(point)
        self.body = orjson.dumps(self._payload())

    def _cache_rates(self) -> dict[str, dict[str, Any]]:
        cache = self._state.cache
        if cache is None:
            return {}
        tiers: dict[str, dict[str, Any]] = {}
        for tier, stats in cache.stats().as_dict().items():
            hits, misses = stats.get("hits", 0), stats.get("misses", 0)
            lookups = hits + misses
            tiers[tier] = {
                "hits": hits,
                "misses": misses,
                "hit_rate": hits / lookups if lookups else None,
            }
        return tiers

    def _sandbox(self) -> dict[str, Any]:
        executor = self._state.executor
        stats = executor.pool_stats() if executor is not None else None
        runs: dict[str, float] = {}
        with contextlib.suppress(MetricNotFound):
            counter = self._state.monitor.get("companion_execution_runs_total")
            for (_language, status), child in counter.series():
                runs[status] = runs.get(status, 0.0) + float(getattr(child, "value", 0.0))
        return {
            "runs": runs,
            "queued": stats.waiting if stats is not None else None,
            "zygotes": stats.size if stats is not None else None,
        }

    def _payload(self) -> dict[str, Any]:
        monitor = self._state.monitor
        health = monitor.last_health_report
        return {
            "interval_s": self.interval_s,
            "points": list(self._points),
            "alerts": {
                "active": [alert.to_dict() for alert in monitor.active_alerts()],
                "recent": [alert.to_dict() for alert in monitor.alert_history()[:20]],
            },
            "health": None if health is None else health.to_dict(),
        }

    async def _refresh_health(self) -> None:
        now = self._clock()
        if now - self._health_at >= _HEALTH_EVERY_S:
            self._health_at = now
            await self._state.monitor.run_health_checks()

    async def start(self) -> None:
        """Start sampling in the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dashboard")

    async def stop(self) -> None:
        """Stop sampling."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self._refresh_health()
                self.sample()
            except Exception:
                _log.exception("dashboard sample failed")  # one bad sample must not end the feed
            await asyncio.sleep(self.interval_s)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _total(monitor: Any, name: str) -> float:
    try:
        return float(sum(getattr(child, "value", 0.0) for _, child in monitor.get(name).series()))
    except MetricNotFound:
        return 0.0
