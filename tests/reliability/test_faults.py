"""Faults: Redis stops and returns, the service is SIGKILLed mid-ingest, PostgreSQL drops us."""

from __future__ import annotations

import signal
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings
from tests._services import RedisServer
from tests.api.conftest import key_headers
from tests.reliability.conftest import start_server, stop_server

pytestmark = pytest.mark.slow


@pytest.mark.redis
def test_redis_outage_mid_load_degrades_and_recovers(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        execution_enabled=False,
        redis_url=private_redis.url,
        cache_redis_timeout_ms=100,
        cache_redis_retry_interval_s=0.2,
        rate_limit_default="100000/minute",
    )
    statuses: Counter[int] = Counter()
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        headers = key_headers(client, "tools")

        def burst(first: int) -> None:
            for i in range(first, first + 30):
                call = {"arguments": {"a": i, "b": 1}}
                statuses[
                    client.post("/v1/tools/add/invoke", json=call, headers=headers).status_code
                ] += 1

        burst(0)
        private_redis.stop()
        burst(0)  # cached in L1: still served
        burst(100)  # new values: computed, L2 writes fail quietly, rate limits fail open
        l2_errors = client.app.state.companion.cache.stats().l2.errors  # type: ignore[attr-defined]
        private_redis.start()
        threading.Event().wait(0.3)  # real-time: let the breaker's retry interval pass
        burst(200)
        stats = client.app.state.companion.cache.stats()  # type: ignore[attr-defined]
    assert set(statuses) == {200}, statuses
    assert l2_errors >= 1
    assert stats.l2.size >= 1  # writes reach Redis again after it came back


@pytest.mark.sandbox
def test_sigkill_mid_ingest_loses_no_acknowledged_document(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", execution_enabled="false")
    acknowledged: list[str] = []
    headers = {"Authorization": f"Bearer {server.keys['acme']}"}
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
            assert http.post("/v1/collections", json={"name": "logs"}).status_code == 201

            def ingest() -> None:
                for i in range(10_000):
                    doc = {"id": f"doc-{i}", "text": f"entry number {i} token{i}x " * 20}
                    try:
                        response = http.post("/v1/collections/logs/documents", json=doc)
                    except httpx.HTTPError:
                        return  # the server died under us
                    if response.status_code == 201:
                        acknowledged.append(doc["id"])

            writer = threading.Thread(target=ingest)
            writer.start()
            while len(acknowledged) < 40:
                threading.Event().wait(0.02)  # real-time: let real writes land first
            server.process.send_signal(signal.SIGKILL)
            writer.join(30)
    finally:
        stop_server(server)
    restarted = start_server(tmp_path / "data", execution_enabled="false")
    try:
        # The key from before the crash still works: keys live in the same data directory.
        with httpx.Client(base_url=restarted.url, headers=headers, timeout=10) as http:
            for doc_id in acknowledged:
                assert http.get(f"/v1/collections/logs/documents/{doc_id}").status_code == 200
            number = int(acknowledged[-1].split("-")[1])
            for i in (number, number + 1):  # the last acknowledged one, and the one in flight
                present = http.get(f"/v1/collections/logs/documents/doc-{i}").status_code == 200
                hits = http.post(
                    "/v1/collections/logs/search", json={"query": f"token{i}x", "k": 5}
                ).json()["results"]
                # All or nothing: stored exactly when searchable (the index caught up at start).
                assert present == any(h["document_id"] == f"doc-{i}" for h in hits)
    finally:
        stop_server(restarted)


@pytest.mark.postgres
def test_postgres_connections_dropped_are_replaced(database_url: str, tmp_path: Path) -> None:
    import psycopg

    settings = load_settings(data_dir=tmp_path, execution_enabled=False, database_url=database_url)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        ring = client.app.state.companion.keys  # type: ignore[attr-defined]
        _, token = ring.create("acme", ["tools"])
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/v1/tools", headers=headers).status_code == 200
        with psycopg.connect(database_url, autocommit=True) as admin:
            dropped = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name NOT LIKE 'pg_%'"
            ).fetchone()
        assert dropped is not None
        assert dropped[0] >= 1
        ring._cache.clear()  # force the next request to ask PostgreSQL again
        assert client.get("/v1/tools", headers=headers).status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
