"""The benchmark machinery: sample bookkeeping and verdicts (never timing assertions)."""

from __future__ import annotations

import json

import pytest

from companion.bench import Budget, Case, Report, Target, load_cases, run_case, to_markdown
from companion.bench._runner import _summarise
from companion.errors import InvalidInput

TINY = Budget(seconds_per_side=0.01, min_samples=5, max_samples=20)


def _noop() -> object:
    return None


def test_run_case_interleaves_ours_and_peer_with_enough_samples() -> None:
    calls = {"ours": 0, "peer": 0}

    def ours() -> object:
        calls["ours"] += 1
        return None

    def peer() -> object:
        calls["peer"] += 1
        return None

    case = Case("g", "counting", ours=lambda: ours, peer=lambda: peer, peer_name="peer")
    row = run_case(case, TINY)
    assert 5 <= row.samples <= 20
    assert row.peer_median_ns is not None
    assert row.ratio is not None
    assert calls["ours"] >= row.samples * row.batch
    assert calls["peer"] >= row.samples * row.batch


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
