"""What one benchmark row is: our operation, the peer's, and the target that judges the pair."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

__all__ = [
    "Case",
    "Cycling",
    "Operation",
    "Target",
    "format_bytes",
    "format_figure",
    "format_ns",
]

# A setup function returns the zero-argument operation to time (setup cost is never timed).
# An operation may also have `note() -> str` (printed in the row), `close()` (called once the row
# is measured) and `rewind()`: the runner calls it on both sides after calibration and after a
# failed sample, so two operations over the same inputs consume them in lockstep (`Cycling`).
Operation = Callable[[], object]
Setup = Callable[[], Operation]
T = TypeVar("T")


class Cycling(Generic[T]):
    """An operation applying `run` to `inputs` one per call, in order, round and round.

    Give ours and the peer the same `inputs` and they do the same work on the same inputs: both
    are rewound to the first input once calibrated, and every sample runs the same batch on each
    side, so sample i of ours and sample i of the peer see the very same inputs in the same order.
    """

    def __init__(self, inputs: Sequence[T], run: Callable[[T], object]) -> None:
        if not inputs:
            raise ValueError("an operation needs at least one input")
        self.inputs = tuple(inputs)
        self._run = run
        self._next: Iterator[T] = itertools.cycle(self.inputs)

    def __call__(self) -> object:
        return self._run(next(self._next))

    def rewind(self) -> None:
        """Start again from the first input."""
        self._next = itertools.cycle(self.inputs)


@dataclass(frozen=True, slots=True)
class Target:
    """Pass condition of a row: a ratio to the peer's median and/or absolute bounds on ours."""

    max_ratio: float | None = None
    max_median_ns: float | None = None
    max_p95_ns: float | None = None
    max_added_ns: float | None = None  # ours minus peer (e.g. profiler overhead over a bare call)
    # Score rows: how far ours may fall below the peer (e.g. nDCG within 0.01 of another store).
    max_shortfall: float | None = None

    def describe(self, unit: str = "ns") -> str:
        """Human form, e.g. `≤ 0.75× peer`."""
        show = functools.partial(format_figure, unit=unit)
        parts: list[str] = []
        if self.max_shortfall is not None:
            parts.append(f"≥ peer − {self.max_shortfall:g}")
        if self.max_ratio is not None:
            parts.append(f"≤ {self.max_ratio:g}× peer")
        if self.max_added_ns is not None:
            parts.append(f"≤ +{format_ns(self.max_added_ns)} over peer")
        if self.max_median_ns is not None:
            parts.append(f"median ≤ {show(self.max_median_ns)}")
        if self.max_p95_ns is not None:
            parts.append(f"p95 ≤ {show(self.max_p95_ns)}")
        return ", ".join(parts) or "report only"


@dataclass(frozen=True, slots=True)
class Case:
    """One row of `companion bench`: ours and the peer are timed interleaved in the same run."""

    group: str
    name: str
    ours: Setup
    peer: Setup | None = None
    peer_name: str | None = None
    target: Target = Target()
    seed_figure: str | None = None
    # Operations per timing sample: raise for sub-microsecond operations so the clock's cost vanishes.
    batch: int = 1
    # "ns": the operations are timed. "bytes": each operation returns a size in bytes, which is
    # the figure (its median over a few calls), e.g. memory held by a structure. "score": each
    # returns a quality figure where higher is better (nDCG@10), compared by `max_shortfall`.
    unit: Literal["ns", "bytes", "score"] = "ns"
    # True: each operation measures itself and returns its figure in ns (e.g. a load burst's
    # time per request, or its p99); the runner calls it a few rounds, interleaved, untimed.
    reported: bool = False


def format_bytes(value: float) -> str:
    """Bytes in the most readable unit."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f} B"


def format_figure(value: float, unit: str = "ns") -> str:
    """A row's figure in its unit: time, bytes or a score."""
    if unit == "bytes":
        return format_bytes(value)
    if unit == "score":
        return f"{value:.4f}"
    return format_ns(value)


def format_ns(value_ns: float) -> str:
    """Nanoseconds in the most readable unit."""
    if value_ns >= 1e6:
        return f"{value_ns / 1e6:.3g} ms"
    if value_ns >= 1e3:
        return f"{value_ns / 1e3:.3g} µs"
    return f"{value_ns:.3g} ns"
