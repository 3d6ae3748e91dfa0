"""Per-name call statistics in constant memory: Welford for mean and stddev, a sketch for percentiles.

The hot path only appends the duration to a short pending list (`list.append` is atomic under the
GIL); every `FOLD_AT` calls, or before any read, one thread folds the pending values into the sketch
and the Welford state under a lock. Folding copies the first `n` items then deletes exactly those
(each one atomic step), so values appended meanwhile by other threads are kept for the next fold.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass

from companion.monitoring import QuantileSketch

__all__ = ["FOLD_AT", "CallStats", "ProfileStats"]

# Pending durations per name before a fold: bounds memory and amortises the lock and the sketch.
FOLD_AT = 256


@dataclass(frozen=True, slots=True)
class ProfileStats:
    """A snapshot of one name's statistics (seconds); percentiles within the sketch's accuracy."""

    name: str
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

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


class CallStats:
    """Thread-safe accumulator for one profiled name; its size never grows with the call count."""

    __slots__ = (
        "_errors",
        "_lock",
        "_m2",
        "_mean",
        "_n",
        "_pending",
        "_relative_accuracy",
        "_sketch",
        "name",
    )

    def __init__(self, name: str, relative_accuracy: float = 0.01) -> None:
        self.name = name
        self._relative_accuracy = relative_accuracy
        self._lock = threading.Lock()
        self._pending: list[float] = []
        self._sketch = QuantileSketch(relative_accuracy)
        self._errors = 0
        self._n = 0
        self._mean = 0.0
        self._m2 = 0.0

    def record(self, elapsed_s: float) -> None:
        """Add one call's duration (the hot path)."""
        pending = self._pending
        pending.append(elapsed_s)
        if len(pending) >= FOLD_AT:
            self.fold()

    def record_error(self, elapsed_s: float) -> None:
        """Add one call that raised (counted in `count` and in `errors`)."""
        with self._lock:
            self._errors += 1
        self.record(elapsed_s)

    def fold(self) -> None:
        """Move pending durations into the sketch and the Welford state."""
        with self._lock:
            pending = self._pending
            n = len(pending)
            batch = pending[:n]
            del pending[:n]
            self._sketch.add_many(batch)
            count, mean, m2 = self._n, self._mean, self._m2
            for value in batch:
                if math.isnan(value):
                    continue
                # Welford's update: stable where a sum of squares would cancel catastrophically.
                count += 1
                delta = value - mean
                mean += delta / count
                m2 += delta * (value - mean)
            self._n, self._mean, self._m2 = count, mean, m2

    def clear(self) -> None:
        """Reset in place (decorated functions keep their reference to this object)."""
        with self._lock:
            del self._pending[:]
            self._sketch = QuantileSketch(self._relative_accuracy)
            self._errors = 0
            self._n = 0
            self._mean = 0.0
            self._m2 = 0.0

    def snapshot(self) -> ProfileStats:
        """Consistent statistics at this moment."""
        self.fold()
        with self._lock:
            sketch = self._sketch.copy()
            errors, m2 = self._errors, self._m2
        count = sketch.count
        p50, p95, p99 = sketch.quantiles((0.5, 0.95, 0.99))
        return ProfileStats(
            name=self.name,
            count=count,
            errors=errors,
            total_s=sketch.sum,
            min_s=sketch.min,
            max_s=sketch.max,
            avg_s=sketch.sum / count if count else None,
            p50_s=p50,
            p95_s=p95,
            p99_s=p99,
            stddev_s=math.sqrt(m2 / count) if count else None,
        )
