"""Helpers for route tests: API keys minted in the app's own key ring."""

from __future__ import annotations

from fastapi.testclient import TestClient


def key_headers(
    client: TestClient, *scopes: str, tenant: str = "default", header: str = "bearer"
) -> dict[str, str]:
    """Headers carrying a fresh key of `tenant` with `scopes` (admin when none are given)."""
    ring = client.app.state.companion.keys  # type: ignore[attr-defined]
    _, token = ring.create(tenant, list(scopes) or ["admin"])
    if header == "bearer":
        return {"Authorization": f"Bearer {token}"}
    return {"X-API-Key": token}
