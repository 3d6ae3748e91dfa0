"""The benchmark machinery: sample bookkeeping and verdicts (never timing assertions)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from companion.bench import Budget, Case, Report, Target, load_cases, run_case, to_markdown
from companion.bench._case import Cycling
from companion.bench._render import row_cells
from companion.bench._runner import _summarise
from companion.errors import InvalidInput

TINY = Budget(seconds_per_side=0.01, min_samples=5, max_samples=20)


def _noop() -> object:
    return None


class _Logged:
    """An operation that appends its side's name to a shared log; a rewind is logged too."""

    def __init__(self, side: str, log: list[str]) -> None:
        self.side, self.log = side, log

    def __call__(self) -> object:
        self.log.append(self.side)
        return None

    def rewind(self) -> None:
        self.log.append("rewind")


def test_run_case_interleaves_ours_and_peer_alternating_who_goes_first() -> None:
    log: list[str] = []
    case = Case(
        "g",
        "order",
        ours=lambda: _Logged("ours", log),
        peer=lambda: _Logged("peer", log),
        peer_name="peer",
        batch=3,
    )
    row = run_case(case, TINY)
    assert 5 <= row.samples <= 20
    assert row.batch == 3
    # Calibration comes first and ends with both sides rewound; then the timed samples, batch
    # by batch: ours then the peer in even samples, the peer then ours in odd ones.
    measured = log[len(log) - log[::-1].index("rewind") :]
    assert log[len(log) - len(measured) - 2 : len(log) - len(measured)] == ["rewind", "rewind"]
    expected: list[str] = []
    for index in range(row.samples):
        first, second = ("ours", "peer") if index % 2 == 0 else ("peer", "ours")
        expected += [first] * 3 + [second] * 3
    assert measured == expected


def test_ours_and_peer_see_the_same_inputs_in_the_same_order() -> None:
    inputs = list(range(1009))  # prime: calibration almost surely stops at different inputs
    seen: dict[str, list[int]] = {"ours": [], "peer": []}

    def cheap(item: int) -> object:
        seen["ours"].append(item)
        return item

    def dear(item: int) -> object:
        seen["peer"].append(item)
        return sum(range(2000))  # ~100x the cost of `cheap`: calibration runs it fewer times

    calibration: dict[str, int] = {}

    class Recorded(Cycling[int]):
        def __init__(self, side: str, run: Callable[[int], object]) -> None:
            super().__init__(inputs, run)
            self.side = side

        def rewind(self) -> None:
            calibration[self.side] = len(seen[self.side])
            seen[self.side].clear()
            super().rewind()

    case = Case(
        "g",
        "lockstep",
        ours=lambda: Recorded("ours", cheap),
        peer=lambda: Recorded("peer", dear),
        peer_name="peer",
        batch=4,
    )
    row = run_case(case, TINY)
    assert calibration["ours"] != calibration["peer"]  # without the rewind they would differ
    assert len(seen["ours"]) == row.samples * 4
    assert seen["ours"] == seen["peer"] == inputs[: row.samples * 4]


class _FailsOnce:
    """A cheap operation that raises once, like a sandbox run that timed out.

    It raises on its first call (calibration), or on the 1,500th call after the runner first
    rewinds it, which it does when calibration is over: in the middle of the second timed sample.
    """

    def __init__(self, *, in_timed_sample: bool) -> None:
        self.counting = not in_timed_sample
        self.calls = 0
        self.raised_at: int | None = None
        self.fail_at = 1500 if in_timed_sample else 1

    def __call__(self) -> object:
        self.calls += self.counting
        if self.calls == self.fail_at and self.raised_at is None:
            self.raised_at = self.calls
            raise RuntimeError("benchmark snippet failed: status='timeout'")
        return None

    def rewind(self) -> None:
        self.counting = True


@pytest.mark.parametrize("in_timed_sample", [False, True], ids=["in-calibration", "timed"])
def test_a_failed_sample_is_counted_and_shown_and_the_run_goes_on(in_timed_sample: bool) -> None:
    ours = _FailsOnce(in_timed_sample=in_timed_sample)
    case = Case(
        "g",
        "flaky",
        ours=lambda: ours,
        peer=lambda: _noop,
        peer_name="peer",
        target=Target(max_median_ns=1e9),  # met by every sample that ran
        batch=1000,
    )
    row = run_case(case, Budget(seconds_per_side=0.01, min_samples=20, max_samples=20))
    assert ours.raised_at == ours.fail_at
    assert row.samples == (19 if in_timed_sample else 20)  # the failed sample is dropped
    assert (row.ours_failed, row.peer_failed) == (1, 0)
    assert row.passed is False  # a row whose operation failed does not pass, whatever its median
    assert row.note is not None
    assert "failed 1 of " in row.note
    assert "samples of ours (ours: RuntimeError: benchmark snippet failed: status='timeout')" in (
        row.note
    )
    assert row.note in to_markdown(Report(mode="quick", rows=[row]))
    assert row_cells(row)[-1] == "short (1 of ours failed)"  # the terminal table shows it too


