"""The guard over HTTP: key schemes, refusals, scopes, rate limits, request ids, body limits, logs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings
from tests.api.conftest import key_headers


def _client(**settings: object) -> TestClient:
    settings.setdefault("execution_enabled", False)
    return TestClient(create_app(load_settings(**settings)), raise_server_exceptions=False)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with _client() as client:
        yield client


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_both_key_headers_are_accepted(client: TestClient, header: str) -> None:
    response = client.get("/v1/alerts", headers=key_headers(client, header=header))
    assert response.status_code == 200, response.text


def test_revoked_and_expired_keys_are_refused(client: TestClient) -> None:
    ring = client.app.state.companion.keys  # type: ignore[attr-defined]
    key, token = ring.create("default", ["admin"])
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/alerts", headers=headers).status_code == 200
    ring.revoke(key.key_id)
    revoked = client.get("/v1/alerts", headers=headers)
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]
    _, old = ring.create("default", ["admin"], expires_in=dt.timedelta(seconds=-1))
    expired = client.get("/v1/alerts", headers={"X-API-Key": old})
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]


def test_a_missing_scope_is_403_naming_it(client: TestClient) -> None:
    response = client.get("/v1/alerts", headers=key_headers(client, "tools"))
    assert response.status_code == 403
    assert response.json()["detail"] == "This API key lacks the `admin` scope."


def test_request_ids_are_echoed_when_well_formed_and_generated_otherwise(
    client: TestClient,
) -> None:
    given = client.get("/livez", headers={"X-Request-ID": "trace-42.a:b"})
    assert given.headers["x-request-id"] == "trace-42.a:b"
    bad = client.get("/livez", headers={"X-Request-ID": "no spaces\tallowed"})
    assert bad.headers["x-request-id"] != "no spaces\tallowed"
    assert len(bad.headers["x-request-id"]) == 32
    problem = client.get("/v1/alerts", headers={"X-Request-ID": "req-1"})
    assert problem.json()["request_id"] == "req-1"


def test_every_response_names_the_node_that_answered() -> None:
    with _client(node_name="node-b") as client:
        assert client.get("/livez").headers["x-companion-node"] == "node-b"
        refused = client.get("/v1/alerts")
        assert refused.status_code == 401
        assert refused.headers["x-companion-node"] == "node-b"
    with _client() as client:  # unset: the host name
        assert client.get("/livez").headers["x-companion-node"] == socket.gethostname()


def test_json_nested_too_deep_is_refused_before_parsing(client: TestClient) -> None:
    body = "[" * 100 + "]" * 100
    response = client.post(
        "/v1/cache/invalidate",
        content=body,
        headers={**key_headers(client), "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["details"] == {"max_json_depth": 64}


def test_json_depth_ignores_brackets_inside_strings(client: TestClient) -> None:
    payload = {"pattern": "[" * 500 + '\\"' + "{" * 200}
    response = client.post(
        "/v1/cache/invalidate",
        content=json.dumps(payload),
        headers={**key_headers(client), "content-type": "application/json"},
    )
    assert response.status_code in (200, 422), response.text  # parsed: depth was never exceeded


def test_rate_limit_answers_429_with_headers_and_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    import limits.aio.storage.memory as memory

    now = [1_000_000.0]

    class Clock:
        @staticmethod
        def time() -> float:
            return now[0]

    monkeypatch.setattr(memory, "time", Clock)  # limits reads time.time(): inject our clock there
    with _client(rate_limit_default="3/minute") as client:
        headers = key_headers(client)
        statuses = [client.get("/v1/alerts", headers=headers).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = client.get("/v1/alerts", headers=headers)
        assert limited.headers["content-type"] == "application/problem+json"
        assert limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["ratelimit-limit"] == "3"
        assert limited.headers["ratelimit-remaining"] == "0"
        other = key_headers(client)  # limits are per key
        assert client.get("/v1/alerts", headers=other).status_code == 200
        now[0] += 61
        assert client.get("/v1/alerts", headers=headers).status_code == 200


@pytest.mark.redis
def test_redis_backed_rate_limit_answers_429_across_instances(redis_url: str) -> None:
    import redis

    # Two instances on one Redis and one key store (the data dir): the limit is the key's, not
    # the instance's, so requests to either count. A day's window: no boundary within the test.
    with (
        _client(redis_url=redis_url, rate_limit_default="3/day") as first,
        _client(redis_url=redis_url, rate_limit_default="3/day") as second,
    ):
        headers = key_headers(first)
        key_id = headers["Authorization"].split()[1].split("_")[1]
        try:
            statuses = [
                first.get("/v1/alerts", headers=headers).status_code,
                second.get("/v1/alerts", headers=headers).status_code,
                first.get("/v1/alerts", headers=headers).status_code,
            ]
            limited = second.get("/v1/alerts", headers=headers)
            assert statuses == [200, 200, 200]
            assert limited.status_code == 429, limited.text
            assert limited.headers["content-type"] == "application/problem+json"
            assert limited.json()["code"] == "rate_limited"
            assert 1 <= int(limited.headers["retry-after"]) <= 86_400
            assert limited.headers["ratelimit-limit"] == "3"
            assert limited.headers["ratelimit-remaining"] == "0"
            assert first.get("/v1/alerts", headers=key_headers(first)).status_code == 200
        finally:
            client = redis.Redis.from_url(redis_url)
            try:
                counters = list(client.scan_iter(match=f"*{key_id}*", count=1000))
                if counters:
                    client.delete(*counters)
            finally:
                client.close()
    assert counters  # the counts lived in Redis


@pytest.mark.sandbox
def test_execute_concurrency_is_limited_per_key() -> None:
    with _client(
        execution_enabled=True, execution_pool_size=2, execute_max_concurrent_per_key=1
    ) as client:
        headers = key_headers(client, "execute")
        slow = {"language": "python", "code": "import time\ntime.sleep(0.5)"}
        with ThreadPoolExecutor(max_workers=2) as pool:
            responses = list(
                pool.map(lambda _: client.post("/v1/execute", json=slow, headers=headers), range(2))
            )
    assert sorted(r.status_code for r in responses) == [200, 429]
    limited = next(r for r in responses if r.status_code == 429)
    assert "in flight" in limited.json()["detail"]


def test_one_json_access_line_per_request_without_secrets(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    headers = key_headers(client)
    token = headers["Authorization"].split()[1]
    with caplog.at_level(logging.INFO, logger="companion.access"):
        started = time.perf_counter()
        client.get("/v1/alerts", headers={**headers, "X-Request-ID": "log-1"})
        elapsed_ms = (time.perf_counter() - started) * 1000
    records = [r for r in caplog.records if r.name == "companion.access"]
    assert len(records) == 1
    record = records[0]
    assert record.request_id == "log-1"  # type: ignore[attr-defined]
    assert record.route == "/v1/alerts"  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]
    assert record.tenant == "default"  # type: ignore[attr-defined]
    assert record.key_id == token.split("_")[1]  # type: ignore[attr-defined]
    from companion.api._logging import JsonFormatter

    line = JsonFormatter().format(record)
    # The time the request spent inside the service: some, and no more than the client waited.
    duration_ms = json.loads(line)["duration_ms"]
    assert duration_ms == record.duration_ms  # type: ignore[attr-defined]
    assert 0 < duration_ms <= elapsed_ms
    assert token not in line
