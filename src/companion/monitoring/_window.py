"""A sketch over all time plus sliding time windows, rotated lazily by an injected clock.

Two rings keep memory small: `fine_slots` slots of `slot_s` seconds (for windows up to one coarse
slot, default 1 minute) and `coarse_slots` slots of `slot_s * fine_slots` seconds (default 15 minutes).
A window of `w` seconds is the current slot plus the newest completed ones, so it covers between
`w - slot` and `w` seconds of history, where `slot` is the ring's slot length.

Thread safety without a lock per observation: `add` appends to a short pending list (`list.append`
is atomic under the GIL); a fold moves pending values into the sketches under the lock, every
`FOLD_AT` values, before every read and before a slot rotates. A value observed by one thread
exactly as another rotates the slot may land in the neighbouring slot; none is ever lost.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from math import ceil

from companion.errors import InvalidInput
from companion.monitoring._errors import InvalidWindow
from companion.monitoring._sketch import QuantileSketch

__all__ = ["FOLD_AT", "WindowedSketch"]

Clock = Callable[[], float]

# Values buffered per series before they are folded into the sketches under the lock: bounds memory
# and amortises the lock, the log and the dict updates over many observations.
FOLD_AT = 128


class WindowedSketch:
    """Thread-safe: all-time and windowed count, sum and quantiles of a stream of values."""

    __slots__ = (
        "_acc",
        "_acc_epoch",
        "_all",
        "_clock",
        "_coarse",
        "_coarse_slots",
        "_cur",
        "_epoch",
        "_fine",
        "_fine_slots",
        "_lock",
        "_pending",
        "_slot_end",
        "_slot_s",
    )

    def __init__(
        self,
        clock: Clock,
        *,
        relative_accuracy: float = 0.01,
        slot_s: float = 10.0,
        fine_slots: int = 6,
        coarse_slots: int = 15,
    ) -> None:
        if not (slot_s > 0 and fine_slots >= 1 and coarse_slots >= 1):
            raise InvalidInput("slot_s must be > 0 and fine_slots, coarse_slots >= 1")
        self._clock = clock
        self._slot_s = float(slot_s)
        self._fine_slots = fine_slots
        self._coarse_slots = coarse_slots
        self._lock = threading.Lock()
        self._pending: list[float] = []
        self._all = QuantileSketch(relative_accuracy)
        self._cur = QuantileSketch(relative_accuracy)
        self._acc = QuantileSketch(relative_accuracy)
        self._fine: deque[QuantileSketch] = deque(maxlen=max(fine_slots - 1, 1))
        self._coarse: deque[QuantileSketch] = deque(maxlen=max(coarse_slots - 1, 1))
        self._epoch = math.floor(clock() / self._slot_s)
        self._acc_epoch = self._epoch // fine_slots
        self._slot_end = (self._epoch + 1) * self._slot_s

    @property
    def max_window_s(self) -> float:
        """The longest window this keeps."""
        return self._slot_s * self._fine_slots * self._coarse_slots

    def add(self, value: float) -> None:
        """Record one value (NaN is ignored); the hot path: no lock, no math, ~0.4 µs."""
        if self._clock() >= self._slot_end:
            self._advance()
        pending = self._pending
        # `+ 0.0` makes a non-number fail here, in the caller, rather than later in a fold.
        pending.append(value + 0.0)
        if len(pending) >= FOLD_AT:
            with self._lock:
                self._fold()

    def total(self) -> QuantileSketch:
        """A copy of the all-time sketch."""
        with self._lock:
            self._fold()
            return self._all.copy()

    def window(self, window_s: float) -> QuantileSketch:
        """A sketch of the last `window_s` seconds (see the module docstring for the resolution)."""
        if not (isinstance(window_s, int | float) and 0 < window_s <= self.max_window_s):
            raise InvalidWindow(
                f"window_s must be in (0, {self.max_window_s:g}] seconds, got {window_s!r}"
            )
        with self._lock:
            self._fold()
            now = self._clock()
            if now >= self._slot_end:
                self._rotate(now)
            merged = self._cur.copy()
            coarse_s = self._slot_s * self._fine_slots
            if window_s <= coarse_s:
                n, ring = ceil(window_s / self._slot_s) - 1, self._fine
            else:
                merged.merge(self._acc)
                n, ring = ceil(window_s / coarse_s) - 1, self._coarse
            extra = list(ring)[-n:] if n else []
        for sketch in extra:
            merged.merge(sketch)
        return merged

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            del self._pending[:]
            for sketch in (self._all, self._cur, self._acc):
                sketch.clear()
            self._fine.clear()
            self._coarse.clear()

    def _advance(self) -> None:
        with self._lock:
            now = self._clock()
            if now >= self._slot_end:
                self._fold()  # pending values belong to the slot that is ending
                self._rotate(now)

    def _fold(self) -> None:
        # Called with the lock held. Copy then delete exactly the first n items (each one atomic
        # step), so values other threads append meanwhile stay pending for the next fold.
        pending = self._pending
        n = len(pending)
        if not n:
            return
        batch = self._all.summarize(pending[:n])
        del pending[:n]
        self._all.add_batch(batch)
        # Slices track no extremes (their merges would make min/max wrong for a window).
        self._cur.add_batch(batch._replace(low=math.inf, high=-math.inf))

    def _rotate(self, now: float) -> None:
        # Called with the lock held (and pending values folded), only when the current slot ended.
        epoch = math.floor(now / self._slot_s)
        if epoch <= self._epoch:  # the clock went backwards: keep filling the current slot
            self._slot_end = (self._epoch + 1) * self._slot_s
            return
        accuracy = self._all.relative_accuracy
        finished = self._cur
        self._acc.merge(finished)
        self._fine.append(finished)
        for _ in range(min(epoch - self._epoch - 1, self._fine_slots)):
            self._fine.append(QuantileSketch(accuracy))
        acc_epoch = epoch // self._fine_slots
        if acc_epoch != self._acc_epoch:
            self._coarse.append(self._acc)
            for _ in range(min(acc_epoch - self._acc_epoch - 1, self._coarse_slots)):
                self._coarse.append(QuantileSketch(accuracy))
            self._acc = QuantileSketch(accuracy)
            self._acc_epoch = acc_epoch
        self._cur = QuantileSketch(accuracy)
        self._epoch = epoch
        self._slot_end = (epoch + 1) * self._slot_s
