"""The `telemetry` bench group runs against real services and says what it measured."""

from __future__ import annotations

from companion.bench import Budget, load_cases, run_case

TINY = Budget(seconds_per_side=0.01, min_samples=3, max_samples=5, rounds=1)


def test_every_row_measures_both_sides_without_failing() -> None:
    cases = load_cases(["telemetry"], quick=True)
    assert [case.name.split(",")[0] for case in cases] == [
        "BM25 search (500 passages)",
        "cached tool invoke through the ASGI app",
        "BM25 search through the ASGI app (500 passages)",
    ]
    rows = [run_case(case, TINY) for case in cases]  # every request checks its 200
    for row in rows:
        assert row.ours_failed == row.peer_failed == 0, row.note
        assert row.ours_median_ns > 0
        assert (row.peer_median_ns or 0) > 0
    for row in rows[1:]:  # the on/off rows name each side's p95
        assert row.note is not None
        assert "p95 tracing on" in row.note
        assert "p95 tracing off" in row.note
