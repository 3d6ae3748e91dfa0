"""Times one case: ours and the peer interleaved in one run, so drift and noise hit both alike."""

from __future__ import annotations

import functools
import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from companion.bench._case import Case, Operation

__all__ = ["FULL", "QUICK", "Budget", "RowResult", "run_case"]

_T = TypeVar("_T")

_CALIBRATION_NS = 2_000_000
_SAMPLE_NS = 200_000  # a timed sample lasts about this long, so the clock's own cost vanishes
# A sample whose operation raises (a sandbox run that timed out once) is dropped and counted; a
# side whose operations fail more often than this is broken, and its row stops with the error.
_MAX_FAILED = 3
_MAX_FAILED_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class Budget:
    """How long to spend on one case: the time per side, and bounds on the number of samples."""

    seconds_per_side: float
    min_samples: int = 15
    max_samples: int = 2_000
    rounds: int = 3  # calls per side of rows whose operations report their own figure


QUICK = Budget(seconds_per_side=0.25)
FULL = Budget(seconds_per_side=2.0, min_samples=31, rounds=7)


@dataclass(frozen=True, slots=True)
class RowResult:
    """One measured row: medians, p95 and spread per side, the ratio and the verdict."""

    group: str
    name: str
    ours_median_ns: float  # or bytes, for rows whose unit is "bytes"
    ours_p95_ns: float
    ours_spread: float  # interquartile range / median
    peer_name: str | None
    peer_median_ns: float | None
    ratio: float | None
    seed_figure: str | None
    target: str
    passed: bool | None
    samples: int
    batch: int
    unit: str = "ns"
    note: str | None = None  # what the operations said about themselves (e.g. requests/s)
    # The figure over its bound, for the tightest of the target's checks: ≤ 1 passes (the chart).
    target_fraction: float | None = None
    # Operations that raised, each dropping its sample; a row where ours failed does not pass.
    ours_failed: int = 0
    peer_failed: int = 0


class _Failures:
    """The operations of one row that raised: counted per side, with the first error kept."""

    def __init__(self, case: Case) -> None:
        self._case = case
        self.failed = {"ours": 0, "peer": 0}
        self.attempts = {"ours": 0, "peer": 0}
        self.first: str | None = None

    def run(self, side: str, call: Callable[[], _T]) -> _T | None:
        """`call()`'s result, or None (counted) if it raised; raises once the side is broken."""
        self.attempts[side] += 1
        try:
            return call()
        except Exception as exc:  # one bad sample must not end the whole run
            self.failed[side] += 1
            if self.first is None:
                self.first = f"{side}: {type(exc).__name__}: {exc}"[:160]
            failed, attempts = self.failed[side], self.attempts[side]
            if failed > _MAX_FAILED and failed > attempts * _MAX_FAILED_SHARE:
                raise RuntimeError(
                    f"{self._case.group}: {self._case.name}: {failed} of {attempts} operations "
                    f"of {side} failed; the first: {self.first}"
                ) from exc
            return None

    def require(self, side: str, values: list[float]) -> None:
        """Raise when every operation of `side` failed: there is no figure to show."""
        if not values:
            raise RuntimeError(
                f"{self._case.group}: {self._case.name}: every operation of {side} failed; "
                f"the first: {self.first}"
            )

    def note(self) -> str | None:
        """`failed N of M samples of ours (first error)`, or None when nothing failed."""
        parts = [
            f"failed {self.failed[side]} of {self.attempts[side]} samples of {side}"
            for side in ("ours", "peer")
            if self.failed[side]
        ]
        return f"{', '.join(parts)} ({self.first})" if parts else None


