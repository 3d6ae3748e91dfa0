"""Thresholds and alerts: fire once on crossing (after holding `for_s`), resolve once on return.

Evaluation is off the hot path: `AlertManager.evaluate` is called by the background sampler (or a
test) with values read at that moment. State is one entry per (threshold, series), so the number of
alerts is bounded by thresholds × series, and the history is a ring of `history` events.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from companion.monitoring._errors import InvalidThreshold, UnknownAlertLevel

__all__ = ["Alert", "AlertLevel", "AlertManager", "Threshold"]

_log = logging.getLogger(__name__)


class AlertLevel(enum.IntEnum):
    """Severity, ordered and numbered like `logging` levels."""

    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @classmethod
    def parse(cls, level: AlertLevel | str) -> AlertLevel:
        """Accept a member or its name in any case; raise `UnknownAlertLevel` otherwise."""
        if isinstance(level, AlertLevel):
            return level
        if isinstance(level, str) and level.upper() in cls.__members__:
            return cls[level.upper()]
        raise UnknownAlertLevel(
            f"alert level must be one of INFO, WARNING, ERROR, CRITICAL; got {level!r}"
        )


@dataclass(frozen=True, slots=True)
class Threshold:
    """Alert when `stat` of `metric` (for the series matching `labels`) is above/below `value`."""

    metric: str
    stat: str
    value: float
    level: AlertLevel
    for_s: float = 0.0
    labels: Mapping[str, str] | None = None
    window_s: float | None = None
    above: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.value, int | float) or math.isnan(self.value):
            raise InvalidThreshold(f"threshold value must be a number, got {self.value!r}")
        if not (isinstance(self.for_s, int | float) and 0 <= self.for_s < math.inf):
            raise InvalidThreshold(f"for_s must be a finite number >= 0, got {self.for_s!r}")

    @property
    def name(self) -> str:
        """A readable identity, e.g. `companion_http_request_duration_seconds:p95>0.5`."""
        return f"{self.metric}:{self.stat}{'>' if self.above else '<'}{self.value:g}"

    def breached(self, observed: float) -> bool:
        """Whether `observed` is on the alerting side."""
        return observed > self.value if self.above else observed < self.value


@dataclass(slots=True)
class Alert:
    """One alert: `state` is "firing" until the value returns, then "resolved"."""

    threshold: Threshold
    labels: dict[str, str]
    value: float
    fired_at_s: float
    state: str = "firing"
    resolved_at_s: float | None = None
    resolved_value: float | None = None

    @property
    def level(self) -> AlertLevel:
        """The threshold's level."""
        return self.threshold.level

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "name": self.threshold.name,
            "metric": self.threshold.metric,
            "stat": self.threshold.stat,
            "labels": dict(self.labels),
            "level": self.level.name,
            "threshold": self.threshold.value,
            "value": self.value,
            "state": self.state,
            "fired_at_s": self.fired_at_s,
            "resolved_at_s": self.resolved_at_s,
        }


@dataclass(slots=True)
class _SeriesState:
    pending_since_s: float | None = None
    alert: Alert | None = field(default=None)


# What `evaluate` needs per threshold: (label dict, observed value) for each series it covers.
Reading = Iterable[tuple[dict[str, str], float]]


class AlertManager:
    """Holds thresholds, per-series alert state and a bounded history of alert events."""

    def __init__(
        self, *, history: int = 1000, on_alert: Callable[[Alert], object] | None = None
    ) -> None:
        self._thresholds: list[Threshold] = []
        self._state: dict[tuple[int, tuple[tuple[str, str], ...]], _SeriesState] = {}
        self._history: deque[Alert] = deque(maxlen=history)
        self._on_alert = on_alert
        self._lock = threading.Lock()

    @property
    def thresholds(self) -> list[Threshold]:
        """The thresholds, in the order they were set."""
        return list(self._thresholds)

    def add(self, threshold: Threshold) -> None:
        """Start watching a threshold."""
        with self._lock:
            self._thresholds.append(threshold)

    def evaluate(self, read: Callable[[Threshold], Reading], now_s: float) -> list[Alert]:
        """Compare every threshold with `read(threshold)`; return the alerts fired or resolved now."""
        changed: list[Alert] = []
        with self._lock:
            for index, threshold in enumerate(self._thresholds):
                for labels, observed in read(threshold):
                    key = (index, tuple(sorted(labels.items())))
                    state = self._state.setdefault(key, _SeriesState())
                    alert = self._step(
                        threshold, state, labels=labels, observed=observed, now_s=now_s
                    )
                    if alert is not None:
                        changed.append(alert)
            self._history.extend(changed)
        for alert in changed:
            self._notify(alert)
        return changed

    def active(self) -> list[Alert]:
        """Alerts firing now, most severe first."""
        with self._lock:
            firing = [s.alert for s in self._state.values() if s.alert is not None]
        return sorted(firing, key=lambda a: (-a.level, a.fired_at_s))

    def history(self) -> list[Alert]:
        """Recent fire and resolve events, newest first (bounded)."""
        with self._lock:
            return list(reversed(self._history))

    @staticmethod
    def _step(
        threshold: Threshold,
        state: _SeriesState,
        *,
        labels: dict[str, str],
        observed: float,
        now_s: float,
    ) -> Alert | None:
        if threshold.breached(observed):
            if state.alert is not None:
                return None
            if state.pending_since_s is None:
                state.pending_since_s = now_s
            if now_s - state.pending_since_s >= threshold.for_s:
                state.alert = Alert(threshold, labels, observed, fired_at_s=now_s)
                return state.alert
            return None
        state.pending_since_s = None
        if state.alert is not None:
            fired = state.alert
            resolved = Alert(
                threshold,
                labels,
                fired.value,
                fired_at_s=fired.fired_at_s,
                state="resolved",
                resolved_at_s=now_s,
                resolved_value=observed,
            )
            state.alert = None
            return resolved
        return None

    def _notify(self, alert: Alert) -> None:
        if self._on_alert is None:
            return
        try:
            self._on_alert(alert)
        except Exception:
            # A broken notifier must not stop evaluation or the sampler that drives it.
            _log.exception("alert callback failed for %s", alert.threshold.name)
