from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from companion.monitoring import Monitor


def scrape(registry: CollectorRegistry) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> {sorted labels: value}, parsed the way Prometheus would."""
    text = generate_latest(registry).decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def test_scrape_parses_and_shows_recorded_values() -> None:
    registry = CollectorRegistry()
    monitor = Monitor(registry=registry)
    for duration_s in (0.003, 0.02, 0.2, 2.0):
        monitor.record_request("/v1/tools/{name}", duration_s, 200)
    monitor.record_request("/v1/tools/{name}", 0.1, 503)
    monitor.record_cache_hit("tools")
    monitor.record_error("Timeout", "sandbox")
    monitor.record_memory(123e6)
    samples = scrape(registry)
    endpoint = (("endpoint", "/v1/tools/{name}"),)
    assert samples["companion_http_request_duration_seconds_count"][endpoint] == 5
    assert samples["companion_http_request_duration_seconds_sum"][endpoint] == 2.323
    buckets = samples["companion_http_request_duration_seconds_bucket"]
    assert buckets[(*endpoint, ("le", "0.005"))] == 1
    assert buckets[(*endpoint, ("le", "0.25"))] == 4
    assert buckets[(*endpoint, ("le", "+Inf"))] == 5
    requests = samples["companion_http_requests_total"]
    assert requests[(*endpoint, ("status", "503"))] == 1
    assert samples["companion_cache_lookups_total"][(("cache", "tools"), ("result", "hit"))] == 1
    assert samples["companion_errors_total"][(("type", "Timeout"),)] == 1
    assert samples["companion_process_resident_memory_bytes"][()] == 123e6
    assert samples["companion_alerts_firing"][(("level", "CRITICAL"),)] == 0


def test_stats_sources_are_read_at_scrape_time() -> None:
    registry = CollectorRegistry()
    monitor = Monitor(registry=registry)
    stats = {"l1": {"hits": 3, "misses": 1, "size": 10}, "l2": {"hits": 5, "misses": 2}}
    monitor.add_collector_source("cache", lambda: stats)
    samples = scrape(registry)
    assert samples["companion_cache_hits_total"][(("tier", "l2"),)] == 5
    assert samples["companion_cache_size"][(("tier", "l1"),)] == 10
    stats["l1"]["hits"] = 4
    assert scrape(registry)["companion_cache_hits_total"][(("tier", "l1"),)] == 4


def test_a_failing_source_is_counted_not_fatal() -> None:
    registry = CollectorRegistry()
    monitor = Monitor(registry=registry)

    def broken() -> dict[str, dict[str, float]]:
        raise RuntimeError("boom")

    monitor.add_collector_source("sandbox", broken)
    samples = scrape(registry)
    assert samples["companion_monitoring_source_errors_total"][(("source", "sandbox"),)] == 1
    assert "companion_process_resident_memory_bytes" in samples  # the rest of the scrape is intact


def test_worker_label_on_every_sample() -> None:
    registry = CollectorRegistry()
    monitor = Monitor(registry=registry, const_labels={"worker": "3"})
    monitor.record_request("/a", 0.01, 200)
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            assert sample.labels.get("worker") == "3", sample


async def test_health_results_are_exported() -> None:
    registry = CollectorRegistry()
    monitor = Monitor(registry=registry)
    monitor.register_health_check("db", lambda: False)
    await monitor.run_health_checks()
    assert scrape(registry)["companion_health_check_up"][(("check", "db"),)] == 0


def _family_names(registry: CollectorRegistry) -> set[str]:
    return {family.name for family in registry.collect()}


def test_without_a_registry_nothing_is_registered_globally() -> None:
    before = _family_names(REGISTRY)
    first, second = Monitor(), Monitor()  # on one shared registry the second would clash
    for monitor in (first, second):
        monitor.record_request("/a", 0.01, 200)
        monitor.record_error("Timeout", "sandbox")
    assert _family_names(REGISTRY) == before
    assert not {name for name in _family_names(REGISTRY) if name.startswith("companion_")}
    # The same look does see a monitor's families on the registry it is given.
    given = CollectorRegistry()
    Monitor(registry=given)
    assert "companion_http_request_duration_seconds" in _family_names(given)
