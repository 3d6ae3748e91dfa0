"""Rows that report their own figure, target fractions, the chart, every SPEC target's row, and
the warm unsandboxed worker that the sandbox is measured against."""

from __future__ import annotations

from pathlib import Path

import pytest

from companion.bench import Budget, Case, Report, Target, load_cases, run_case
from companion.bench._plot import plot
from companion.bench._runner import _summarise
from companion.bench.cases_execution import FACTORIAL_OUT, _WarmWorker, cases
from companion.errors import InvalidInput

TINY = Budget(seconds_per_side=0.01, min_samples=5, max_samples=20, rounds=4)


class _Reporting:
    """An operation that reports a fixed figure and says something about itself."""

    def __init__(self, figure: float, label: str) -> None:
        self.figure, self.label, self.calls, self.closed = figure, label, 0, False

    def __call__(self) -> float:
        self.calls += 1
        return self.figure

    def note(self) -> str:
        return f"{self.label} said hello"

    def close(self) -> None:
        self.closed = True


def test_reported_rows_call_each_side_once_per_round_and_keep_their_notes() -> None:
    ours, peer = _Reporting(3e6, "ours"), _Reporting(1e6, "peer")
    case = Case(
        "g",
        "burst",
        ours=lambda: ours,
        peer=lambda: peer,
        peer_name="p",
        target=Target(max_ratio=2.0),
        reported=True,
    )
    row = run_case(case, TINY)
    assert (ours.calls, peer.calls) == (4, 4)
    assert ours.closed
    assert peer.closed
    assert row.ours_median_ns == 3e6
    assert row.ratio == 3.0
    assert row.passed is False
    assert row.target_fraction == 1.5
    assert row.note == "ours said hello; peer said hello"


@pytest.mark.parametrize(
    ("target", "ours", "peer", "fraction"),
    [
        (Target(max_ratio=0.5), [50.0], [100.0], 1.0),
        (Target(max_median_ns=200.0), [50.0], [], 0.25),
        (Target(max_added_ns=100.0), [150.0], [100.0], 0.5),
        (Target(max_ratio=1.0, max_median_ns=100.0), [80.0], [40.0], 2.0),  # the tighter one
        (Target(), [1.0], [], None),
    ],
)
def test_target_fraction_is_the_figure_over_its_tightest_bound(
    target: Target, ours: list[float], peer: list[float], fraction: float | None
) -> None:
    case = Case("g", "f", ours=lambda: lambda: None, target=target)
    assert _summarise(case, ours, peer, batch=1).target_fraction == fraction


def test_byte_targets_are_described_in_bytes() -> None:
    assert Target(max_median_ns=80 * 2**20).describe("bytes") == "median ≤ 80 MiB"


def test_plot_draws_png_and_svg_and_rejects_other_formats(tmp_path: Path) -> None:
    rows = [
        _summarise(Case("g", "fast", ours=lambda: lambda: None, target=Target(max_median_ns=10.0)),
                   [5.0], [], batch=1),
        _summarise(Case("g", "slow", ours=lambda: lambda: None, target=Target(max_ratio=1.0)),
                   [5.0], [2.0], batch=1),
    ]  # fmt: skip
    report = Report(mode="quick", rows=rows)
    plot(report, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")
    plot(report, tmp_path / "chart.svg")
    assert b"<svg" in (tmp_path / "chart.svg").read_bytes()[:500]
    with pytest.raises(InvalidInput, match=r"\.png or \.svg"):
        plot(report, tmp_path / "chart.jpg")


def test_every_spec_target_has_a_row() -> None:
    names = " / ".join(f"{case.group}: {case.name}" for case in load_cases())
    for fragment in (
        "@cached L1 hit",
        "TieredCache.get, L1 hit",
        "L2 hit promoted",
        "counter inc",
        "histogram observe",
        "@profile overhead",
        "Python snippet round trip",
        "runs/s",
        "add(5, 3) through registry",
        "cached pure tool call",
        "batch of 10",
        "time per request",
        "p99 latency",
        "service RSS at idle",
    ):
        assert fragment in names, fragment


def test_the_warm_worker_row_is_reported_not_targeted() -> None:
    (row,) = [case for case in cases() if "warm unsandboxed worker" in case.name]
    assert row.peer is _WarmWorker
    assert row.target == Target()


def test_the_warm_worker_answers_each_snippet_and_ends_on_close() -> None:
    worker = _WarmWorker()
    try:
        assert worker() == FACTORIAL_OUT
        assert worker() == FACTORIAL_OUT  # the same process, again: it keeps reading
    finally:
        worker.close()
    assert worker._process.returncode == 0


def test_a_worker_whose_snippet_fails_is_an_error_and_still_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("companion.bench.cases_execution.FACTORIAL_PY", "print(1 / 0)")
    with pytest.raises(RuntimeError, match="warm worker answered b''"):
        _WarmWorker()
