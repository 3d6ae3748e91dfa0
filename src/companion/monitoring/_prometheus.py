"""A `prometheus_client` collector that reads the monitor's own metrics at scrape time.

Recording never touches `prometheus_client`; a scrape converts each family: counters and gauges
directly, histograms into cumulative `le` buckets read from the all-time sketch (a value within the
sketch's relative accuracy of a bucket bound may be counted in the neighbouring bucket).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric as PromMetric
from prometheus_client.registry import Collector

from companion.monitoring._alerts import Alert
from companion.monitoring._health import HealthReport
from companion.monitoring._metrics import Counter, Gauge, Histogram

__all__ = ["DEFAULT_COUNTER_STATS", "MonitorCollector", "StatsSource"]

_log = logging.getLogger(__name__)
_STAT_NAME = re.compile(r"[a-z_][a-z0-9_]*")

# Stats of a source exported as counters (`_total`); every other stat is a gauge.
DEFAULT_COUNTER_STATS = frozenset(
    {"hits", "misses", "evictions", "expirations", "promotions", "demotions", "errors", "sets"}
)


class CollectedMonitor(Protocol):
    """What a scrape reads from the monitor (`Monitor` is one; declared here so this module
    sits below the monitor instead of importing it back)."""

    source_errors: Counter
    last_health_report: HealthReport | None

    def sources(self) -> list[StatsSource]:
        """The registered stats sources."""
        ...

    def metrics(self) -> list[Counter | Gauge | Histogram]:
        """Every metric family."""
        ...

    def active_alerts(self) -> list[Alert]:
        """Alerts firing now."""
        ...


@dataclass(frozen=True, slots=True)
class StatsSource:
    """A callable read at scrape time returning `{label_value: {stat: number}}`."""

    name: str
    fn: Callable[[], Mapping[str, Mapping[str, float]]]
    label: str = "tier"
    counters: frozenset[str] = DEFAULT_COUNTER_STATS


class MonitorCollector(Collector):
    """Exposes a `Monitor` through any `CollectorRegistry`."""

    def __init__(
        self, monitor: CollectedMonitor, const_labels: Mapping[str, str] | None = None
    ) -> None:
        self._monitor = monitor
        self._const_names = tuple((const_labels or {}).keys())
        self._const_values = tuple((const_labels or {}).values())

    def describe(self) -> list[PromMetric]:
        """Nothing up front: families are only known at scrape time."""
        return []

    def collect(self) -> Iterator[PromMetric]:
        """Yield every family, then the stats sources, alert and health gauges."""
        # Sources first: one that fails bumps an error counter this same scrape should show.
        from_sources = [m for source in self._monitor.sources() for m in self._source(source)]
        for family in self._monitor.metrics():
            if isinstance(family, Histogram):
                yield self._histogram(family)
            elif isinstance(family, Counter):
                yield self._simple(CounterMetricFamily, family)
            elif isinstance(family, Gauge):
                yield self._simple(GaugeMetricFamily, family)
        yield from from_sources
        yield from self._status()

    def _labels(self, names: tuple[str, ...]) -> list[str]:
        return [*self._const_names, *names]

    def _simple(
        self,
        kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
        family: Counter | Gauge,
    ) -> PromMetric:
        out = kind(family.name, family.help, labels=self._labels(family.labelnames))
        for values, child in family.series():
            out.add_metric([*self._const_values, *values], child.value)
        return out

    def _histogram(self, family: Histogram) -> PromMetric:
        out = HistogramMetricFamily(
            family.name, family.help, labels=self._labels(family.labelnames)
        )
        bounds = family.buckets
        for values, child in family.series():
            sketch = child.total()
            cumulative = sketch.cumulative_counts(bounds)
            buckets = [(f"{b:g}", float(n)) for b, n in zip(bounds, cumulative, strict=True)]
            buckets.append(("+Inf", float(sketch.count)))
            out.add_metric([*self._const_values, *values], buckets, sketch.sum)
        return out

    def _source(self, source: StatsSource) -> Iterator[PromMetric]:
        try:
            stats = source.fn()
            # A figure a source does not know (a Redis tier has no `max_entries`: Redis bounds
            # itself) is left out, not a reason to lose the source's other figures.
            rows = {
                str(key): {str(s): float(v) for s, v in row.items() if v is not None}
                for key, row in stats.items()
            }
        except Exception:
            # A failing source must not break the whole scrape; it is counted and logged.
            _log.exception("stats source %r failed", source.name)
            self._monitor.source_errors.labels(source.name).inc()
            return
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for key, row in sorted(rows.items()):
            for stat, value in sorted(row.items()):
                if not _STAT_NAME.fullmatch(stat):
                    continue
                family = families.get(stat)
                if family is None:
                    name = f"companion_{source.name}_{stat}"
                    labels = self._labels((source.label,))
                    help_text = f"{stat} per {source.label}, read from the {source.name} source"
                    kind = CounterMetricFamily if stat in source.counters else GaugeMetricFamily
                    family = families[stat] = kind(name, help_text, labels=labels)
                family.add_metric([*self._const_values, key], value)
        yield from families.values()

    def _status(self) -> Iterator[PromMetric]:
        firing = GaugeMetricFamily(
            "companion_alerts_firing",
            "Alerts firing now, by level",
            labels=self._labels(("level",)),
        )
        counts: dict[str, int] = {}
        for alert in self._monitor.active_alerts():
            counts[alert.level.name] = counts.get(alert.level.name, 0) + 1
        for level in ("INFO", "WARNING", "ERROR", "CRITICAL"):
            firing.add_metric([*self._const_values, level], counts.get(level, 0))
        yield firing
        report = self._monitor.last_health_report
        if report is not None:
            up = GaugeMetricFamily(
                "companion_health_check_up",
                "1 if the health check passed on its last run",
                labels=self._labels(("check",)),
            )
            for check in report.checks:
                up.add_metric([*self._const_values, check.name], 1.0 if check.ok else 0.0)
            yield up
