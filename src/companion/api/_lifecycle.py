"""Building the subsystems from the settings, wiring their metrics, starting and stopping them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry

from companion.api import _tools
from companion.api._dashboard_feed import DashboardFeed
from companion.api._dependencies import dependency_checks
from companion.api._limits import InFlight, RateLimits
from companion.api._logging import finish_logging
from companion.api._session_owners import SessionOwners
from companion.api._session_relay import SessionRelay
from companion.api._state import AppState
from companion.api._trace_ring import TraceRing
from companion.cache import build_cache
from companion.config import Settings
from companion.errors import CompanionError
from companion.execution import Executor, SandboxUnavailable
from companion.knowledge import ModelDirectory, build_knowledge_base
from companion.monitoring import Monitor, Sampler
from companion.profiling import Profiler
from companion.telemetry import build_telemetry

__all__ = ["build_state", "start", "stop"]

_log = logging.getLogger("companion.api")


def build_state(settings: Settings) -> AppState:
    """The subsystems, not yet started; nothing connects or forks here."""
    registry = CollectorRegistry()
    monitor = Monitor(registry=registry)
    state = AppState(
        settings=settings,
        registry=registry,
        monitor=monitor,
        profiler=Profiler(),
        sampler=Sampler(monitor, interval_s=settings.monitoring_sample_interval_s),
        traces=TraceRing(settings.profiling_trace_ring_entries),
        rate_limits=RateLimits(settings),
        in_flight=InFlight(),
        # Here, not at start: a missing `telemetry` extra stops `create_app`, before serving.
        telemetry=build_telemetry(settings),
    )
    for name, check in dependency_checks(settings).items():
        monitor.register_health_check(name, check, timeout_s=settings.readyz_timeout_s)
    state.dashboard = DashboardFeed(state)
    state.session_relay = SessionRelay(SessionOwners(settings), state.telemetry)
    return state


async def start(state: AppState) -> None:
    """Start the cache, the sandbox pool and the sampler, wiring each one's metrics."""
    settings = state.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await state.open_keys()
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    cache = build_cache(
        redis_url,
        l1_max_entries=settings.cache_l1_max_entries,
        l1_ttl_s=settings.cache_l1_ttl_s,
        l2_max_entries=settings.cache_l2_max_entries,
        l2_ttl_s=settings.cache_l2_ttl_s,
        namespace=settings.cache_namespace,
        redis_prefix=f"{settings.cache_namespace}:cache:",
        redis_timeout_s=settings.cache_redis_timeout_ms / 1000,
        redis_retry_interval_s=settings.cache_redis_retry_interval_s,
    )
    state.cache = cache
    state.monitor.add_collector_source("cache", lambda: cache.stats().as_dict())
    if settings.execution_enabled:
        await _start_executor(state)
    await _tools.start(state)
    await _start_knowledge(state)
    await state.sampler.start()
    await state.dashboard.start()
    await state.session_relay.start()


async def stop(state: AppState) -> None:
    """Stop in reverse order; each part is stopped even if an earlier one fails."""
    try:
        await _stop_parts(state)
    finally:
        finish_logging()


async def _stop_parts(state: AppState) -> None:
    """Each part is stopped even when an earlier one fails; the first failure is re-raised."""

    async def close_keys() -> None:
        if state.key_ring is not None:
            state.key_ring.close()

    steps: list[Callable[[], Awaitable[None]]] = [
        state.dashboard.stop,
        state.sampler.stop,
        lambda: _tools.stop(state),
        state.executor.close if state.executor is not None else _nothing,
        state.knowledge.close if state.knowledge is not None else _nothing,
        state.cache.aclose if state.cache is not None else _nothing,
        close_keys,
        state.rate_limits.close,
        state.session_relay.close,
        # Last: the spans of requests that ended while stopping go out too (bounded wait).
        lambda: asyncio.to_thread(state.telemetry.shutdown),
    ]
    failures: list[Exception] = []
    for step in steps:
        try:
            await step()
        except Exception as exc:  # keep stopping the rest; report after
            _log.exception("stopping a part of the service failed")
            failures.append(exc)
    if failures:
        raise failures[0]


async def _nothing() -> None:
    return None


