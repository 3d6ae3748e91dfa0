from __future__ import annotations

import threading

import pytest

from companion.errors import InvalidInput
from companion.monitoring import (
    InvalidLabels,
    InvalidMetricName,
    MetricNotFound,
    MetricTypeConflict,
    Monitor,
)
from tests._clock import FakeClock


def test_counter_gauge_histogram_basics() -> None:
    monitor = Monitor(clock=FakeClock())
    counter = monitor.counter("jobs_total", "Jobs", ("kind",))
    counter.labels("a").inc()
    counter.labels("a").inc(2)
    assert counter.labels("a").value == 3
    gauge = monitor.gauge("queue_depth")
    gauge.set(5)
    gauge.inc()
    gauge.dec(2)
    assert gauge.labels().value == 4
    histogram = monitor.histogram("work_seconds")
    histogram.observe(0.5)
    assert histogram.labels().total().count == 1


def test_label_children_are_cached_and_normalised() -> None:
    counter = Monitor().counter("hits_total", labels=("status",))
    assert counter.labels(200) is counter.labels(200)
    assert counter.labels(200) is counter.labels("200")
    assert [values for values, _ in counter.series()] == [("200",)]
    assert counter.get("404") is None


def test_same_name_returns_same_family_or_conflicts() -> None:
    monitor = Monitor()
    assert monitor.counter("a_total", labels=("x",)) is monitor.counter("a_total", labels=("x",))
    with pytest.raises(MetricTypeConflict, match="already exists as a counter"):
        monitor.gauge("a_total", labels=("x",))
    with pytest.raises(MetricTypeConflict):
        monitor.counter("a_total", labels=("y",))
    with pytest.raises(MetricNotFound, match="no metric named"):
        monitor.get("missing")


@pytest.mark.parametrize("name", ["", "1abc", "has space", "dash-ed", None])
def test_invalid_metric_names_are_rejected(name: object) -> None:
    with pytest.raises(InvalidMetricName, match="metric name must match"):
        Monitor().counter(name)  # type: ignore[arg-type]


@pytest.mark.parametrize("labels", [("__reserved",), ("bad-label",), ("a", "a")])
def test_invalid_label_names_are_rejected(labels: tuple[str, ...]) -> None:
    with pytest.raises(InvalidLabels):
        Monitor().counter("x_total", labels=labels)


def test_wrong_number_of_label_values() -> None:
    counter = Monitor().counter("x_total", labels=("a", "b"))
    with pytest.raises(InvalidLabels, match="takes 2 label values"):
        counter.labels("only-one")
    with pytest.raises(InvalidLabels, match=r"call \.labels"):
        counter.inc()


def test_counters_only_go_up() -> None:
    with pytest.raises(InvalidInput, match="only goes up"):
        Monitor().counter("x_total").inc(-1)


def test_cardinality_limit_redirects_to_overflow_and_counts_drops() -> None:
    monitor = Monitor(max_series=10)
    counter = monitor.counter("requests_by_user_total", labels=("user",))
    for user in range(25):
        counter.labels(f"user-{user}").inc()
    series = dict(counter.series())
    assert len(series) == 11  # ten real series plus the overflow one
    assert series[("_overflow",)].value == 15
    dropped = monitor.dropped_series.labels("requests_by_user_total").value
    assert dropped == 15


def test_twenty_thousand_endpoints_stay_bounded() -> None:
    monitor = Monitor(max_series=100)
    for i in range(20_000):
        monitor.record_request(f"/items/{i}", 0.01, 200)
    assert len(monitor.request_duration.series()) == 101
    assert len(monitor.requests.series()) <= 101
    assert monitor.request_stats("_overflow")["count"] == 20_000 - 100


def test_no_lost_counts_under_eight_threads() -> None:
    monitor = Monitor()
    counter = monitor.counter("parallel_total").labels()
    histogram = monitor.histogram("parallel_seconds").labels()
    gauge = monitor.gauge("parallel_gauge").labels()
    per_thread = 20_000
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            counter.inc()
            histogram.observe(0.001)
            gauge.inc()
            monitor.record_request("/p", 0.001, 200)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.value == 8 * per_thread
    assert histogram.total().count == 8 * per_thread
    assert gauge.value == 8 * per_thread
    assert monitor.request_stats("/p")["count"] == 8 * per_thread


def test_histogram_buckets_must_increase() -> None:
    with pytest.raises(InvalidInput, match="strictly increasing"):
        Monitor().histogram("h_seconds", buckets=(1.0, 0.5))