def _per_op_ns(op: Operation, batch: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(batch):
        op()
    return (time.perf_counter_ns() - started) / batch


def _calibrate(op: Operation) -> tuple[float, int]:
    """Estimate the cost of one operation and the batch that makes a sample last ~_SAMPLE_NS."""
    batch, elapsed = 1, 0.0
    while True:
        cost = _per_op_ns(op, batch)
        elapsed += cost * batch
        if elapsed >= _CALIBRATION_NS or cost * batch >= _SAMPLE_NS:
            return cost, max(1, int(_SAMPLE_NS / max(cost, 1.0)))
        batch *= 2


def _calibrated(op: Operation, side: str, failures: _Failures) -> tuple[float, int]:
    while (calibration := failures.run(side, functools.partial(_calibrate, op))) is None:
        pass  # calibrate again: a failure is counted, and too many stop the row
    return calibration


def _reported_figure(op: Operation) -> float:
    figure = op()
    if not isinstance(figure, int | float):
        raise TypeError(f"a reported operation returns its figure, got {figure!r}")
    return float(figure)


def _rewind(*ops: Operation | None) -> None:
    """Back to their first input, so ours and the peer go on in lockstep (see `Cycling`)."""
    for op in ops:
        rewind = getattr(op, "rewind", None)
        if callable(rewind):
            rewind()


def _loop_overhead_ns(batch: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(batch):
        pass
    return (time.perf_counter_ns() - started) / batch


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run_case(case: Case, budget: Budget) -> RowResult:
    """Measure `case` within `budget`; setup is never timed and the GC is paused while timing.

    An operation that raises loses its sample, which the row counts and notes; a row where ours
    failed does not pass. Only a side failing again and again stops the row.
    """
    ours = case.ours()
    peer = case.peer() if case.peer is not None else None
    failures = _Failures(case)
    try:
        if case.unit != "ns" or case.reported:
            row = _measure_reported(case, ours, peer, budget.rounds, failures)
        else:
            row = _measure(case, budget, ours, peer, failures)
        notes = [note for note in (_note(ours, peer), failures.note()) if note]
        return replace(
            row,
            note="; ".join(notes) or None,
            passed=False if failures.failed["ours"] else row.passed,
            ours_failed=failures.failed["ours"],
            peer_failed=failures.failed["peer"],
        )
    finally:
        for op in (ours, peer):
            close = getattr(op, "close", None)
            if callable(close):
                close()  # operations that own processes or loops release them here


def _measure(
    case: Case, budget: Budget, ours: Operation, peer: Operation | None, failures: _Failures
) -> RowResult:
    ours_cost, ours_batch = _calibrated(ours, "ours", failures)
    peer_cost, peer_batch = _calibrated(peer, "peer", failures) if peer is not None else (0.0, 1)
    batch = case.batch if case.batch > 1 else min(ours_batch, peer_batch if peer else ours_batch)
    per_round_ns = (ours_cost + peer_cost) * batch
    wanted = int(budget.seconds_per_side * 1e9 * (2 if peer else 1) / max(per_round_ns, 1.0))
    samples = max(budget.min_samples, min(budget.max_samples, wanted))
    overhead = min(_loop_overhead_ns(batch) for _ in range(5))
    _rewind(ours, peer)

    def timed(op: Operation) -> float:
        return _per_op_ns(op, batch) - overhead

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        ours_ns, peer_ns = _interleaved(
            ours, peer, samples, timed, failures, collect=gc_was_enabled
        )
    finally:
        if gc_was_enabled:
            gc.enable()
    return _summarise(case, ours_ns, peer_ns, batch)


def _measure_reported(
    case: Case, ours: Operation, peer: Operation | None, rounds: int, failures: _Failures
) -> RowResult:
    """Rows whose operations return their own figure (bytes, or ns they measured): interleaved."""
    ours_values, peer_values = _interleaved(ours, peer, rounds, _reported_figure, failures)
    return _summarise(case, ours_values, peer_values, batch=1)


def _interleaved(
    ours: Operation,
    peer: Operation | None,
    rounds: int,
    figure: Callable[[Operation], float],
    failures: _Failures,
    *,
    collect: bool = False,
) -> tuple[list[float], list[float]]:
    """`rounds` figures of each side, ours and the peer in turn.

    Who goes first alternates, so a steady drift does not favour one side. A failed operation
    loses its figure, and both sides are rewound so that they go on in lockstep.
    """
    figures: dict[str, list[float]] = {"ours": [], "peer": []}
    sides = [("ours", ours)] if peer is None else [("ours", ours), ("peer", peer)]
    for index in range(rounds):
        failed = False
        for side, op in sides if index % 2 == 0 else sides[::-1]:
            value = failures.run(side, functools.partial(figure, op))
            if value is None:
                failed = True
            else:
                figures[side].append(value)
        if failed:
            _rewind(ours, peer)
        if collect and index % 64 == 63:
            gc.collect()  # between samples only, so collections are never inside a timing
    for side, _ in sides:
        failures.require(side, figures[side])
    return figures["ours"], figures["peer"]


def _note(ours: Operation, peer: Operation | None) -> str | None:
    parts = []
    for op in (ours, peer):
        note = getattr(op, "note", None)
        if callable(note):
            parts.append(str(note()))
    return "; ".join(parts) or None


def _summarise(case: Case, ours_ns: list[float], peer_ns: list[float], batch: int) -> RowResult:
    ours_median = statistics.median(ours_ns)
    quartiles = statistics.quantiles(ours_ns, n=4) if len(ours_ns) > 1 else [ours_median] * 3
    spread = (quartiles[2] - quartiles[0]) / ours_median if ours_median > 0 else 0.0
    peer_median = statistics.median(peer_ns) if peer_ns else None
    ratio = ours_median / peer_median if peer_median else None
    ours_p95 = _quantile(ours_ns, 0.95)
    fractions = _bound_fractions(case, ours_median, ours_p95, peer_median)
    return RowResult(
        group=case.group,
        name=case.name,
        ours_median_ns=ours_median,
        ours_p95_ns=ours_p95,
        ours_spread=spread,
        peer_name=case.peer_name,
        peer_median_ns=peer_median,
        ratio=ratio,
        seed_figure=case.seed_figure,
        target=case.target.describe(case.unit),
        passed=all(f <= 1.0 for f in fractions) if fractions else None,
        target_fraction=max(fractions) if fractions else None,
        samples=len(ours_ns),
        batch=batch,
        unit=case.unit,
    )


def _bound_fractions(
    case: Case, ours_median: float, ours_p95: float, peer_median: float | None
) -> list[float]:
    """Each of the target's checks as figure / bound: ≤ 1 passes."""
    target = case.target
    fractions: list[float] = []
    if target.max_ratio is not None and peer_median:
        fractions.append(ours_median / peer_median / target.max_ratio)
    if target.max_added_ns is not None and peer_median is not None:
        fractions.append((ours_median - peer_median) / target.max_added_ns)
    if target.max_shortfall is not None and peer_median is not None:
        shortfall = peer_median - ours_median
        if target.max_shortfall > 0:
            fractions.append(shortfall / target.max_shortfall)
        else:  # "at least as good as the peer"
            fractions.append(0.0 if shortfall <= 0 else math.inf)
    if target.max_median_ns is not None:
        fractions.append(ours_median / target.max_median_ns)
    if target.max_p95_ns is not None:
        fractions.append(ours_p95 / target.max_p95_ns)
    return fractions
