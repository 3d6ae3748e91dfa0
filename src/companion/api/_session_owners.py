"""Which node holds each session: owner records in the shared Redis, read by every node.

A session is a process on one node. When the nodes share a Redis and each knows the URL the others
reach it at (`COMPANION_NODE_URL`), opening a session records `session:{id}` -> that node, with
the session's maximum lifetime as its TTL, and any node forwards the session's calls to its owner
(`_session_forwarding.py`). The owner stays the authority: a record that outlived its session only
costs one hop to the owner, which answers 410 or 404 as it would have.
"""

from __future__ import annotations

import logging
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

    def __init__(self, settings: Settings) -> None:
        self.node = settings.node
        self._url = settings.node_url
        self._prefix = f"{settings.cache_namespace}:session:"
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

    async def claim(self, session_id: str, lifetime_s: float) -> None:
        """Record this node as the session's owner for at most `lifetime_s`."""
        if self._redis is None:
            return
        record = orjson.dumps({"node": self.node, "url": self._url})
        try:
            await self._redis.set(self._prefix + session_id, record, px=int(lifetime_s * 1000))
        except Exception as exc:
            # The session works through this node; other nodes answer 404 for it until Redis is
            # back. Failing the open would lose a session the sandbox already started.
            _log.warning("could not record session %s's owner in Redis: %s", session_id, exc)

    async def release(self, session_id: str) -> None:
        """Forget the session's record (it ended here)."""
        if self._redis is None:
            return
        try:
            await self._redis.delete(self._prefix + session_id)
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
