"""What the admin routes of the optimisation layer answer, as pydantic models: the OpenAPI document
(and so the clients' generated types) declares these shapes.

The routes write their JSON with orjson from the monitor's and profiler's own records;
`tests/api/test_response_models.py` holds every route's real answer to these models, extra fields
forbidden. The keys of the dictionaries (endpoints, caches, error types) are data: their values are
typed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from companion.api._answer import Answer

__all__ = [
    "AlertInfo",
    "AlertListing",
    "MonitoringReport",
    "ProfilingReport",
]


class AlertInfo(Answer):
    """One alert: firing until its value goes back past the threshold, then resolved."""

    name: str = Field(examples=["companion_http_request_duration_seconds:p95>0.5"])
    metric: str
    stat: str = Field(examples=["p95"])
    labels: dict[str, str]
    level: Literal["INFO", "WARNING", "ERROR", "CRITICAL"]
    threshold: float
    value: float = Field(description="The value that crossed the threshold.")
    state: Literal["firing", "resolved"]
    fired_at_s: float = Field(
        description="On the monitor's clock (monotonic seconds): compare alerts, not dates."
    )
    resolved_at_s: float | None = Field(description="On the same clock; null while firing.")


class AlertListing(Answer):
    """The alerts firing now, and recent fire and resolve events, newest first."""

    active: list[AlertInfo]
    history: list[AlertInfo]


class RequestFigures(Answer):
    """An endpoint's requests over a period: durations in seconds (null before any request)."""

    count: int
    avg: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    error_rate: float = Field(description="Failed requests (5xx) over all, 0 before any request.")


class EndpointFigures(RequestFigures):
    """An endpoint's requests since start, and over the recent windows (`1m`, `5m`, `15m`...)."""

    windows: dict[str, RequestFigures]


class CacheFigures(Answer):
    """A cache's lookups; `hits` or `misses` is left out while there has been none of it."""

    hit_rate: float | None
    hits: float | None = None
    misses: float | None = None


class RecentError(Answer):
    """One recorded error, newest first in its list."""

    at_s: float = Field(description="On the monitor's clock (monotonic seconds).")
    type: str
    message: str


class ProcessFigures(Answer):
    """The service process, as last sampled."""

    rss_bytes: float
    cpu_percent: float
    threads: float
    open_fds: float
    event_loop_lag_s: float


class ReportAlerts(Answer):
    """Alerts firing now, and the 20 latest events."""

    active: list[AlertInfo]
    recent: list[AlertInfo]


class HealthCheckInfo(Answer):
    """One health check's last outcome."""

    name: str
    status: Literal["ok", "failed"]
    duration_ms: float
    critical: bool
    error: str | None
    detail: str | None


class HealthSummary(Answer):
    """The last health checks: `degraded` when only non-critical ones failed."""

    status: Literal["ok", "degraded", "failed"]
    checks: list[HealthCheckInfo]


class MonitoringReport(Answer):
    """Every endpoint, cache, error type, process figure, alert and health check."""

    endpoints: dict[str, EndpointFigures] = Field(description="By route template.")
    caches: dict[str, CacheFigures]
    errors: dict[str, float] = Field(description="Errors recorded, by type.")
    recent_errors: list[RecentError]
    system: ProcessFigures
    alerts: ReportAlerts
    health: HealthSummary | None = Field(description="Null before the first health check.")
    dropped_series: dict[str, float] = Field(
        description="Label sets refused per metric because it had too many series."
    )


class ProfileRow(Answer):
    """One profiled name: seconds, percentiles within the sketch's accuracy (null while empty)."""

    name: str = Field(examples=["http POST /v1/execute"])
    count: int
    errors: int
    total_s: float
    min_s: float | None
    max_s: float | None
    avg_s: float | None
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    stddev_s: float | None


class ProfilingReport(Answer):
    """The profiled names sorted by `sort_by` (descending; ascending for `name`), `shown` of
    `names`."""

    sort_by: str
    names: int
    shown: int
    stats: list[ProfileRow]
