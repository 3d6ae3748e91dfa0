"""Benchmark rows for `companion.monitoring` and `companion.profiling`, each beside its peer."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram as PromHistogram

from companion.bench._case import Case, Operation, Target
from companion.monitoring import Monitor
from companion.profiling import Profiler

__all__ = ["cases"]

_GROUP = "monitoring"
_PROFILED_CALLS = 1_000_000


def _our_counter() -> Operation:
    child = Monitor().counter("bench_ops_total", labels=("kind",)).labels("a")
    return child.inc


def _peer_counter() -> Operation:
    return PromCounter("bench_ops_total", "ops", registry=CollectorRegistry()).inc


def _our_histogram() -> Operation:
    child = Monitor().histogram("bench_duration_seconds").labels()
    return lambda: child.observe(0.0123)


def _peer_histogram() -> Operation:
    histogram = PromHistogram("bench_duration_seconds", "d", registry=CollectorRegistry())
    return lambda: histogram.observe(0.0123)


def _our_request() -> Operation:
    monitor = Monitor()
    return lambda: monitor.record_request("/v1/tools/{name}", 0.0123, 200)


def _peer_request() -> Operation:
    histogram = PromHistogram(
        "bench_request_seconds", "d", ("endpoint",), registry=CollectorRegistry()
    )
    return lambda: histogram.labels("/v1/tools/{name}").observe(0.0123)


def _bare(x: int) -> int:
    return x


def _profiled_call() -> Operation:
    profiled = Profiler().profile("bench.bare")(_bare)
    return lambda: profiled(1)


def _bare_call() -> Operation:
    return lambda: _bare(1)


def _report_after_1m_calls() -> Operation:
    profiler = Profiler()
    profiled = profiler.profile("bench.bare")(_bare)
    for i in range(_PROFILED_CALLS):
        profiled(i)
    return profiler.report


def _our_snapshot() -> Operation:
    monitor = Monitor()
    for i in range(50):
        monitor.record_request(f"/v1/route/{i}", 0.001 * i, 200)
    return monitor.snapshot


def cases() -> list[Case]:
    """The monitoring and profiling rows of `companion bench`."""
    return [
        Case(
            _GROUP,
            "counter inc (cached labels)",
            _our_counter,
            _peer_counter,
            "prometheus_client Counter.inc",
            Target(max_ratio=1.0),
            batch=1000,
        ),
        Case(
            _GROUP,
            "histogram observe (windowed percentiles)",
            _our_histogram,
            _peer_histogram,
            "prometheus_client Histogram.observe",
            Target(max_ratio=1.0),
            batch=1000,
        ),
        Case(
            _GROUP,
            "record_request(endpoint, duration_s, status)",
            _our_request,
            _peer_request,
            "prometheus_client Histogram.labels(ep).observe",
            Target(max_ratio=2.0),
            batch=1000,
        ),
        Case(
            _GROUP,
            "@profile overhead per call",
            _profiled_call,
            _bare_call,
            "bare call",
            Target(max_added_ns=1_500),
            seed_figure="< 1 µs claimed",
            batch=1000,
        ),
        Case(
            _GROUP,
            f"profiler report after {_PROFILED_CALLS:,} calls",
            _report_after_1m_calls,
            target=Target(max_median_ns=10e6),
        ),
        Case(_GROUP, "monitor snapshot, 50 endpoints", _our_snapshot),
    ]
