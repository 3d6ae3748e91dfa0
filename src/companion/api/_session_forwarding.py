"""Forwarding a session's calls to the node that holds it, so any node answers for any session.

A pure-ASGI layer in front of the routes: a call to `/v1/sessions/{id}...` for a session this node
does not hold, whose owner record (`_session_owners.py`) names another node, is relayed there as
it came (method, path, query, headers with the key, body streamed) and the answer is streamed
back, Server-Sent Events included. The owner authenticates, rate-limits and answers it; this node
only relays, so a forwarded call is counted once. A relayed call carries
`X-Companion-Forwarded-By` and is never relayed again, so two nodes that disagree cannot loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from companion.api._context import REQUEST_ID
from companion.api._problems import problem_response
from companion.api._session_owners import SessionOwner, SessionOwners
from companion.errors import CompanionError, DependencyUnavailable
from companion.execution import SessionEnded

__all__ = ["FORWARDED_BY", "SessionForwarder", "SessionForwardingMiddleware"]

_log = logging.getLogger("companion.api")

FORWARDED_BY = b"x-companion-forwarded-by"
_SESSION_PATH = re.compile(r"^/v1/sessions/([A-Za-z0-9_-]{1,64})(?:/.*)?$")
# Hop-by-hop headers (RFC 9110 7.6.1) and those the relay sets itself.
_NOT_RELAYED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"x-request-id",
        FORWARDED_BY,
    }
)
# What a listing sent to other nodes carries of the caller's request: the key, nothing else.
_CREDENTIALS = frozenset({b"authorization", b"x-api-key"})
_LIST_TIMEOUT_S = 5.0
# The answer keeps the owner's headers but these, which the relaying node's server sets itself.
_NOT_RETURNED = _NOT_RELAYED | {b"x-companion-node", b"date", b"server"}


class SessionForwarder:
    """Relays calls to other nodes: the owner records and one HTTP client for all of them."""

    def __init__(self, owners: SessionOwners, *, connect_timeout_s: float = 2.0) -> None:
        self.owners = owners
        # No read timeout: a cell may run as long as its own limits allow, and a stream of
        # events may pause between outputs; the owner bounds both.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=connect_timeout_s), follow_redirects=False
        )

    async def sessions_elsewhere(
        self, tenant: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The tenant's sessions on the other nodes that hold any, asked with the caller's own
        key; and the nodes that did not answer (their sessions are missing from the list)."""
        owners = await self.owners.other_nodes_of(tenant)
        relayed = [(k, v) for k, v in headers if k in _CREDENTIALS]
        relayed.append((FORWARDED_BY, self.owners.node.encode()))

        async def sessions_of(owner: SessionOwner) -> list[dict[str, Any]]:
            response = await self._client.get(
                owner.url + "/v1/sessions", headers=relayed, timeout=_LIST_TIMEOUT_S
            )
            response.raise_for_status()
            found: list[dict[str, Any]] = response.json()["sessions"]
            return found

        answers = await asyncio.gather(*map(sessions_of, owners), return_exceptions=True)
        sessions: list[dict[str, Any]] = []
        unreachable: list[str] = []
        for owner, answer in zip(owners, answers, strict=True):
            if isinstance(answer, BaseException):
                _log.warning("listing sessions on %s failed: %s", owner.node, answer)
                unreachable.append(owner.node)
            else:
                sessions.extend(answer)
        return sessions, unreachable

    async def close(self) -> None:
        """Close the relay's connections and the owner records' client."""
        await self._client.aclose()
        await self.owners.close()

    async def relay(
        self, owner: SessionOwner, session_id: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Send the call to `owner` and stream its answer back to our client."""
        query = scope.get("query_string", b"")
        url = owner.url + scope["path"] + ("?" + query.decode("latin-1") if query else "")
        headers = [(k, v) for k, v in scope["headers"] if k not in _NOT_RELAYED]
        headers.append((FORWARDED_BY, self.owners.node.encode()))
        request_id = scope.get(REQUEST_ID)
        if isinstance(request_id, str):
            headers.append((b"x-request-id", request_id.encode()))
        request = self._client.build_request(
            scope["method"], url, headers=headers, content=_request_body(receive)
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.ConnectError:
            # Nothing listens where the session was: its node is gone, and its sessions with it.
            await self.owners.forget_node(session_id, owner)
            await _problem(
                SessionEnded(
                    f"Session {session_id!r} has ended: the node that held it ({owner.node}) "
                    "is gone."
                ),
                scope,
                receive,
                send,
            )
            return
        except httpx.TransportError as exc:
            await _problem(
                DependencyUnavailable(f"The session's node ({owner.node}) did not answer: {exc}"),
                scope,
                receive,
                send,
            )
            return
        try:
            returned = [(k, v) for k, v in response.headers.raw if k.lower() not in _NOT_RETURNED]
            returned.append((b"x-companion-session-node", owner.node.encode()))
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": returned}
            )
            await _pump_until_disconnect(response, receive, send)
        finally:
            await response.aclose()


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _pump_until_disconnect(response: httpx.Response, receive: Receive, send: Send) -> None:
    """Stream the owner's answer; stop when our client hangs up, so the owner sees it hang up
    too (an event stream's cell is interrupted then, as when the client is connected directly)."""

    async def pump() -> None:
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def hung_up() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    relaying = asyncio.create_task(pump())
    watching = asyncio.create_task(hung_up())
    try:
        await asyncio.wait({relaying, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watching.cancel()
        if not relaying.done():
            relaying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        with contextlib.suppress(asyncio.CancelledError):
            await relaying  # re-raises a failure of the relay itself


async def _problem(error: CompanionError, scope: Scope, receive: Receive, send: Send) -> None:
    await problem_response(error, scope)(scope, receive, send)


class SessionForwardingMiddleware:
    """Relays calls for sessions held by another node; passes everything else through."""

    def __init__(self, app: ASGIApp, *, forwarder: Callable[[str], SessionForwarder | None]):
        self.app = app
        # A lookup, not the forwarder: the app's state builds it at start, after this layer.
        self._forwarder_for = forwarder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Relay or pass through one request."""
        if scope["type"] == "http":
            match = _SESSION_PATH.match(scope["path"])
            if match is not None and all(k != FORWARDED_BY for k, _ in scope["headers"]):
                session_id = match.group(1)
                forwarder = self._forwarder_for(session_id)
                if forwarder is not None:
                    owner = await forwarder.owners.owner(session_id)
                    if owner is not None:
                        await forwarder.relay(owner, session_id, scope, receive, send)
                        return
        await self.app(scope, receive, send)