def test_a_peer_that_fails_once_is_noted_without_failing_our_row() -> None:
    peer = _FailsOnce(in_timed_sample=True)
    case = Case(
        "g",
        "flaky peer",
        ours=lambda: _noop,
        peer=lambda: peer,
        peer_name="peer",
        target=Target(max_median_ns=1e9),
        batch=1000,
    )
    row = run_case(case, Budget(seconds_per_side=0.01, min_samples=20, max_samples=20))
    assert peer.raised_at == peer.fail_at
    assert row.samples == 20
    assert (row.ours_failed, row.peer_failed) == (0, 1)
    assert row.passed is True
    assert row.note is not None
    assert "samples of peer" in row.note
    assert row_cells(row)[-1] == "pass (1 of peer failed)"


def test_reported_rows_survive_a_failed_round() -> None:
    outcomes: list[float | Exception] = [RuntimeError("status='timeout'"), 2e6, 2e6, 2e6]
    calls = iter(outcomes)

    def ours() -> float:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    case = Case("g", "burst", ours=lambda: ours, target=Target(max_median_ns=1e9), reported=True)
    row = run_case(case, Budget(seconds_per_side=0.01, rounds=4))
    assert row.samples == 3
    assert row.ours_median_ns == 2e6
    assert row.ours_failed == 1
    assert row.passed is False


def test_an_operation_that_always_fails_stops_its_row_with_the_error() -> None:
    def broken() -> object:
        raise OSError("no such sandbox")

    with pytest.raises(RuntimeError, match=r"operations of ours failed.*OSError: no such sandbox"):
        run_case(Case("g", "broken", ours=lambda: broken), TINY)


def test_setup_runs_once_and_is_not_timed() -> None:
    setups: list[int] = []

    def setup() -> object:
        setups.append(1)
        return _noop

    run_case(Case("g", "setup", ours=setup), TINY)  # type: ignore[arg-type]
    assert setups == [1]


@pytest.mark.parametrize(
    ("target", "ours", "peer", "passed"),
    [
        (Target(max_ratio=0.75), [70.0] * 5, [100.0] * 5, True),
        (Target(max_ratio=0.75), [80.0] * 5, [100.0] * 5, False),
        (Target(max_added_ns=1500), [2400.0] * 5, [1000.0] * 5, True),
        (Target(max_added_ns=1500), [2600.0] * 5, [1000.0] * 5, False),
        (Target(max_median_ns=10e6), [9e6] * 5, [], True),
        # The p95 bound looks at the tail: a fine median does not save a slow 95th percentile.
        (Target(max_p95_ns=10e6), [1e6] * 8 + [11e6] * 2, [], False),
        (Target(max_p95_ns=10e6), [1e6] * 8 + [9e6] * 2, [], True),
        (Target(), [1.0] * 5, [], None),
    ],
)
def test_verdicts(
    target: Target, ours: list[float], peer: list[float], passed: bool | None
) -> None:
    case = Case("g", "v", ours=lambda: _noop, target=target)
    assert _summarise(case, ours, peer, batch=1).passed is passed


def test_ratio_and_spread_come_from_medians_and_quartiles() -> None:
    case = Case("g", "r", ours=lambda: _noop, peer_name="p")
    row = _summarise(case, [1.0, 2.0, 3.0, 4.0, 100.0], [4.0, 4.0, 4.0], batch=1)
    assert row.ours_median_ns == 3.0
    assert row.ratio == 0.75
    assert row.ours_p95_ns == 100.0


def test_unknown_group_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="unknown benchmark group"):
        load_cases(["nope"])


def test_report_renders_json_and_markdown() -> None:
    row = run_case(Case("g", "noop", ours=lambda: _noop, target=Target(max_median_ns=1e9)), TINY)
    report = Report(mode="quick", rows=[row])
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["rows"][0]["name"] == "noop"
    assert as_json["machine"]["cores"] >= 1
    markdown = to_markdown(report)
    assert "| g | noop |" in markdown
    assert "pass" in markdown


def test_size_rows_report_the_returned_bytes_and_their_ratio() -> None:
    case = Case(
        "g",
        "memory",
        ours=lambda: lambda: 3 * 2**20,
        peer=lambda: lambda: 2 * 2**20,
        peer_name="dict",
        target=Target(max_ratio=2.0),
        unit="bytes",
    )
    row = run_case(case, TINY)
    assert row.ours_median_ns == 3 * 2**20
    assert row.ratio == 1.5
    assert row.passed is True
    assert "3 MiB" in to_markdown(Report(mode="quick", rows=[row]))


@pytest.mark.parametrize(("ours", "passed"), [(0.655, True), (0.649, False), (0.7, True)])
def test_score_rows_pass_within_their_shortfall_of_the_peer(ours: float, passed: bool) -> None:
    case = Case(
        "g",
        "nDCG@10",
        ours=lambda: lambda: ours,
        peer=lambda: lambda: 0.66,
        peer_name="embedded",
        target=Target(max_shortfall=0.01),
        unit="score",
    )
    row = run_case(case, TINY)
    assert row.ours_median_ns == ours
    assert row.passed is passed
    table = to_markdown(Report(mode="quick", rows=[row]))
    assert f"{ours:.4f}" in table
    assert "≥ peer − 0.01" in table
