from __future__ import annotations

import json

import pytest

from companion.errors import InvalidInput
from companion.monitoring import InvalidWindow, Monitor
from tests._clock import FakeClock


def test_request_stats_and_error_rate() -> None:
    monitor = Monitor(clock=FakeClock())
    for i in range(1, 101):
        monitor.record_request("/search", i / 1000, 500 if i % 10 == 0 else 200)
    stats = monitor.request_stats("/search")
    assert stats["count"] == 100
    assert stats["avg"] == pytest.approx(0.0505)
    assert stats["p50"] == pytest.approx(0.050, rel=0.01)
    assert stats["p95"] == pytest.approx(0.095, rel=0.01)
    assert stats["p99"] == pytest.approx(0.099, rel=0.01)
    assert stats["error_rate"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("status", "failed"),
    [(200, False), (404, False), (500, True), ("503", True), ("success", False), ("error", True)],
)
def test_what_counts_as_an_error(status: int | str, failed: bool) -> None:
    monitor = Monitor()
    monitor.record_request("/x", 0.01, status)
    assert monitor.request_stats("/x")["error_rate"] == (1.0 if failed else 0.0)


def test_windowed_request_stats() -> None:
    clock = FakeClock()
    monitor = Monitor(clock=clock)
    monitor.record_request("/a", 1.0, 500)
    clock.advance(600)
    monitor.record_request("/a", 0.01, 200)
    recent = monitor.request_stats("/a", window_s=60)
    assert recent["count"] == 1
    assert recent["error_rate"] == 0.0
    assert monitor.request_stats("/a")["error_rate"] == 0.5
    with pytest.raises(InvalidWindow):
        monitor.request_stats("/a", window_s=0)


def test_unknown_endpoint_has_empty_stats() -> None:
    stats = Monitor().request_stats("/never")
    assert stats == {
        "count": 0,
        "avg": None,
        "p50": None,
        "p95": None,
        "p99": None,
        "error_rate": 0.0,
    }


def test_cache_hit_rate() -> None:
    monitor = Monitor()
    assert monitor.cache_hit_rate("users") is None
    for _ in range(3):
        monitor.record_cache_hit("users")
    monitor.record_cache_miss("users")
    assert monitor.cache_hit_rate("users") == 0.75


def test_record_error_keeps_a_bounded_recent_list() -> None:
    monitor = Monitor(error_history=5)
    for i in range(20):
        monitor.record_error("ValueError", f"bad {i}")
    assert monitor.errors.labels("ValueError").value == 20
    recent = monitor.recent_errors()
    assert len(recent) == 5
    assert recent[0]["message"] == "bad 19"


def test_report_shows_every_endpoint_in_text_and_json() -> None:
    monitor = Monitor(clock=FakeClock())
    endpoints = [f"/v1/route{i}" for i in range(60)]
    for endpoint in endpoints:
        monitor.record_request(endpoint, 0.02, 200)
    monitor.record_cache_hit("l1")
    text = monitor.generate_report()
    for endpoint in endpoints:
        assert endpoint in text
    assert "hits          1" in text
    data = json.loads(monitor.generate_report("json"))
    assert set(data["endpoints"]) == set(endpoints)
    assert data["endpoints"]["/v1/route0"]["windows"]["1m"]["count"] == 1
    assert data["caches"]["l1"] == {"hit_rate": 1.0, "hits": 1.0}
    with pytest.raises(InvalidInput, match="'text' or 'json'"):
        monitor.generate_report("xml")  # type: ignore[arg-type]


def test_timer_as_context_manager_and_decorator() -> None:
    clock = FakeClock()
    monitor = Monitor(clock=clock)
    with monitor.timer("companion_block_seconds"):
        clock.advance(0.25)
    timed = monitor.timer("companion_fn_seconds", {"kind": "sync"})

    @timed
    def work() -> int:
        clock.advance(0.5)
        return 1

    assert work() == 1
    assert work.__name__ == "work"
    block = monitor.histogram("companion_block_seconds").labels().total()
    assert block.sum == pytest.approx(0.25)
    fn = monitor.histogram("companion_fn_seconds", labels=("kind",)).labels("sync").total()
    assert fn.sum == pytest.approx(0.5)


async def test_timer_on_async_code_records_even_when_it_raises() -> None:
    clock = FakeClock()
    monitor = Monitor(clock=clock)

    @monitor.timer("companion_async_seconds")
    async def fails() -> None:
        clock.advance(1.0)
        raise RuntimeError("nope")

    with pytest.raises(RuntimeError):
        await fails()
    async with monitor.timer("companion_async_seconds"):
        clock.advance(2.0)
    sketch = monitor.histogram("companion_async_seconds").labels().total()
    assert (sketch.count, sketch.sum) == (2, 3.0)


def test_collector_source_names_are_validated() -> None:
    from companion.monitoring import InvalidMetricName

    with pytest.raises(InvalidMetricName, match="source name"):
        Monitor().add_collector_source("Bad-Name", dict)
