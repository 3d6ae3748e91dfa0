"""Which node holds each session, and which nodes are alive: records in the shared Redis.

A session is a process on one node. When the nodes share a Redis and each knows the URL the others
reach it at (`COMPANION_NODE_URL`):
- each node keeps a heartbeat `node:{name}` -> its URL, refreshed every few seconds with a short TTL;
- opening a session records `session:{id}` -> its node, with the session's maximum lifetime as TTL,
  and adds the id to its tenant's index (a sorted set scored by expiry) for listings;
- any node relays a session's calls to its owner (`_session_relay.py`), but only to a URL that the
  owner's own heartbeat names: a record pointing anywhere else is not followed.

The owner stays the authority: a record that outlived its session only costs one hop to the owner,
which answers 410 or 404 as it would have. A node whose heartbeat has lapsed is gone, and so are its
sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from companion.config import Settings

__all__ = ["HEARTBEAT_INTERVAL_S", "HEARTBEAT_TTL_S", "SessionOwner", "SessionOwners"]

_log = logging.getLogger("companion.api")

# A node refreshes its heartbeat this often; it lapses after a few missed refreshes, so a dead node
# is known to be gone within HEARTBEAT_TTL_S while a slow one is not mistaken for dead.
HEARTBEAT_INTERVAL_S = 2.0
HEARTBEAT_TTL_S = 10.0


@dataclass(frozen=True, slots=True)
class SessionOwner:
    """The node holding a session: its name and the URL other nodes reach it at."""

    node: str
    url: str


class SessionOwners:
    """Owner records and heartbeats in Redis; without Redis or a node URL every method is a no-op
    (sessions stay on the node that opened them)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.node = settings.node
        self._clock = clock
        self._url = settings.node_url
        namespace = settings.cache_namespace
        self._prefix = f"{namespace}:session:"
        self._tenant_prefix = f"{namespace}:sessions-of:"
        self._node_prefix = f"{namespace}:node:"
        self._lifetime_s = settings.execution_session_max_lifetime_s
        self._heartbeat: asyncio.Task[None] | None = None
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

    # -- this node's heartbeat ---------------------------------------------------------------

    async def start(self) -> None:
        """Announce this node, and keep announcing it until `close`."""
        if self._redis is None:
            return
        await self._beat()
        self._heartbeat = asyncio.create_task(self._beat_forever(), name="node-heartbeat")

    async def _beat(self) -> None:
        try:
            await self._redis.set(
                self._node_prefix + self.node, self._url or "", px=int(HEARTBEAT_TTL_S * 1000)
            )
        except Exception as exc:
            _log.warning("could not refresh this node's heartbeat in Redis: %s", exc)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)  # real time: the TTL is Redis's clock
            await self._beat()

    async def _alive_url(self, node: str) -> str | None:
        raw = await self._redis.get(self._node_prefix + node)
        return None if raw is None else bytes(raw).decode()

    # -- sessions ------------------------------------------------------------------------------

    async def claim(self, session_id: str, tenant: str) -> None:
        """Record this node as the session's owner for the session's maximum lifetime."""
        if self._redis is None:
            return
        record = orjson.dumps({"node": self.node, "url": self._url})
        now = self._clock()
        tenant_key = self._tenant_prefix + tenant
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._prefix + session_id, record, px=int(self._lifetime_s * 1000))
                pipe.zadd(tenant_key, {session_id: now + self._lifetime_s})
                pipe.zremrangebyscore(tenant_key, "-inf", now)
                # Every entry expires within one lifetime from now, so the index may too.
                pipe.expire(tenant_key, int(self._lifetime_s) + 1)
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
        """The node holding the session when another node does; None otherwise.

        A record naming a node whose heartbeat has lapsed comes back with an empty `url`: that
        node and its sessions are gone.
        """
        if self._redis is None:
            return None
        try:
            raw = await self._redis.get(self._prefix + session_id)
            if raw is None:
                return None
            node = _record_node(raw)
            if node is None or node == self.node:
                return None
            return SessionOwner(node, await self._alive_url(node) or "")
        except Exception as exc:
            _log.warning("could not read session %s's owner from Redis: %s", session_id, exc)
            return None

    async def other_nodes_of(self, tenant: str) -> list[SessionOwner]:
        """The other live nodes holding a session of `tenant`, each once, by name."""
        if self._redis is None:
            return []
        try:
            ids = await self._redis.zrangebyscore(
                self._tenant_prefix + tenant, self._clock(), "+inf"
            )
            records = (
                await self._redis.mget([self._prefix + i.decode() for i in ids]) if ids else []
            )
            nodes = {node for node in map(_record_node, records) if node and node != self.node}
            owners = []
            for node in sorted(nodes):
                url = await self._alive_url(node)
                if url:
                    owners.append(SessionOwner(node, url))
            return owners
        except Exception as exc:
            _log.warning("could not read tenant %s's session records from Redis: %s", tenant, exc)
            return []

    async def forget(self, session_id: str) -> None:
        """Drop a record whose node is gone."""
        if self._redis is None:
            return
        try:
            await self._redis.delete(self._prefix + session_id)
        except Exception as exc:
            _log.warning("could not drop session %s's stale owner record: %s", session_id, exc)

    async def close(self) -> None:
        """Stop the heartbeat, withdraw it (this node is going), and close the connections."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.delete(self._node_prefix + self.node)
            await self._redis.aclose()


def _record_node(raw: bytes | None) -> str | None:
    """The node an owner record names (None when absent or malformed)."""
    if raw is None:
        return None
    try:
        record = orjson.loads(raw)
        return str(record["node"]) if isinstance(record, dict) else None
    except (orjson.JSONDecodeError, KeyError):
        return None
