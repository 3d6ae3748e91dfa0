"""Deep profiling of one request, read back by id in three formats."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings
from tests.api.conftest import key_headers

TRACE = {"X-Companion-Trace": "1"}


def _client(**settings: object) -> TestClient:
    return TestClient(create_app(load_settings(execution_enabled=False, **settings)))


def test_a_flagged_request_is_traced_and_readable_in_every_format() -> None:
    with _client(profiling_trace_requests=True) as client:
        admin = key_headers(client)
        response = client.get("/v1/monitoring/report", headers={**TRACE, **admin})
        assert response.status_code == 200
        trace_id = response.headers["x-companion-trace-id"]
        text = client.get(f"/v1/profiling/traces/{trace_id}", headers=admin)
        assert text.status_code == 200
        assert text.headers["content-type"].startswith("text/plain")
        html = client.get(
            f"/v1/profiling/traces/{trace_id}", params={"format": "html"}, headers=admin
        )
        assert html.headers["content-type"].startswith("text/html")
        assert "<html" in html.text.lower()
        speedscope = client.get(
            f"/v1/profiling/traces/{trace_id}", params={"format": "speedscope"}, headers=admin
        )
        assert "speedscope" in json.loads(speedscope.text)["$schema"]


def test_unflagged_requests_and_disabled_tracing_add_nothing() -> None:
    with _client(profiling_trace_requests=True) as client:
        admin = key_headers(client)
        assert "x-companion-trace-id" not in client.get("/livez", headers=admin).headers
        # Only admin keys get traced: a flag from anyone else is ignored.
        execute = key_headers(client, "execute")
        assert "x-companion-trace-id" not in client.get("/livez", headers=TRACE).headers
        flagged = client.get("/livez", headers={**TRACE, **execute})
        assert "x-companion-trace-id" not in flagged.headers
    with _client() as client:
        flagged = client.get("/livez", headers={**TRACE, **key_headers(client)})
        assert "x-companion-trace-id" not in flagged.headers


def test_an_unknown_trace_is_a_404_problem() -> None:
    with _client(profiling_trace_requests=True) as client:
        response = client.get("/v1/profiling/traces/deadbeef", headers=key_headers(client))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "only the last 32" in response.json()["detail"]


def test_the_ring_keeps_only_the_newest_traces() -> None:
    with _client(profiling_trace_requests=True, profiling_trace_ring_entries=2) as client:
        admin = key_headers(client)
        flagged = {**TRACE, **admin}
        ids = [
            client.get("/livez", headers=flagged).headers["x-companion-trace-id"] for _ in range(3)
        ]
        assert client.get(f"/v1/profiling/traces/{ids[0]}", headers=admin).status_code == 404
        assert client.get(f"/v1/profiling/traces/{ids[2]}", headers=admin).status_code == 200


def test_a_trace_is_its_tenants_own() -> None:
    with _client(profiling_trace_requests=True) as client:
        acme = key_headers(client, tenant="acme")
        response = client.get("/v1/monitoring/report", headers={**TRACE, **acme})
        trace_id = response.headers["x-companion-trace-id"]
        other = client.get(
            f"/v1/profiling/traces/{trace_id}", headers=key_headers(client, tenant="zeta")
        )
        unknown = client.get("/v1/profiling/traces/0123456789abcdef", headers=acme)
        own = client.get(f"/v1/profiling/traces/{trace_id}", headers=acme)
    # Another tenant's admin gets the answer an unknown id gets: existence never leaks.
    assert other.status_code == 404
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["detail"] == unknown.json()["detail"].replace("0123456789abcdef", trace_id)
    assert own.status_code == 200
