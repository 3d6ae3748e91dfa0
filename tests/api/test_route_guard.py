"""Every route but health, docs and metrics refuses requests without a valid API key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings

PUBLIC = {
    "/livez",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}
SAMPLE = {
    "name": "x",
    "trace_id": "x",
    "collection": "x",
    "document_id": "x",
    "session_id": "ses_x",
    "path": "data/x.csv",
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = load_settings(execution_enabled=False, data_dir=tmp_path_factory.mktemp("data"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _guarded(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) of the OpenAPI schema but the public ones, parameters filled in."""
    schema = client.get("/openapi.json").json()
    found = []
    for template, operations in schema["paths"].items():
        if template in PUBLIC:
            continue
        path = template.format(**{k: v for k, v in SAMPLE.items() if "{" + k + "}" in template})
        found.extend((method.upper(), path) for method in sorted(operations))
    return found


def test_the_walk_finds_every_v1_route(client: TestClient) -> None:
    routes = {path for _, path in _guarded(client)}
    assert {"/v1/execute", "/v1/runtimes", "/v1/cache/stats", "/v1/alerts"} <= routes
    assert len(routes) >= 8


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "cmp_000000000000_" + "0" * 48},
    ],
    ids=["missing", "malformed", "wrong-scheme", "unknown"],
)
def test_every_guarded_route_answers_401_problem(
    client: TestClient, headers: dict[str, str]
) -> None:
    for method, path in _guarded(client):
        response = client.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
        body = response.json()
        assert body["code"] == "unauthorized"
        assert body["request_id"] == response.headers["x-request-id"]


def test_public_routes_need_no_key(client: TestClient) -> None:
    for path in ("/livez", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path
