"""Helpers for route tests: API keys minted in the app's own key ring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from companion.config import Settings, load_settings


def key_headers(
    client: TestClient, *scopes: str, tenant: str = "default", header: str = "bearer"
) -> dict[str, str]:
    """Headers carrying a fresh key of `tenant` with `scopes` (admin when none are given)."""
    ring = client.app.state.companion.keys  # type: ignore[attr-defined]
    _, token = ring.create(tenant, list(scopes) or ["admin"])
    if header == "bearer":
        return {"Authorization": f"Bearer {token}"}
    return {"X-API-Key": token}


def settings_with_model(data_dir: Path, **overrides: Any) -> Settings:
    """Settings of an app without execution whose data directory holds the exported MiniLM
    model (a link to the one `make model` wrote); the test is skipped, or fails in CI, without it."""
    from tests._services import unavailable
    from tests.knowledge.conftest import MODEL_DIR

    if not (MODEL_DIR / "manifest.json").exists():
        unavailable("the exported MiniLM model (run `make model`)")
    (data_dir / "models").mkdir()
    (data_dir / "models" / "all-MiniLM-L6-v2").symlink_to(MODEL_DIR)
    return load_settings(
        data_dir=data_dir, execution_enabled=False, knowledge_embedder="minilm", **overrides
    )
