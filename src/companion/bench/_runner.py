"""Times one case: ours and the peer interleaved in one run, so drift and noise hit both alike."""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, replace

from companion.bench._case import Case, Operation

__all__ = ["FULL", "QUICK", "Budget", "RowResult", "run_case"]

_CALIBRATION_NS = 2_000_000
_SAMPLE_NS = 200_000  # a timed sample lasts about this long, so the clock's own cost vanishes


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
    """Measure `case` within `budget`; setup is never timed and the GC is paused while timing."""
    ours = case.ours()
    peer = case.peer() if case.peer is not None else None
    try:
        if case.unit == "bytes" or case.reported:
            row = _measure_reported(case, ours, peer, budget.rounds)
        else:
            row = _measure(case, budget, ours, peer)
        return replace(row, note=_note(ours, peer))
    finally:
        for op in (ours, peer):
            close = getattr(op, "close", None)
            if callable(close):
                close()  # operations that own processes or loops release them here


def _measure(case: Case, budget: Budget, ours: Operation, peer: Operation | None) -> RowResult:
    ours_cost, ours_batch = _calibrate(ours)
    peer_cost, peer_batch = _calibrate(peer) if peer is not None else (0.0, 1)
    batch = case.batch if case.batch > 1 else min(ours_batch, peer_batch if peer else ours_batch)
    per_round_ns = (ours_cost + peer_cost) * batch
    wanted = int(budget.seconds_per_side * 1e9 * (2 if peer else 1) / max(per_round_ns, 1.0))
    samples = max(budget.min_samples, min(budget.max_samples, wanted))
    overhead = min(_loop_overhead_ns(batch) for _ in range(5))

    ours_ns: list[float] = []
    peer_ns: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for index in range(samples):
            # Alternate who goes first so a steady drift does not favour one side.
            if peer is not None and index % 2:
                peer_ns.append(_per_op_ns(peer, batch) - overhead)
            ours_ns.append(_per_op_ns(ours, batch) - overhead)
            if peer is not None and not index % 2:
                peer_ns.append(_per_op_ns(peer, batch) - overhead)
            if index % 64 == 63 and gc_was_enabled:
                gc.collect()  # between samples only, so collections are never inside a timing
    finally:
        if gc_was_enabled:
            gc.enable()
    return _summarise(case, ours_ns, peer_ns, batch)


def _measure_reported(
    case: Case, ours: Operation, peer: Operation | None, rounds: int
) -> RowResult:
    """Rows whose operations return their own figure (bytes, or ns they measured): interleaved."""
    ours_values: list[float] = []
    peer_values: list[float] = []
    for index in range(rounds):
        if peer is not None and index % 2:
            peer_values.append(float(peer()))  # type: ignore[arg-type]
        ours_values.append(float(ours()))  # type: ignore[arg-type]
        if peer is not None and not index % 2:
            peer_values.append(float(peer()))  # type: ignore[arg-type]
    return _summarise(case, ours_values, peer_values, batch=1)


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
    if target.max_median_ns is not None:
        fractions.append(ours_median / target.max_median_ns)
    if target.max_p95_ns is not None:
        fractions.append(ours_p95 / target.max_p95_ns)
    return fractions
