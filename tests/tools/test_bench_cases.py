"""The tools rows of `companion bench` compare like with like (issue #15)."""

from __future__ import annotations

from companion.bench.cases_tools import cases
from companion.tools import ToolResult


def test_the_validated_call_is_measured_against_pydantics_validate_call() -> None:
    row = next(case for case in cases() if case.name.startswith("add(5, 3) through registry"))
    assert row.peer is not None
    assert row.peer_name is not None
    assert "validate_call" in row.peer_name
    assert (row.target.max_ratio, row.target.max_median_ns) == (1.5, 15_000)
    ours, peer = row.ours(), row.peer()
    result = ours()
    assert isinstance(result, ToolResult)
    assert result.value == peer() == 8.0  # the same function, the same arguments


def test_the_bare_call_is_reported_without_a_verdict() -> None:
    bare = [case for case in cases() if "unvalidated" in case.name]
    assert len(bare) == 1
    assert bare[0].target.describe() == "report only"
    assert all(case.target.max_ratio != 15.0 for case in cases())
