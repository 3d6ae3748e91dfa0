from __future__ import annotations

import logging
import math

import pytest

from companion.monitoring import (
    Alert,
    AlertLevel,
    InvalidLabels,
    InvalidQuantile,
    InvalidThreshold,
    InvalidWindow,
    MetricNotFound,
    Monitor,
    UnknownAlertLevel,
)
from tests._clock import FakeClock


def test_alert_fires_once_and_resolves_once() -> None:
    clock = FakeClock()
    seen: list[Alert] = []
    monitor = Monitor(clock=clock, on_alert=seen.append)
    monitor.set_threshold("companion_process_resident_memory_bytes", 500e6, "warning")
    monitor.record_memory(600e6)
    fired = monitor.evaluate()
    assert [(a.state, a.level) for a in fired] == [("firing", AlertLevel.WARNING)]
    for _ in range(100):  # no flood: still crossed, nothing new
        assert monitor.evaluate() == []
    assert len(monitor.active_alerts()) == 1
    monitor.record_memory(100e6)
    clock.advance(30)
    resolved = monitor.evaluate()
    assert [(a.state, a.resolved_at_s) for a in resolved] == [("resolved", clock.now_s)]
    assert monitor.active_alerts() == []
    assert [a.state for a in seen] == ["firing", "resolved"]
    assert [a.state for a in monitor.alert_history()] == ["resolved", "firing"]


def test_for_s_holds_before_firing() -> None:
    clock = FakeClock()
    monitor = Monitor(clock=clock)
    monitor.set_threshold("companion_process_cpu_percent", 90, AlertLevel.CRITICAL, for_s=60)
    monitor.record_cpu(95)
    assert monitor.evaluate() == []
    clock.advance(59)
    assert monitor.evaluate() == []
    clock.advance(1)
    assert [a.level for a in monitor.evaluate()] == [AlertLevel.CRITICAL]


def test_a_dip_resets_the_hold() -> None:
    clock = FakeClock()
    monitor = Monitor(clock=clock)
    monitor.set_threshold("companion_process_cpu_percent", 90, "error", for_s=30)
    monitor.record_cpu(95)
    monitor.evaluate()
    clock.advance(20)
    monitor.record_cpu(10)
    monitor.evaluate()
    monitor.record_cpu(95)
    clock.advance(20)
    assert monitor.evaluate() == []


def test_percentile_threshold_per_endpoint_over_a_window() -> None:
    clock = FakeClock()
    monitor = Monitor(clock=clock)
    monitor.set_threshold(
        "companion_http_request_duration_seconds", 0.5, "warning", stat="p95", window_s=60
    )
    for _ in range(100):
        monitor.record_request("/slow", 1.0, 200)
        monitor.record_request("/fast", 0.01, 200)
    fired = monitor.evaluate()
    assert [a.labels for a in fired] == [{"endpoint": "/slow"}]
    clock.advance(120)  # traffic stopped: the window empties and the alert resolves
    assert [a.state for a in monitor.evaluate()] == ["resolved"]


def test_threshold_restricted_to_labels_and_below() -> None:
    monitor = Monitor(clock=FakeClock())
    monitor.set_threshold(
        "companion_cache_lookups_total",
        5,
        "info",
        labels={"cache": "users", "result": "hit"},
        above=False,
    )
    monitor.record_cache_hit("users")
    monitor.record_cache_hit("other")
    fired = monitor.evaluate()
    assert [a.labels for a in fired] == [{"cache": "users", "result": "hit"}]


def test_history_is_a_bounded_ring() -> None:
    clock = FakeClock()
    monitor = Monitor(clock=clock, alert_history=10)
    monitor.set_threshold("companion_process_cpu_percent", 50, "info")
    for i in range(100):
        monitor.record_cpu(100 if i % 2 == 0 else 0)
        monitor.evaluate()
    assert len(monitor.alert_history()) == 10


def test_a_failing_callback_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken(alert: Alert) -> None:
        raise RuntimeError("pager down")

    monitor = Monitor(clock=FakeClock(), on_alert=broken)
    monitor.set_threshold("companion_process_cpu_percent", 50, "info")
    monitor.record_cpu(99)
    with caplog.at_level(logging.ERROR):
        assert len(monitor.evaluate()) == 1
    assert "alert callback failed" in caplog.text


def test_alert_to_dict_is_json_ready() -> None:
    monitor = Monitor(clock=FakeClock())
    monitor.set_threshold("companion_process_cpu_percent", 50, "critical")
    monitor.record_cpu(99)
    (alert,) = monitor.evaluate()
    data = alert.to_dict()
    assert data["level"] == "CRITICAL"
    assert data["name"] == "companion_process_cpu_percent:value>50"


@pytest.mark.parametrize("level", ["loud", 3, None, ""])
def test_unknown_levels_are_rejected(level: object) -> None:
    with pytest.raises(UnknownAlertLevel, match="INFO, WARNING, ERROR, CRITICAL"):
        Monitor().set_threshold("companion_process_cpu_percent", 1, level)  # type: ignore[arg-type]


def test_invalid_thresholds_are_rejected() -> None:
    monitor = Monitor()
    with pytest.raises(MetricNotFound):
        monitor.set_threshold("nope", 1)
    with pytest.raises(InvalidThreshold, match="never negative"):
        monitor.set_threshold("companion_http_requests_total", -1)
    with pytest.raises(InvalidThreshold, match="never negative"):
        monitor.set_threshold("companion_http_request_duration_seconds", -0.1, stat="p99")
    with pytest.raises(InvalidThreshold, match="must be a number"):
        monitor.set_threshold("companion_process_cpu_percent", math.nan)
    with pytest.raises(InvalidThreshold, match="for_s"):
        monitor.set_threshold("companion_process_cpu_percent", 1, for_s=-1)
    with pytest.raises(InvalidQuantile, match="unknown stat"):
        monitor.set_threshold("companion_http_request_duration_seconds", 1, stat="median")
    with pytest.raises(InvalidQuantile, match=r"\[0, 1\]"):
        monitor.set_threshold("companion_http_request_duration_seconds", 1, stat="p101")
    with pytest.raises(InvalidQuantile, match="only stat is 'value'"):
        monitor.set_threshold("companion_process_cpu_percent", 1, stat="p99")
    with pytest.raises(InvalidWindow):
        monitor.set_threshold("companion_http_request_duration_seconds", 1, window_s=10_000)
    with pytest.raises(InvalidLabels, match="has no labels"):
        monitor.set_threshold("companion_process_cpu_percent", 1, labels={"x": "y"})
    assert monitor.set_threshold("companion_event_loop_lag_seconds", 0.1).stat == "value"
