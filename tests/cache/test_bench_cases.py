from __future__ import annotations

from companion.bench.cases_cache import cases, memory_ratio


def test_five_rows_whose_operations_run() -> None:
    rows = cases()
    assert len(rows) == 5
    for row in rows[:4]:
        assert row.peer is not None
        for setup in (row.ours, row.peer):
            operation = setup()
            operation()
            operation()


def test_memory_ratio_measures_both_structures() -> None:
    ours, plain = memory_ratio(2000)
    assert ours > plain > 0
