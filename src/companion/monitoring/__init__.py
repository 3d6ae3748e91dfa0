"""companion.monitoring: metrics, windowed percentiles, alerts, health checks; see docs/monitoring.md."""

from companion.monitoring._alerts import Alert, AlertLevel, Threshold
from companion.monitoring._asgi import RequestMetricsMiddleware
from companion.monitoring._errors import (
    InvalidLabels,
    InvalidMetricName,
    InvalidQuantile,
    InvalidThreshold,
    InvalidWindow,
    MetricNotFound,
    MetricTypeConflict,
    UnknownAlertLevel,
)
from companion.monitoring._health import HealthCheckResult, HealthReport
from companion.monitoring._metrics import Counter, Gauge, Histogram
from companion.monitoring._monitor import Monitor
from companion.monitoring._prometheus import MonitorCollector
from companion.monitoring._sampler import Sampler
from companion.monitoring._sketch import QuantileSketch
from companion.monitoring._timer import Timer
from companion.monitoring._window import WindowedSketch

__all__ = [
    "Alert",
    "AlertLevel",
    "Counter",
    "Gauge",
    "HealthCheckResult",
    "HealthReport",
    "Histogram",
    "InvalidLabels",
    "InvalidMetricName",
    "InvalidQuantile",
    "InvalidThreshold",
    "InvalidWindow",
    "MetricNotFound",
    "MetricTypeConflict",
    "Monitor",
    "MonitorCollector",
    "QuantileSketch",
    "RequestMetricsMiddleware",
    "Sampler",
    "Threshold",
    "Timer",
    "UnknownAlertLevel",
    "WindowedSketch",
]
