"""Counter, gauge and histogram families with cached label children and a cap on label sets.

A family maps label values to a child; `labels(...)` is one dict lookup once a child exists, and
callers on a hot path keep the child itself. Past `max_series` label sets, new ones share a single
overflow child (every label `"_overflow"`) and the monitor counts each redirected lookup.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Sequence
from typing import ClassVar, Generic, TypeVar

from companion.errors import InvalidInput
from companion.monitoring._errors import InvalidLabels, InvalidMetricName
from companion.monitoring._window import Clock, WindowedSketch

__all__ = [
    "DEFAULT_BUCKETS",
    "OVERFLOW_LABEL",
    "Counter",
    "CounterChild",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "Metric",
    "check_label_name",
    "check_metric_name",
]

OVERFLOW_LABEL = "_overflow"
# Prometheus' default latency buckets (seconds), used for exposition only: percentiles come from sketches.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

# Windows: 6 slots of `slot_s` (1 minute at 10 s), then 15 slots of a minute (15 minutes).
_FINE_SLOTS = 6
_COARSE_SLOTS = 15
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def check_metric_name(name: object) -> str:
    """Return `name` if Prometheus accepts it as a metric name, else raise `InvalidMetricName`."""
    if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name):
        raise InvalidMetricName(
            f"metric name must match [a-zA-Z_:][a-zA-Z0-9_:]* (e.g. companion_http_requests_total), "
            f"got {name!r}"
        )
    return name


def check_label_name(name: object) -> str:
    """Return `name` if it is a valid, non-reserved label name, else raise `InvalidLabels`."""
    if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
        raise InvalidLabels(f"label name must match [a-zA-Z_][a-zA-Z0-9_]*, got {name!r}")
    return name


class CounterChild:
    """One monotonically increasing series."""

    __slots__ = ("_lock", "_ones", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0
        # Increments by one, the usual case, go to an `itertools.count`: `next()` on it is one C
        # call the GIL makes atomic (~50 ns), where a lock pair costs ~130 ns on every call.
        self._ones = itertools.count()

    def inc(self, amount: float = 1.0) -> None:
        """Add `amount` (>= 0)."""
        if amount == 1.0:
            next(self._ones)
            return
        if amount < 0:
            raise InvalidInput(f"a counter only goes up; got amount {amount!r}")
        # `+=` on an attribute is a read-modify-write: without the lock threads lose counts.
        lock = self._lock
        lock.acquire()
        self._value += amount
        lock.release()

    @property
    def value(self) -> float:
        """Current total."""
        # `repr(count(n))` is "count(n)": the one way to read a count without advancing it.
        return self._value + int(repr(self._ones)[6:-1])


class GaugeChild:
    """One series that goes up and down."""

    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0

    def set(self, value: float) -> None:
        """Set the value (a single attribute store: atomic, no lock needed)."""
        self._value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        """Add `amount`."""
        lock = self._lock
        lock.acquire()
        self._value += amount
        lock.release()

    def dec(self, amount: float = 1.0) -> None:
        """Subtract `amount`."""
        self.inc(-amount)

    @property
    def value(self) -> float:
        """Current value."""
        return self._value


class HistogramChild(WindowedSketch):
    """One distribution: all-time and windowed count, sum and quantiles."""

    __slots__ = ()

    observe = WindowedSketch.add  # same function: no extra call on the hot path


ChildT = TypeVar("ChildT", CounterChild, GaugeChild, HistogramChild)


class Metric(Generic[ChildT]):
    """A named family of series sharing label names."""

    kind: ClassVar[str]

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str],
        *,
        max_series: int,
        on_overflow: Callable[[str], None],
    ) -> None:
        self.name = check_metric_name(name)
        self.help = help or name
        self.labelnames = tuple(check_label_name(label) for label in labelnames)
        if len(set(self.labelnames)) != len(self.labelnames):
            raise InvalidLabels(f"duplicate label names in {self.labelnames!r}")
        if max_series < 1:
            raise InvalidInput(f"max_series must be >= 1, got {max_series!r}")
        self.max_series = max_series
        self._on_overflow = on_overflow
        self._children: dict[tuple[object, ...], ChildT] = {}
        self._series: dict[tuple[str, ...], ChildT] = {}
        self._lock = threading.Lock()
        self._overflow: ChildT | None = None
        self._default: ChildT | None = self.labels() if not self.labelnames else None

    def labels(self, *values: object) -> ChildT:
        """The child for these label values (created on first use, cached after)."""
        child = self._children.get(values)
        if child is None:
            return self._create(values)
        return child

    def get(self, *values: object) -> ChildT | None:
        """The existing child for these label values, or None (never creates one)."""
        child = self._children.get(values)
        if child is None:
            child = self._series.get(tuple(str(value) for value in values))
        return child

    def series(self) -> list[tuple[tuple[str, ...], ChildT]]:
        """A snapshot of (label values, child) pairs, the overflow series included."""
        with self._lock:
            return list(self._series.items())

    def _new_child(self) -> ChildT:
        raise NotImplementedError

    def _unlabelled(self) -> ChildT:
        if self._default is None:
            raise InvalidLabels(f"{self.name} has labels {self.labelnames!r}: call .labels(...)")
        return self._default

    def _create(self, values: tuple[object, ...]) -> ChildT:
        if len(values) != len(self.labelnames):
            raise InvalidLabels(
                f"{self.name} takes {len(self.labelnames)} label values {self.labelnames!r}, "
                f"got {len(values)}"
            )
        key = tuple(str(value) for value in values)
        with self._lock:
            child = self._series.get(key)
            if child is None:
                if len(self._series) - (self._overflow is not None) >= self.max_series:
                    return self._overflowed()
                child = self._series[key] = self._new_child()
            # Alias the caller's spelling (e.g. status 200 and "200") while the cache stays bounded.
            if len(self._children) < 2 * self.max_series:
                self._children[values] = child
            return child

    def _overflowed(self) -> ChildT:
        # Called with the lock held; unknown label sets are not cached, so each lookup is counted.
        if self._overflow is None:
            self._overflow = self._new_child()
            self._series[(OVERFLOW_LABEL,) * len(self.labelnames)] = self._overflow
        self._on_overflow(self.name)
        return self._overflow


class Counter(Metric[CounterChild]):
    """A counter family; `inc` works directly when it has no labels."""

    kind = "counter"

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1.0) -> None:
        """Increment the unlabelled series."""
        self._unlabelled().inc(amount)


class Gauge(Metric[GaugeChild]):
    """A gauge family; `set`/`inc`/`dec` work directly when it has no labels."""

    kind = "gauge"

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def set(self, value: float) -> None:
        """Set the unlabelled series."""
        self._unlabelled().set(value)

    def inc(self, amount: float = 1.0) -> None:
        """Add to the unlabelled series."""
        self._unlabelled().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        """Subtract from the unlabelled series."""
        self._unlabelled().dec(amount)


class Histogram(Metric[HistogramChild]):
    """A histogram family backed by windowed quantile sketches."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str],
        *,
        max_series: int,
        on_overflow: Callable[[str], None],
        clock: Clock,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        relative_accuracy: float = 0.01,
        slot_s: float = 10.0,
    ) -> None:
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise InvalidInput(
                f"buckets must be non-empty and strictly increasing, got {buckets!r}"
            )
        self.buckets = bounds
        self._clock = clock
        self._relative_accuracy = relative_accuracy
        self._slot_s = slot_s
        super().__init__(name, help, labelnames, max_series=max_series, on_overflow=on_overflow)

    @property
    def max_window_s(self) -> float:
        """The longest window its series keep."""
        return self._slot_s * _FINE_SLOTS * _COARSE_SLOTS

    def _new_child(self) -> HistogramChild:
        return HistogramChild(
            self._clock,
            relative_accuracy=self._relative_accuracy,
            slot_s=self._slot_s,
            fine_slots=_FINE_SLOTS,
            coarse_slots=_COARSE_SLOTS,
        )

    def observe(self, value: float) -> None:
        """Observe into the unlabelled series."""
        self._unlabelled().add(value)
