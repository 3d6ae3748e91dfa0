"""API keys never appear in logs, error documents or `/metrics`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import start_server, stop_server

pytestmark = pytest.mark.slow


def test_keys_never_leak(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", execution_enabled="false")
    secrets = [token.split("_")[2] for token in server.keys.values()]
    forged = server.keys["acme"][:-6] + "abcdef"
    bodies: list[str] = []
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for token in (*server.keys.values(), forged, "cmp_garbage"):
                for headers in ({"Authorization": f"Bearer {token}"}, {"X-API-Key": token}):
                    for path in ("/v1/tools", "/v1/alerts", "/v1/execute", "/v1/nowhere"):
                        bodies.append(http.get(path, headers=headers).text)
            bodies.append(http.get("/metrics").text)
    finally:
        log = stop_server(server).decode()
    assert "companion.access" in log  # the log was written, and read here
    for secret in (*secrets, forged.split("_")[2]):
        assert secret not in log
        assert all(secret not in body for body in bodies)
