"""Which node holds each session: owner records in the shared Redis, read by every node.

A session is a process on one node. When the nodes share a Redis and each knows the URL the others
reach it at (`COMPANION_NODE_URL`), opening a session records `session:{id}` -> that node, with
the session's maximum lifetime as its TTL, and any node forwards the session's calls to its owner
(`_session_forwarding.py`). The owner stays the authority: a record that outlived its session only
costs one hop to the owner, which answers 410 or 404 as it would have.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from companion.config import Settings

__all__ = ["SessionOwner", "SessionOwners"]

_log = logging.getLogger("companion.api")


@dataclass(frozen=True, slots=True)
class SessionOwner:
    """The node holding a session: its name and the URL other nodes reach it at."""

    node: str
    url: str


class SessionOwners:
    """Owner records in Redis; without Redis or a node URL every method is a no-op (one node)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.node = settings.node
        self._clock = clock
        self._url = settings.node_url
        self._prefix = f"{settings.cache_namespace}:session:"
        # Per tenant: its sessions' ids scored by when their records expire, so a listing can
        # find the nodes that hold any of them without scanning every record.
        self._tenant_prefix = f"{settings.cache_namespace}:sessions-of:"
        self._redis: Any = None
        if settings.redis_url is not None and settings.node_url is not None:
            import redis.asyncio as aioredis

            timeout_s = settings.cache_redis_timeout_ms / 1000
            self._redis = aioredis.Redis.from_url(
                settings.redis_url.get_secret_value(),
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
            )

    @property
    def enabled(self) -> bool:
        """Whether sessions are shared between nodes here."""
        return self._redis is not None

    async def claim(self, session_id: str, tenant: str, lifetime_s: float) -> None:
        """Record this node as the session's owner for at most `lifetime_s`."""
        if self._redis is None:
            return
        record = orjson.dumps({"node": self.node, "url": self._url})
        expires_at = self._clock() + lifetime_s
        tenant_key = self._tenant_prefix + tenant
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._prefix + session_id, record, px=int(lifetime_s * 1000))
                pipe.zadd(tenant_key, {session_id: expires_at})
                pipe.zremrangebyscore(tenant_key, "-inf", self._clock())
                pipe.expireat(tenant_key, int(expires_at) + 1, gt=True)
                await pipe.execute()
        except Exception as exc:
            # The session works through this node; other nodes answer 404 for it until Redis is
            # back. Failing the open would lose a session the sandbox already started.
            _log.warning("could not record session %s's owner in Redis: %s", session_id, exc)

    async def release(self, session_id: str, tenant: str) -> None:
        """Forget the session's record (it ended here)."""
        if self._redis is None:
            return
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._prefix + session_id)
                pipe.zrem(self._tenant_prefix + tenant, session_id)
                await pipe.execute()
        except Exception as exc:  # the record expires by itself; the owner answers 410 till then
            _log.warning("could not delete session %s's owner record: %s", session_id, exc)

    async def owner(self, session_id: str) -> SessionOwner | None:
        """The node holding the session, when another node does; None otherwise."""
        if self._redis is None:
            return None
        try:
            raw = await self._redis.get(self._prefix + session_id)
        except Exception as exc:
            _log.warning("could not read session %s's owner from Redis: %s", session_id, exc)
            return None
        if raw is None:
            return None
        try:
            record = orjson.loads(raw)
            owner = SessionOwner(str(record["node"]), str(record["url"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            _log.warning("ignored a malformed owner record of session %s", session_id)
            return None
        return None if owner.node == self.node else owner

    async def other_nodes_of(self, tenant: str) -> list[SessionOwner]:
        """The other nodes holding a session of `tenant` (by their records), each once."""
        if self._redis is None:
            return []
        try:
            ids = await self._redis.zrangebyscore(
                self._tenant_prefix + tenant, self._clock(), "+inf"
            )
            records = (
                await self._redis.mget([self._prefix + i.decode() for i in ids]) if ids else []
            )
        except Exception as exc:
            _log.warning("could not read tenant %s's session records from Redis: %s", tenant, exc)
            return []
        owners: dict[str, SessionOwner] = {}
        for raw in records:
            try:
                record = orjson.loads(raw) if raw is not None else None
                owner = SessionOwner(str(record["node"]), str(record["url"])) if record else None
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            if owner is not None and owner.node != self.node:
                owners[owner.node] = owner
        return sorted(owners.values(), key=lambda owner: owner.node)

    async def forget_node(self, session_id: str, owner: SessionOwner) -> None:
        """Drop the record if it still names `owner` (found unreachable)."""
        if self._redis is None:
            return
        key = self._prefix + session_id
        try:
            raw = await self._redis.get(key)
            if raw is not None and orjson.loads(raw).get("node") == owner.node:
                await self._redis.delete(key)
        except Exception as exc:
            _log.warning("could not drop session %s's stale owner record: %s", session_id, exc)

    async def close(self) -> None:
        """Close the Redis connections."""
        if self._redis is not None:
            await self._redis.aclose()
