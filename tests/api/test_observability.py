"""`/metrics`, reports and alerts as an operator reads them from a running app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from companion.api import create_app
from companion.config import load_settings
from tests.api.conftest import key_headers


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(load_settings(execution_enabled=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _samples(client: TestClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_metrics_count_requests_by_route_template_not_raw_path(client: TestClient) -> None:
    for _ in range(3):
        client.get("/livez")
    client.get("/no/such/path/123")
    samples = _samples(client)
    requests = {
        (labels["endpoint"], labels["status"]): value
        for labels, value in samples["companion_http_requests_total"]
    }
    assert requests[("/livez", "200")] == 3
    assert requests[("unmatched", "404")] == 1
    assert not any("/no/such" in endpoint for endpoint, _ in requests)


def test_metrics_export_cache_tiers(client: TestClient) -> None:
    cache = client.app.state.companion.cache  # type: ignore[attr-defined]
    cache.set("k", 1)
    cache.get("k")
    cache.get("missing")
    samples = _samples(client)
    hits = {labels["tier"]: value for labels, value in samples["companion_cache_hits_total"]}
    assert hits["l1"] == 1
    misses = {labels["tier"]: value for labels, value in samples["companion_cache_misses_total"]}
    assert misses["l2"] == 1


@pytest.mark.redis
def test_metrics_export_cache_tiers_with_redis_as_l2(redis_url: str) -> None:
    """A Redis tier has no `max_entries` (Redis bounds itself): the other figures still export."""
    import uuid

    import redis

    namespace = f"test-{uuid.uuid4().hex[:12]}"
    settings = load_settings(
        execution_enabled=False, redis_url=redis_url, cache_namespace=namespace
    )
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            cache = client.app.state.companion.cache  # type: ignore[attr-defined]
            cache.set("k", 1)
            cache.get("missing")
            samples = _samples(client)
    finally:
        store = redis.Redis.from_url(redis_url)
        keys = list(store.scan_iter(match=f"{namespace}:*"))
        if keys:
            store.delete(*keys)
        store.close()
    misses = {labels["tier"]: value for labels, value in samples["companion_cache_misses_total"]}
    assert misses["l2"] == 1
    failures = samples.get("companion_monitoring_source_errors_total", [])
    assert all(value == 0 for _, value in failures), failures


def test_monitoring_report_shows_every_endpoint(client: TestClient) -> None:
    client.get("/livez")
    client.get("/readyz")
    report = client.get("/v1/monitoring/report", headers=key_headers(client)).json()
    text = str(report)
    assert "/livez" in text
    assert "/readyz" in text


def test_profiling_report_has_one_row_per_route(client: TestClient) -> None:
    client.get("/livez")
    client.get("/livez")
    admin = key_headers(client)
    report = client.get("/v1/profiling/report", params={"sort_by": "count"}, headers=admin).json()
    assert report["sort_by"] == "count"
    names = {row["name"]: row for row in report["stats"]}
    assert names["http /livez"]["count"] == 2
    text = client.get("/v1/profiling/report", params={"format": "text"}, headers=admin)
    assert "http /livez" in text.text


def test_profiling_report_rejects_unknown_sort_key(client: TestClient) -> None:
    response = client.get(
        "/v1/profiling/report", params={"sort_by": "colour"}, headers=key_headers(client)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/sort_by"


def test_alerts_fire_and_resolve_through_the_monitor(client: TestClient) -> None:
    monitor = client.app.state.companion.monitor  # type: ignore[attr-defined]
    gauge = monitor.gauge("companion_test_queue_depth", "queue", ())
    monitor.set_threshold("companion_test_queue_depth", 10, "ERROR")
    gauge.set(50)
    monitor.evaluate()
    admin = key_headers(client)
    active = client.get("/v1/alerts", headers=admin).json()["active"]
    assert [alert["metric"] for alert in active] == ["companion_test_queue_depth"]
    gauge.set(1)
    monitor.evaluate()
    body = client.get("/v1/alerts", headers=admin).json()
    assert body["active"] == []
    assert len(body["history"]) >= 1


def test_admin_routes_refuse_other_scopes(client: TestClient) -> None:
    execute = key_headers(client, "execute")
    for path in ("/v1/monitoring/report", "/v1/alerts", "/v1/profiling/report"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=execute).status_code == 403


def test_metrics_can_require_an_admin_key() -> None:
    app = create_app(load_settings(execution_enabled=False, metrics_require_key=True))
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=key_headers(client)).status_code == 200
