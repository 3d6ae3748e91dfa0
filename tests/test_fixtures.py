"""The real-service fixtures reach real servers."""

from __future__ import annotations

import pytest

from tests._services import RedisServer, postgres_is_up, redis_is_up


@pytest.mark.redis
def test_redis_fixture_reaches_a_real_server(redis_url: str, redis_prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.set(f"{redis_prefix}probe", b"1")
    assert client.get(f"{redis_prefix}probe") == b"1"
    client.close()


@pytest.mark.redis
def test_private_redis_stops_and_restarts(private_redis: RedisServer) -> None:
    assert redis_is_up(private_redis.url)
    private_redis.stop()
    assert not redis_is_up(private_redis.url)
    private_redis.start()
    assert redis_is_up(private_redis.url)


@pytest.mark.postgres
def test_pg_schema_is_private(database_url: str, pg_schema: str) -> None:
    import psycopg

    assert postgres_is_up(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{pg_schema}".t (x int)')
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (pg_schema,)
        ).fetchone()
    assert row == (1,)
