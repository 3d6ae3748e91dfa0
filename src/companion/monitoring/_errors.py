"""Leaf errors of `companion.monitoring`, under the tree drawn in `companion.errors`.

InvalidInput
├── InvalidMetricName      empty or not `[a-zA-Z_:][a-zA-Z0-9_:]*`
├── InvalidLabels          wrong label names, or values that do not match them
├── InvalidQuantile        q outside [0, 1], or an unknown statistic such as `p101`
├── InvalidWindow          a window that is not positive or longer than the kept history
├── InvalidThreshold       NaN, negative where meaningless, or a bad `for_s`
└── UnknownAlertLevel      not one of INFO, WARNING, ERROR, CRITICAL
NotFound
└── MetricNotFound         a threshold or lookup names a metric that was never created
Conflict
└── MetricTypeConflict     a name reused with another type or other label names
"""

from __future__ import annotations

from companion.errors import Conflict, InvalidInput, NotFound

__all__ = [
    "InvalidLabels",
    "InvalidMetricName",
    "InvalidQuantile",
    "InvalidThreshold",
    "InvalidWindow",
    "MetricNotFound",
    "MetricTypeConflict",
    "UnknownAlertLevel",
]


class InvalidMetricName(InvalidInput):
    """A metric or label name that Prometheus would reject."""

    code = "invalid_metric_name"


class InvalidLabels(InvalidInput):
    """Label values that do not match the metric's label names."""

    code = "invalid_labels"


class InvalidQuantile(InvalidInput):
    """A quantile outside [0, 1] or a statistic name that is not understood."""

    code = "invalid_quantile"


class InvalidWindow(InvalidInput):
    """A time window that is not positive or exceeds the history kept."""

    code = "invalid_window"


class InvalidThreshold(InvalidInput):
    """A threshold whose value or hold time cannot be meant."""

    code = "invalid_threshold"


class UnknownAlertLevel(InvalidInput):
    """An alert level that is not INFO, WARNING, ERROR or CRITICAL."""

    code = "unknown_alert_level"


class MetricNotFound(NotFound):
    """No metric of that name has been created."""

    code = "metric_not_found"


class MetricTypeConflict(Conflict):
    """A metric name already exists with a different type or label names."""

    code = "metric_type_conflict"
