"""The seed's four optimization sections: profiling, L1/L2 caching, monitoring, the pipeline."""

from __future__ import annotations

import asyncio
import itertools
import math
import time

from companion.cache import TieredCache
from companion.demo._section import Section, median_ns
from companion.monitoring import Monitor
from companion.profiling import Profiler

__all__ = ["caching", "monitoring", "pipeline", "profiling"]


def _work(n: int) -> int:
    """Honest CPU work standing in for an expensive call (~0.1-1 ms here)."""
    return sum(math.isqrt(i) for i in range(n))


def profiling() -> Section:
    """Profile two functions and a block; show their statistics."""
    section = Section("1. Performance profiling with statistics")
    profiler = Profiler()
    fast = profiler.profile("demo.fast")(lambda: _work(1_000))
    slow = profiler.profile("demo.slow")(lambda: _work(20_000))
    for _ in range(200):
        fast()
    for _ in range(20):
        slow()
    with profiler.measure("demo.block"):
        _work(50_000)
    for stats in profiler.all_stats():
        p50, p95, p99 = (1000 * (v or 0.0) for v in (stats.p50_s, stats.p95_s, stats.p99_s))
        section.say(
            f"{stats.name:<11} calls {stats.count:>4}  p50 {p50:7.3f} ms  p95 {p95:7.3f} ms  "
            f"p99 {p99:7.3f} ms"
        )
    memory = profiler.memory_usage()
    section.say(
        f"slowest: {profiler.slowest(1)[0].name}; most called: {profiler.most_called(1)[0].name}"
    )
    section.figures = {
        "names": {s.name: s.to_dict() for s in profiler.all_stats()},
        "memory": memory,
    }
    return section


def caching() -> Section:
    """L1 hits, an L2 hit promoted to L1, and the measured speedup of a cached call."""
    section = Section("2. Multi-level caching (L1/L2)")
    cache = TieredCache(namespace="demo")

    @cache.cached(ttl_s=60)
    def expensive(n: int) -> int:
        return _work(n)

    expensive(20_000)
    uncached_ns = median_ns(lambda: _work(20_000), repeat=30)
    cached_ns = median_ns(lambda: expensive(20_000), repeat=2_000)
    section.say(f"uncached call {uncached_ns / 1e3:9.1f} µs (the function itself, same argument)")
    section.say(f"cached call   {cached_ns / 1e3:9.2f} µs (L1 hit through @cached)")
    section.say(f"speedup       {uncached_ns / cached_ns:9.0f}×")
    for i in range(1000):  # in L2 only; cycling through 10x L1's size, every get promotes
        cache.set(f"user:{i}", {"id": i}, tier=2)
    keys = itertools.cycle([f"user:{i}" for i in range(1000)])
    l2_ns = median_ns(lambda: cache.get(next(keys)), repeat=2_000)
    stats = cache.stats().as_dict()
    section.say(
        f"L2 hit promoted to L1: {l2_ns / 1e3:.2f} µs a get "
        f"({stats['l1'].get('promotions', 0)} promotions, {stats['l1'].get('demotions', 0)} demotions)"
    )
    section.figures = {
        "uncached_ns": uncached_ns,
        "cached_ns": cached_ns,
        "speedup": uncached_ns / cached_ns,
        "l2_promotion_ns": l2_ns,
        "stats": stats,
    }
    return section


def monitoring() -> Section:
    """Requests, cache hit rates, a threshold whose alert fires and resolves, health checks."""
    section = Section("3. Real-time monitoring with metrics")
    monitor = Monitor()
    for i in range(100):
        monitor.record_request("/v1/tools/{name}/invoke", 0.002 + (i % 10) * 0.0004, 200)
        monitor.record_request("/v1/execute", 0.006 + (i % 7) * 0.001, 500 if i % 25 == 0 else 200)
    for i in range(40):
        (monitor.record_cache_hit if i % 4 else monitor.record_cache_miss)("l1")
    for endpoint in monitor.endpoints():
        s = monitor.request_stats(endpoint)
        section.say(
            f"{endpoint:<26} {s['count']} requests  p50 {s['p50'] * 1000:.2f} ms  "
            f"p99 {s['p99'] * 1000:.2f} ms  errors {s['error_rate']:.0%}"
        )
    hit_rate = monitor.cache_hit_rate("l1") or 0.0
    section.say(f"cache l1 hit rate {hit_rate:.0%}")
    queue = monitor.gauge("demo_queue_depth", "Jobs waiting.")
    monitor.set_threshold("demo_queue_depth", 10, "WARNING")
    transitions = []
    for value in (25, 30, 2):  # crosses, stays above (no second alert), goes back
        queue.set(value)
        for alert in monitor.evaluate():
            transitions.append(alert)
            section.say(f"queue depth {value}: alert {alert.threshold.name} {alert.state}")
    fired, resolved = transitions[:1], transitions[1:]
    monitor.register_health_check("database", lambda: "reachable")
    monitor.register_health_check("model", _missing_model, critical=False)
    report = asyncio.run(monitor.run_health_checks())
    for check in report.checks:
        section.say(f"health {check.name}: {'ok' if check.ok else 'failed'} {check.error or ''}")
    section.figures = {
        "cache_hit_rate": hit_rate,
        "alerts": [a.to_dict() for a in (*fired, *resolved)],
        "active_alerts": len(monitor.active_alerts()),
        "health": report.to_dict(),
    }
    return section


def _missing_model() -> str:
    raise RuntimeError("no embedding model loaded (not needed here)")


def pipeline() -> Section:
    """One function profiled, cached and monitored, called with repeating arguments."""
    section = Section("4. Integrated optimization pipeline")
    profiler, cache, monitor = Profiler(), TieredCache(namespace="pipeline"), Monitor()

    @profiler.profile("pipeline.operation")
    @cache.cached(ttl_s=60)
    def operation(x: int, y: int) -> int:
        return _work(5_000 + x * y)

    for i in range(200):
        started = time.perf_counter()
        operation(i % 5, i % 8)  # 40 distinct argument pairs: the first of each misses
        monitor.record_request("/api/op", time.perf_counter() - started)
    stats = profiler.stats("pipeline.operation")
    l1 = cache.stats().as_dict()["l1"]
    hit_rate = l1["hits"] / max(l1["hits"] + l1["misses"], 1)
    count, avg_s = (stats.count, stats.avg_s or 0.0) if stats else (0, 0.0)
    section.say(f"200 calls, {count} profiled, avg {avg_s * 1e3:.3f} ms")
    section.say(f"cache hit rate {hit_rate:.0%} (40 distinct argument pairs)")
    request = monitor.request_stats("/api/op")
    section.say(
        f"monitored /api/op: {request['count']} requests, p50 {request['p50'] * 1e6:.1f} µs, "
        f"p99 {request['p99'] * 1e6:.1f} µs"
    )
    section.figures = {"cache_hit_rate": hit_rate, "profile": stats.to_dict() if stats else None}
    return section
