"""Reachability checks of the configured external dependencies (Redis, PostgreSQL) for `/readyz`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from companion.config import Settings
from companion.errors import DependencyUnavailable, FeatureUnavailable

__all__ = ["DependencyCheck", "dependency_checks"]

DependencyCheck = Callable[[], Awaitable[str | None]]
"""Raises a `CompanionError` when the dependency fails; may return a detail line when it is fine."""


def dependency_checks(settings: Settings) -> dict[str, DependencyCheck]:
    """One check per configured dependency; none when the service runs on embedded defaults."""
    checks: dict[str, DependencyCheck] = {}
    if settings.redis_url is not None:
        redis_url = settings.redis_url.get_secret_value()
        checks["redis"] = lambda: _ping_redis(redis_url, settings.readyz_timeout_s)
    if settings.database_url is not None:
        database_url = settings.database_url.get_secret_value()
        checks["postgres"] = lambda: _ping_postgres(database_url, settings.readyz_timeout_s)
    return checks


async def _ping_redis(url: str, timeout_s: float) -> str | None:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.Redis.from_url(
        url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
    )
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise DependencyUnavailable(f"Redis is unreachable: {type(exc).__name__}") from exc
    finally:
        await client.aclose()
    return None


async def _ping_postgres(url: str, timeout_s: float) -> str | None:
    try:
        import psycopg
    except ImportError as exc:
        raise FeatureUnavailable(
            "COMPANION_DATABASE_URL is set but psycopg is missing: "
            "install the extra with `pip install 'companion[postgres]'`."
        ) from exc
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=max(1, round(timeout_s)))
        async with conn:
            await conn.execute("SELECT 1")
    except (psycopg.Error, OSError) as exc:
        raise DependencyUnavailable(f"PostgreSQL is unreachable: {type(exc).__name__}") from exc
    return None
