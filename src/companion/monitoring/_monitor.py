"""`Monitor`: the metric registry, the seed's conveniences, thresholds and health checks in one place."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar, cast

from prometheus_client import CollectorRegistry

from companion.config import setting_default
from companion.monitoring._alerts import Alert, AlertLevel, AlertManager, Threshold
from companion.monitoring._errors import (
    InvalidLabels,
    InvalidMetricName,
    InvalidQuantile,
    InvalidThreshold,
    MetricNotFound,
    MetricTypeConflict,
)
from companion.monitoring._health import CheckFn, HealthCheck, HealthReport, run_checks
from companion.monitoring._metrics import (
    DEFAULT_BUCKETS,
    Counter,
    Gauge,
    Histogram,
    HistogramChild,
    Metric,
)
from companion.monitoring._prometheus import DEFAULT_COUNTER_STATS, MonitorCollector, StatsSource
from companion.monitoring._query import check_window, histogram_stat, quantile_of, window_of
from companion.monitoring._timer import Timer
from companion.monitoring._window import Clock

__all__ = ["Monitor"]

AnyMetric = Counter | Gauge | Histogram
M = TypeVar("M", Counter, Gauge, Histogram)

_SOURCE_NAME = re.compile(r"[a-z_][a-z0-9_]*")
# A threshold below zero can never be meant on these: they only hold non-negative values.
_NON_NEGATIVE_SUFFIXES = ("_total", "_seconds", "_bytes", "_percent", "_ratio", "_threads", "_fds")
_OK_STATUSES = frozenset({"ok", "success", "succeeded"})


class Monitor:
    """Metrics with labels, windowed percentiles, alerts, health checks and Prometheus exposition."""

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        registry: CollectorRegistry | None = None,
        const_labels: Mapping[str, str] | None = None,
        max_series: int = 1000,
        relative_accuracy: float = 0.01,
        slot_s: float = 10.0,
        alert_history: int = 1000,
        on_alert: Callable[[Alert], object] | None = None,
        error_history: int = 100,
    ) -> None:
        self._clock = clock
        self._max_series = max_series
        self._relative_accuracy = relative_accuracy
        self._slot_s = slot_s
        self._families: dict[str, AnyMetric] = {}
        self._sources: dict[str, StatsSource] = {}
        self._checks: dict[str, HealthCheck] = {}
        self._lock = threading.Lock()
        self._alerts = AlertManager(history=alert_history, on_alert=on_alert)
        self._recent_errors: deque[tuple[float, str, str]] = deque(maxlen=error_history)
        self._error_statuses: dict[object, bool] = {}
        self.last_health_report: HealthReport | None = None

        self.dropped_series = self.counter(
            "companion_monitoring_dropped_series_total",
            "Label lookups sent to the overflow series because a metric hit its series limit",
            ("metric",),
            max_series=10_000,
        )
        self.source_errors = self.counter(
            "companion_monitoring_source_errors_total",
            "Stats sources that raised at scrape time",
            ("source",),
        )
        self.request_duration = self.histogram(
            "companion_http_request_duration_seconds",
            "HTTP request duration by route template",
            ("endpoint",),
            max_series=min(max_series, 500),
        )
        self.requests = self.counter(
            "companion_http_requests_total",
            "HTTP requests by route template and status",
            ("endpoint", "status"),
        )
        # Durations of failed requests only: it gives windowed error rates at no hot-path cost.
        self._error_durations = Histogram(
            "companion_http_request_errors",
            "",
            ("endpoint",),
            max_series=min(max_series, 500),
            on_overflow=lambda name: None,
            clock=clock,
            relative_accuracy=relative_accuracy,
            slot_s=slot_s,
        )
        self.cache_lookups = self.counter(
            "companion_cache_lookups_total",
            "Cache lookups by cache and result",
            ("cache", "result"),
        )
        self.errors = self.counter("companion_errors_total", "Errors recorded, by type", ("type",))
        self.memory = self.gauge("companion_process_resident_memory_bytes", "Resident memory")
        self.cpu = self.gauge("companion_process_cpu_percent", "Process CPU use, % of one core")
        self.threads = self.gauge("companion_process_threads", "Threads in the process")
        self.open_fds = self.gauge("companion_process_open_fds", "Open file descriptors")
        self.loop_lag = self.gauge("companion_event_loop_lag_seconds", "Event loop lag")
        if registry is not None:
            registry.register(MonitorCollector(self, const_labels))

    @property
    def clock(self) -> Clock:
        """The injected clock (seconds, monotonic)."""
        return self._clock

    # -- metric families ------------------------------------------------------------------------

    def counter(
        self,
        name: str,
        help: str = "",
        labels: Sequence[str] = (),
        *,
        max_series: int | None = None,
    ) -> Counter:
        """Get or create a counter family (names should end in `_total`)."""
        return self._family(
            Counter, name, labels, lambda: Counter(name, help, labels, **self._kw(max_series))
        )

    def gauge(
        self,
        name: str,
        help: str = "",
        labels: Sequence[str] = (),
        *,
        max_series: int | None = None,
    ) -> Gauge:
        """Get or create a gauge family."""
        return self._family(
            Gauge, name, labels, lambda: Gauge(name, help, labels, **self._kw(max_series))
        )

    def histogram(
        self,
        name: str,
        help: str = "",
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        max_series: int | None = None,
    ) -> Histogram:
        """Get or create a histogram family with windowed percentiles."""

        def create() -> Histogram:
            return Histogram(
                name,
                help,
                labels,
                clock=self._clock,
                buckets=buckets,
                relative_accuracy=self._relative_accuracy,
                slot_s=self._slot_s,
                **self._kw(max_series),
            )

        return self._family(Histogram, name, labels, create)

    def timer(self, name: str, labels: Mapping[str, str] | None = None) -> Timer:
        """A context manager / decorator timing into histogram `name` (created if needed)."""
        labels = dict(labels or {})
        family = self.histogram(name, labels=tuple(labels))
        return Timer(family.labels(*labels.values()), self._clock)

    def get(self, name: str) -> AnyMetric:
        """The family called `name`; `MetricNotFound` if none."""
        try:
            return self._families[name]
        except KeyError:
            raise MetricNotFound(f"no metric named {name!r}") from None

    def metrics(self) -> list[AnyMetric]:
        """Every family, in creation order."""
        with self._lock:
            return list(self._families.values())

    # -- the seed's conveniences ----------------------------------------------------------------

    def record_request(self, endpoint: str, duration_s: float, status: int | str = 200) -> None:
        """Record one request: its duration by endpoint and a count by endpoint and status."""
        self.request_duration.labels(endpoint).add(duration_s)
        self.requests.labels(endpoint, status).inc()
        failed = self._error_statuses.get(status)
        if failed is None:
            failed = self._classify(status)
        if failed:
            self._error_durations.labels(endpoint).add(duration_s)

    def record_cache_hit(self, name: str) -> None:
        """Count a hit of cache `name`."""
        self.cache_lookups.labels(name, "hit").inc()

    def record_cache_miss(self, name: str) -> None:
        """Count a miss of cache `name`."""
        self.cache_lookups.labels(name, "miss").inc()

    def record_error(self, type: str, message: str = "") -> None:
        """Count an error of `type` and keep its message in a bounded list of recent errors."""
        self.errors.labels(type).inc()
        self._recent_errors.append((self._clock(), str(type), str(message)[:500]))

    def record_memory(self, rss_bytes: float) -> None:
        """Set the resident-memory gauge."""
        self.memory.set(rss_bytes)

    def record_cpu(self, percent: float) -> None:
        """Set the CPU gauge."""
        self.cpu.set(percent)

    def recent_errors(self) -> list[dict[str, Any]]:
        """The last recorded errors, newest first."""
        return [{"at_s": at, "type": t, "message": m} for at, t, m in reversed(self._recent_errors)]

    def endpoints(self) -> list[str]:
        """Every endpoint with recorded requests (the overflow label included)."""
        return sorted(values[0] for values, _ in self.request_duration.series())

    def request_stats(self, endpoint: str, window_s: float | None = None) -> dict[str, Any]:
        """`{count, avg, p50, p95, p99, error_rate}` for `endpoint`, all-time or over `window_s`."""
        durations = window_of(self.request_duration, endpoint, window_s)
        errors = window_of(self._error_durations, endpoint, window_s)
        p50, p95, p99 = durations.quantiles((0.5, 0.95, 0.99))
        count = durations.count
        return {
            "count": count,
            "avg": durations.sum / count if count else None,
            "p50": p50,
            "p95": p95,
            "p99": p99,
            "error_rate": errors.count / count if count else 0.0,
        }

    def cache_hit_rate(self, name: str) -> float | None:
        """Hits / lookups of cache `name` as a ratio in [0, 1]; None before any lookup."""
        hits = misses = 0.0
        for (cache, result), child in self.cache_lookups.series():
            if cache == name:
                if result == "hit":
                    hits = child.value
                else:
                    misses = child.value
        total = hits + misses
        return hits / total if total else None

    def cache_names(self) -> list[str]:
        """Every cache with recorded lookups."""
        return sorted({values[0] for values, _ in self.cache_lookups.series()})

    # -- thresholds and alerts ------------------------------------------------------------------

    def set_threshold(
        self,
        metric: str,
        value: float,
        level: AlertLevel | str = AlertLevel.WARNING,
        for_s: float = 0.0,
        labels: Mapping[str, str] | None = None,
        *,
        stat: str | None = None,
        window_s: float | None = None,
        above: bool = True,
    ) -> Threshold:
        """Alert when `stat` of `metric` crosses `value` (see docs/monitoring.md for stats)."""
        family = self.get(metric)
        level = AlertLevel.parse(level)
        if isinstance(family, Histogram):
            stat = stat or "p99"
            quantile_of(stat)
            if window_s is not None:
                check_window(family, window_s)
        elif stat not in (None, "value"):
            raise InvalidQuantile(f"{metric} is a {family.kind}: its only stat is 'value'")
        stat = stat or "value"
        if labels is not None:
            unknown = set(labels) - set(family.labelnames)
            if unknown:
                raise InvalidLabels(f"{metric} has no labels {sorted(unknown)!r}")
        threshold = Threshold(metric, stat, value, level, for_s, labels, window_s, above)
        if value < 0 and (stat == "count" or metric.endswith(_NON_NEGATIVE_SUFFIXES)):
            raise InvalidThreshold(
                f"{metric} ({stat}) is never negative: a threshold of {value!r} cannot be meant"
            )
        self._alerts.add(threshold)
        return threshold

    def evaluate(self, now_s: float | None = None) -> list[Alert]:
        """Check every threshold now; return the alerts fired or resolved by this call."""
        return self._alerts.evaluate(self._read, self._clock() if now_s is None else now_s)

    def active_alerts(self) -> list[Alert]:
        """Alerts firing now, most severe first."""
        return self._alerts.active()

    def alert_history(self) -> list[Alert]:
        """Recent fire/resolve events, newest first (bounded)."""
        return self._alerts.history()

    # -- health checks and collector sources ----------------------------------------------------

    def register_health_check(
        self,
        name: str,
        fn: CheckFn,
        timeout_s: float = setting_default("readyz_timeout_s"),
        critical: bool = True,
    ) -> None:
        """Add (or replace) a readiness check; sync or async, run with `timeout_s`."""
        check = HealthCheck(name, fn, timeout_s, critical)
        with self._lock:
            self._checks[name] = check

    async def run_health_checks(self) -> HealthReport:
        """Run every check concurrently; failures are reported, never raised."""
        with self._lock:
            checks = list(self._checks.values())
        report = await run_checks(checks)
        self.last_health_report = report
        return report

    def add_collector_source(
        self,
        name: str,
        fn: Callable[[], Mapping[str, Mapping[str, float]]],
        *,
        label: str = "tier",
        counters: Iterable[str] = DEFAULT_COUNTER_STATS,
    ) -> None:
        """Export `fn()` (e.g. `{"l1": {"hits": 3}}`) at scrape time as `companion_<name>_<stat>`."""
        if not isinstance(name, str) or not _SOURCE_NAME.fullmatch(name):
            raise InvalidMetricName(f"source name must match [a-z_][a-z0-9_]*, got {name!r}")
        source = StatsSource(name, fn, label, frozenset(counters))
        with self._lock:
            self._sources[name] = source

    def sources(self) -> list[StatsSource]:
        """Registered stats sources."""
        with self._lock:
            return list(self._sources.values())

    def generate_report(self, fmt: Literal["text", "json"] = "text") -> str:
        """A human report (text table) or the same data as a JSON document."""
        from companion.monitoring._report import render

        return render(self, fmt)

    def snapshot(self) -> dict[str, Any]:
        """The report's data as a JSON-ready dict (every endpoint, cache, alert and check)."""
        from companion.monitoring._report import snapshot

        return snapshot(self)

    # -- internals ------------------------------------------------------------------------------

    def _kw(self, max_series: int | None) -> dict[str, Any]:
        return {
            "max_series": self._max_series if max_series is None else max_series,
            "on_overflow": self._count_overflow,
        }

    def _count_overflow(self, name: str) -> None:
        if name != self.dropped_series.name:
            self.dropped_series.labels(name).inc()

    def _family(
        self, kind: type[M], name: str, labels: Sequence[str], create: Callable[[], M]
    ) -> M:
        with self._lock:
            existing = self._families.get(name)
            if existing is None:
                family = create()
                self._families[name] = family
                return family
        if not isinstance(existing, kind) or existing.labelnames != tuple(labels):
            raise MetricTypeConflict(
                f"{name} already exists as a {existing.kind} with labels {existing.labelnames!r}"
            )
        return existing

    def _classify(self, status: int | str) -> bool:
        text = str(status).strip().lower()
        failed = int(text) >= 500 if text.isdigit() else text not in _OK_STATUSES
        if len(self._error_statuses) < 1000:
            self._error_statuses[status] = failed
        return failed

    def _read(self, threshold: Threshold) -> Iterable[tuple[dict[str, str], float]]:
        family = cast(Metric[Any], self._families[threshold.metric])
        wanted = threshold.labels or {}
        for values, child in family.series():
            labels = dict(zip(family.labelnames, values, strict=True))
            if any(labels.get(k) != v for k, v in wanted.items()):
                continue
            if isinstance(child, HistogramChild):
                yield labels, histogram_stat(child, threshold.stat, threshold.window_s)
            else:
                yield labels, child.value
