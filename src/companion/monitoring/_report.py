"""The monitor's report: one snapshot dict, rendered as a text table or as JSON."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import orjson

from companion.errors import InvalidInput
from companion.monitoring._alerts import Alert
from companion.monitoring._health import HealthReport
from companion.monitoring._metrics import Counter, Gauge

__all__ = ["render", "snapshot"]

# Windows shown beside the all-time figures, in seconds.
REPORT_WINDOWS_S = (60.0, 300.0, 900.0)


class ReportedMonitor(Protocol):
    """What the report reads from the monitor (`Monitor` is one; declared here so this module
    sits below the monitor instead of importing it back)."""

    cache_lookups: Counter
    errors: Counter
    dropped_series: Counter
    memory: Gauge
    cpu: Gauge
    threads: Gauge
    open_fds: Gauge
    loop_lag: Gauge
    last_health_report: HealthReport | None

    def endpoints(self) -> list[str]:
        """Endpoints with recorded requests."""
        ...

    def request_stats(self, endpoint: str, window_s: float | None = None) -> dict[str, Any]:
        """Count, errors and percentiles of one endpoint."""
        ...

    def cache_names(self) -> list[str]:
        """Caches with recorded lookups."""
        ...

    def cache_hit_rate(self, name: str) -> float | None:
        """One cache's hit rate."""
        ...

    def recent_errors(self) -> list[dict[str, Any]]:
        """The latest errors, newest first."""
        ...

    def active_alerts(self) -> list[Alert]:
        """Alerts firing now."""
        ...

    def alert_history(self) -> list[Alert]:
        """Recent alert events, newest first."""
        ...


def snapshot(monitor: ReportedMonitor) -> dict[str, Any]:
    """Every endpoint, cache, error type, gauge, alert and health check, JSON-ready."""
    endpoints = {}
    for endpoint in monitor.endpoints():
        stats = monitor.request_stats(endpoint)
        stats["windows"] = {
            f"{int(w // 60)}m": monitor.request_stats(endpoint, w) for w in REPORT_WINDOWS_S
        }
        endpoints[endpoint] = stats
    caches = {name: {"hit_rate": monitor.cache_hit_rate(name)} for name in monitor.cache_names()}
    for (name, result), child in monitor.cache_lookups.series():
        caches[name]["hits" if result == "hit" else "misses"] = child.value
    health = monitor.last_health_report
    return {
        "endpoints": endpoints,
        "caches": caches,
        "errors": {values[0]: child.value for values, child in monitor.errors.series()},
        "recent_errors": monitor.recent_errors()[:20],
        "system": {
            "rss_bytes": monitor.memory.labels().value,
            "cpu_percent": monitor.cpu.labels().value,
            "threads": monitor.threads.labels().value,
            "open_fds": monitor.open_fds.labels().value,
            "event_loop_lag_s": monitor.loop_lag.labels().value,
        },
        "alerts": {
            "active": [alert.to_dict() for alert in monitor.active_alerts()],
            "recent": [alert.to_dict() for alert in monitor.alert_history()[:20]],
        },
        "health": None if health is None else health.to_dict(),
        "dropped_series": {
            values[0]: child.value for values, child in monitor.dropped_series.series()
        },
    }


def render(monitor: ReportedMonitor, fmt: Literal["text", "json"]) -> str:
    """The snapshot as JSON or as a plain-text report."""
    data = snapshot(monitor)
    if fmt == "json":
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    if fmt == "text":
        return _text(data)
    raise InvalidInput(f"report format must be 'text' or 'json', got {fmt!r}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f}"


def _text(data: dict[str, Any]) -> str:
    lines = ["== Requests (all time; latency in ms) =="]
    header = (
        f"{'endpoint':<40} {'count':>8} {'avg':>9} {'p50':>9} {'p95':>9} {'p99':>9} {'err%':>6}"
    )
    lines.append(header)
    for endpoint, s in data["endpoints"].items():
        lines.append(
            f"{endpoint[:40]:<40} {s['count']:>8} {_ms(s['avg']):>9} {_ms(s['p50']):>9} "
            f"{_ms(s['p95']):>9} {_ms(s['p99']):>9} {s['error_rate'] * 100:>6.2f}"
        )
    if not data["endpoints"]:
        lines.append("(no requests recorded)")
    lines.append("")
    lines.append("== Caches ==")
    for name, c in data["caches"].items():
        rate = "-" if c["hit_rate"] is None else f"{c['hit_rate'] * 100:.1f}%"
        lines.append(
            f"{name:<40} hits {c.get('hits', 0):>10g}  misses {c.get('misses', 0):>10g}  {rate}"
        )
    lines.append("")
    lines.append("== Errors ==")
    lines.extend(f"{kind:<40} {count:>10g}" for kind, count in data["errors"].items())
    system = data["system"]
    lines.append("")
    lines.append("== System ==")
    lines.append(
        f"rss {system['rss_bytes'] / 2**20:.1f} MiB  cpu {system['cpu_percent']:.1f}%  "
        f"threads {system['threads']:g}  fds {system['open_fds']:g}  "
        f"loop lag {system['event_loop_lag_s'] * 1000:.2f} ms"
    )
    lines.append("")
    lines.append(f"== Alerts ({len(data['alerts']['active'])} active) ==")
    for alert in data["alerts"]["active"]:
        lines.append(
            f"{alert['level']:<9} {alert['name']} {alert['labels']} value={alert['value']:g}"
        )
    if data["health"] is not None:
        lines.append("")
        lines.append(f"== Health: {data['health']['status']} ==")
        for check in data["health"]["checks"]:
            lines.append(
                f"{check['name']:<30} {check['status']:<7} {check['duration_ms']:>8.1f} ms"
            )
    return "\n".join(lines) + "\n"
