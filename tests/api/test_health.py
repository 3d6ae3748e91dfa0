"""`/livez` and `/readyz` against real dependencies."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings


def _client(**settings: object) -> TestClient:
    settings.setdefault("execution_enabled", False)
    return TestClient(create_app(load_settings(**settings)), raise_server_exceptions=False)


def test_livez_answers_without_dependencies() -> None:
    with _client(redis_url="redis://127.0.0.1:1/0") as client:
        response = client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_on_embedded_defaults_is_ready() -> None:
    with _client() as client:
        response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"knowledge"}  # the embedded store is always checked


@pytest.mark.sandbox
def test_readyz_reports_the_sandbox_layers() -> None:
    with _client(execution_enabled=True, execution_pool_size=1) as client:
        response = client.get("/readyz")
    assert response.status_code == 200, response.text
    sandbox = response.json()["checks"]["sandbox"]
    assert sandbox["ok"] is True
    assert "1 zygotes" in sandbox["detail"]
    assert "seccomp" in sandbox["detail"]


@pytest.mark.redis
@pytest.mark.postgres
def test_readyz_checks_real_redis_and_postgres(redis_url: str, database_url: str) -> None:
    with _client(redis_url=redis_url, database_url=database_url) as client:
        response = client.get("/readyz")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert set(checks) == {"redis", "postgres", "knowledge"}
    assert all(check["ok"] for check in checks.values())


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections but never answers (a hung dependency)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_readyz_reports_an_unreachable_redis_as_503_problem() -> None:
    with _client(redis_url="redis://127.0.0.1:1/0") as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "dependency_unavailable"
    assert body["checks"]["redis"]["ok"] is False
    assert "Redis is unreachable" in body["checks"]["redis"]["error"]


def test_readyz_times_out_a_hung_dependency(silent_port: int) -> None:
    with _client(redis_url=f"redis://127.0.0.1:{silent_port}/0", readyz_timeout_s=0.3) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    check = response.json()["checks"]["redis"]
    assert check["ok"] is False
    assert check["duration_ms"] < 2000


def test_readyz_reports_unreachable_postgres() -> None:
    with _client(database_url="postgresql://nobody@127.0.0.1:1/none") as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "PostgreSQL is unreachable" in response.json()["checks"]["postgres"]["error"]


def test_openapi_and_docs_are_served() -> None:
    with _client() as client:
        assert client.get("/openapi.json").json()["info"]["title"] == "Companion BaaS"
        assert client.get("/docs").status_code == 200