async def _start_executor(state: AppState) -> None:
    """Start the sandbox pool; without isolation the service runs on and `/readyz` says why."""
    monitor = state.monitor
    runs = monitor.counter(
        "companion_execution_runs_total", "Sandboxed runs by outcome.", ("language", "status")
    )
    durations = monitor.histogram(
        "companion_execution_duration_seconds", "Wall time of sandboxed runs.", ("language",)
    )

    def observe(language: str, status: str, wall_s: float) -> None:
        runs.labels(language, status).inc()
        durations.labels(language).observe(wall_s)

    executor = Executor(state.settings, observer=observe, telemetry=state.telemetry)
    try:
        await executor.start()
    except CompanionError as exc:
        await executor.close()
        state.executor_problem = exc.message
        _log.error("code execution is unavailable: %s", exc.message)
    else:
        state.executor = executor
        monitor.add_collector_source(
            "sandbox", lambda: _pool_stats(executor), label="pool", counters=("replaced", "runs")
        )
        monitor.add_collector_source(
            "sessions",
            lambda: _session_stats(executor),
            label="node",
            counters=("started", "ended"),
        )

    async def sandbox_ready() -> str:
        running = state.require_executor()
        stats = running.pool_stats()
        if stats is None or stats.size == 0:
            raise SandboxUnavailable("no sandbox zygote is running")
        layers = ", ".join(layer.name for layer in running.layers if layer.available)
        return (
            f"{stats.size} of {stats.target_size} zygotes, {stats.waiting} queued; layers: {layers}"
        )

    async def sandbox_pool_full() -> str:
        # Not critical: runs go on with fewer zygotes while the pool starts replacements.
        running = state.require_executor()
        pools = {"plain": running.pool_stats(), "preloaded": running.data_pool_stats()}
        short = [
            f"{name}: {stats.size} of {stats.target_size} zygotes running"
            for name, stats in pools.items()
            if stats is not None and stats.size < stats.target_size
        ]
        if short:
            raise SandboxUnavailable("; ".join(short) + "; replacements are retried")
        return "every zygote running"

    timeout_s = state.settings.readyz_timeout_s
    monitor.register_health_check("sandbox", sandbox_ready, timeout_s=timeout_s)
    monitor.register_health_check(
        "sandbox_pool_size", sandbox_pool_full, timeout_s=timeout_s, critical=False
    )


async def _start_knowledge(state: AppState) -> None:
    """Start the knowledge base; if its store cannot start the service runs on and `/readyz` says why."""
    try:
        # Loading the embedding model reads ~90 MB: off the event loop. Without one, the knowledge
        # base asks `source` again when it needs it (a model exported later loads, no restart).
        source = ModelDirectory(state.settings)
        embedder = await asyncio.to_thread(source.load)
        knowledge = build_knowledge_base(
            state.settings,
            cache=state.cache,
            embedder=embedder,
            monitor=state.monitor,
            embedder_source=source,
        )
        try:
            await knowledge.start()
        except BaseException:
            await knowledge.close()
            raise
    except Exception as exc:
        state.knowledge_problem = f"the knowledge base did not start: {exc}"
        _log.error("%s", state.knowledge_problem)
    else:
        state.knowledge = knowledge

    async def knowledge_ready() -> str:
        return await state.require_knowledge().health()

    state.monitor.register_health_check(
        "knowledge", knowledge_ready, timeout_s=state.settings.readyz_timeout_s
    )


def _session_stats(executor: Executor) -> dict[str, dict[str, Any]]:
    """`companion_sessions_{active,max_sessions,spares,started,ended}`."""
    stats = executor.sessions.stats()
    return {
        "local": {
            "active": stats.active,
            "max_sessions": stats.max_sessions,
            "spares": stats.spares,
            "started": stats.started,
            "ended": stats.ended,
        }
    }


def _pool_stats(executor: Executor) -> dict[str, dict[str, Any]]:
    pools = {"zygotes": executor.pool_stats(), "preloaded": executor.data_pool_stats()}
    return {
        name: {
            "size": stats.size,
            "target_size": stats.target_size,
            "idle": stats.idle,
            "waiting": stats.waiting,
            "replaced": stats.replaced,
            "runs": stats.runs,
        }
        for name, stats in pools.items()
        if stats is not None
    }
