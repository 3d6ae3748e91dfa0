"""The invalidation bus: Redis pub/sub telling every node which keys to drop from its L1.

A writer publishes in the same pipeline as its write, so coherence costs no extra round trip. Each
node listens on a daemon thread that reconnects by itself; after a reconnect it reports a full
invalidation, since messages published while it was away are lost for good.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import orjson
import redis

from companion.cache._tier import Invalidation

__all__ = ["InvalidationBus", "encode_message"]

logger = logging.getLogger("companion.cache")

# How long one wait for a message may block: bounds how long `close()` waits for the thread,
# not how fast a message arrives (a waiting thread wakes as soon as one does).
_POLL_S = 0.1


def encode_message(node: str, change: Invalidation) -> bytes:
    """The message announcing `change`, signed with the publishing node's id."""
    body: dict[str, Any] = {"n": node}
    if change.keys:
        body["k"] = list(change.keys)
    if change.pattern is not None:
        body["p"] = change.pattern
    if change.tags:
        body["t"] = list(change.tags)
    if change.everything:
        body["a"] = 1
    return orjson.dumps(body)


def _decode_message(data: bytes) -> tuple[str, Invalidation]:
    body = orjson.loads(data)
    return str(body["n"]), Invalidation(
        keys=tuple(body.get("k", ())),
        pattern=body.get("p"),
        tags=tuple(body.get("t", ())),
        everything=bool(body.get("a")),
    )


class InvalidationBus:
    """Subscribes to `channel` on a daemon thread; calls `listener` for other nodes' messages."""

    def __init__(
        self,
        client: redis.Redis,
        channel: str,
        node: str,
        listener: Callable[[Invalidation], None],
        *,
        retry_interval_s: float,
    ) -> None:
        self._client = client
        self._channel = channel
        self._node = node
        self._listener = listener
        self._retry_interval_s = retry_interval_s
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cache-bus:{channel}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening and wait for the thread (at most about one poll interval)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5 * _POLL_S + self._retry_interval_s)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self._channel)
                pubsub.get_message(timeout=_POLL_S)  # consume the subscribe confirmation
                self.connected.set()
                if not first:
                    logger.info("cache invalidation bus %s reconnected", self._channel)
                    self._deliver(Invalidation(everything=True))
                first = False
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=_POLL_S)
                    if message is not None and message["type"] == "message":
                        self._handle(message["data"])
            # redis-py (with hiredis) can also raise TypeError/ValueError when the server drops the
            # socket while it is selecting on it: that is a lost connection too, not a bug here.
            except (redis.RedisError, OSError, TypeError, ValueError):
                if self.connected.is_set():
                    logger.warning("cache invalidation bus %s lost its connection", self._channel)
                self.connected.clear()
                first = False
                self._stop.wait(self._retry_interval_s)
            finally:
                pubsub.close()

    def _handle(self, data: bytes) -> None:
        try:
            node, change = _decode_message(data)
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed cache invalidation message: %.200r", data)
            return
        if node != self._node:
            self._deliver(change)

    def _deliver(self, change: Invalidation) -> None:
        try:
            self._listener(change)
        except Exception:  # the thread must survive a listener bug
            logger.exception("cache invalidation listener failed")
