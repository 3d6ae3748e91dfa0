"""Shared fixtures: real Redis and PostgreSQL, isolated per test by key prefix or schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._services import (
    PostgresCluster,
    RedisServer,
    postgres_is_up,
    redis_is_up,
    unavailable,
)

RUNTIME_PACKAGES = Path(__file__).resolve().parents[1] / ".runtimes" / "python"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_DATABASE_URL = "postgresql://root@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def _clean_companion_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests start from defaults whatever the developer's shell exports, with private data."""
    for name in list(os.environ):
        if name.startswith("COMPANION_") and not name.startswith("COMPANION_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COMPANION_DATA_DIR", str(tmp_path / "companion-data"))
    # Sandboxes with the data-science packages preloaded take ~1 s of CPU each to start: only the
    # tests about them ask for them (the packages stay importable in every sandbox).
    monkeypatch.setenv("COMPANION_EXECUTION_DATA_POOL_SIZE", "0")
    monkeypatch.setenv("COMPANION_EXECUTION_PYTHON_PACKAGES_DIR", str(RUNTIME_PACKAGES))
    # Spare session sandboxes start with every executor; the session tests ask for them.
    monkeypatch.setenv("COMPANION_EXECUTION_SESSION_SPARES", "0")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis: `COMPANION_TEST_REDIS_URL`, the default, or a private server."""
    url = os.environ.get("COMPANION_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    if redis_is_up(url):
        yield url
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    import redis

    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own that it may stop and restart (fault tests)."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of a real PostgreSQL: `COMPANION_TEST_DATABASE_URL`, the default, or a private cluster."""
    url = os.environ.get("COMPANION_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    if postgres_is_up(url):
        yield url
        return
    cluster = PostgresCluster()
    cluster.start()
    try:
        if not postgres_is_up(cluster.url):
            unavailable("PostgreSQL")
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def pg_schema(database_url: str) -> Iterator[str]:
    """A schema of this test's own, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield schema
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
