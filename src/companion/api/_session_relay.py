"""Relaying a session's calls to the node that holds it, and asking other nodes for listings.

The call goes as it came: method, the path as the client encoded it (never decoded and re-encoded,
so `a%3Fb.txt` stays one file name), query, the key's header, the body streamed; the answer comes
back streamed, Server-Sent Events included. The owner authenticates, rate-limits and answers it;
this node only relays, so a relayed call is counted once. A relayed call carries
`X-Companion-Forwarded-By` and is never relayed again, so two nodes that disagree cannot loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from companion.api._context import REQUEST_ID
from companion.api._problems import problem_response
from companion.api._session_owners import SessionOwner, SessionOwners
from companion.errors import CompanionError, DependencyUnavailable, UpstreamFailed
from companion.execution import SessionEnded
from companion.telemetry import NO_TELEMETRY, Telemetry

__all__ = ["FORWARDED_BY", "SessionRelay"]

_log = logging.getLogger("companion.api")

FORWARDED_BY = b"x-companion-forwarded-by"
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
        b"x-forwarded-for",
        FORWARDED_BY,
    }
)
# The answer keeps the owner's headers but these, which the relaying node's server sets itself.
_NOT_RETURNED = _NOT_RELAYED | {b"x-companion-node", b"date", b"server"}
# What a listing sent to other nodes carries of the caller's request: the key, nothing else.
_CREDENTIALS = frozenset({b"authorization", b"x-api-key"})
# The caller's trace context: a node that traces sends its own span's instead.
_TRACE_CONTEXT = frozenset({b"traceparent", b"tracestate"})
_CONNECT_TIMEOUT_S = 2.0
# A relayed call waits this long for a free connection, then gets 503: never a silent queue.
_POOL_TIMEOUT_S = 5.0
_LIST_TIMEOUT_S = 5.0
# Calls relayed at once, all owners together: each may be a long cell or an open event stream.
_MAX_CONNECTIONS = 1000


class SessionRelay:
    """Relays calls to other nodes: the owner records and one HTTP client for all of them."""

    def __init__(self, owners: SessionOwners, telemetry: Telemetry = NO_TELEMETRY) -> None:
        self.owners = owners
        # When this node traces, the owner's request span becomes a child of this node's (else
        # the two halves of one call were separate traces, or siblings under the caller's).
        self._telemetry = telemetry
        # No read timeout: a cell may run as long as its own limits allow, and a stream of
        # events may pause between outputs; the owner bounds both.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=_CONNECT_TIMEOUT_S, pool=_POOL_TIMEOUT_S),
            limits=httpx.Limits(max_connections=_MAX_CONNECTIONS, max_keepalive_connections=100),
            follow_redirects=False,
        )

    async def start(self) -> None:
        """Start this node's heartbeat."""
        await self.owners.start()

    async def close(self) -> None:
        """Close the relay's connections and the owner records' client."""
        await self._client.aclose()
        await self.owners.close()

    async def relay(
        self, owner: SessionOwner, session_id: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Send the call to `owner` and stream its answer back to our client."""
        if not owner.url:
            # Its heartbeat has lapsed: the node is gone, and its sessions with it.
            await self.owners.forget(session_id)
            ended = SessionEnded(
                f"Session {session_id!r} has ended: the node that held it ({owner.node}) is gone."
            )
            await problem_response(ended, scope)(scope, receive, send)
            return
        try:
            response = await self._client.send(self._request(owner, scope, receive), stream=True)
        except ClientDisconnect:
            return  # our client left mid-body: the owner saw the request aborted, not complete
        except CompanionError as broken:  # the body broke a limit while it was relayed
            await problem_response(broken, scope)(scope, receive, send)
            return
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Never sent. The node's heartbeat is fresh, so it is alive: a refused or slow
            # connection is passing trouble, not the end of its sessions.
            unavailable = DependencyUnavailable(
                f"The node holding session {session_id!r} ({owner.node}) did not answer "
                f"({type(exc).__name__}); try again."
            )
            await problem_response(unavailable, scope)(scope, receive, send)
            return
        except httpx.TransportError as exc:
            # Sent, then the connection broke: the call may have run there (a cell, a write).
            # A 503 would have clients send it again; 502 says what is known.
            failed = UpstreamFailed(
                f"The node holding session {session_id!r} ({owner.node}) took the call and "
                f"broke off before answering ({type(exc).__name__}): it may have run; read the "
                "session's state before sending it again."
            )
            await problem_response(failed, scope)(scope, receive, send)
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

    def _request(self, owner: SessionOwner, scope: Scope, receive: Receive) -> httpx.Request:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        url = httpx.URL(owner.url).copy_with(raw_path=raw_path + (b"?" + query if query else b""))
        not_relayed = _not_relayed(scope)
        ours = self._telemetry.propagation_headers()  # none when not tracing this request
        if ours:
            not_relayed |= _TRACE_CONTEXT
        headers = [(k, v) for k, v in scope["headers"] if k not in not_relayed] + ours
        headers.append((FORWARDED_BY, self.owners.node.encode()))
        client = scope.get("client")
        if client:
            headers.append((b"x-forwarded-for", str(client[0]).encode()))
        request_id = scope.get(REQUEST_ID)
        if isinstance(request_id, str):
            headers.append((b"x-request-id", request_id.encode()))
        return self._client.build_request(
            scope["method"], url, headers=headers, content=_request_body(receive)
        )

    async def sessions_elsewhere(
        self, tenant: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The tenant's sessions on the other nodes that hold any, asked with the caller's own
        key; and the nodes that did not give their list (their sessions are missing)."""
        owners = await self.owners.other_nodes_of(tenant)
        relayed = [(k, v) for k, v in headers if k in _CREDENTIALS]
        relayed += self._telemetry.propagation_headers()
        relayed.append((FORWARDED_BY, self.owners.node.encode()))

        async def sessions_of(owner: SessionOwner) -> list[dict[str, Any]]:
            response = await self._client.get(
                owner.url + "/v1/sessions", headers=relayed, timeout=_LIST_TIMEOUT_S
            )
            response.raise_for_status()
            found = response.json()["sessions"]
            if not isinstance(found, list):
                raise TypeError("`sessions` is not a list")
            return found

        answers = await asyncio.gather(*map(sessions_of, owners), return_exceptions=True)
        sessions: list[dict[str, Any]] = []
        unlisted: list[str] = []
        for owner, answer in zip(owners, answers, strict=True):
            if isinstance(answer, BaseException):
                _log.warning("listing sessions on %s failed: %s", owner.node, answer)
                unlisted.append(owner.node)
            else:
                sessions.extend(answer)
        return sessions, unlisted


def _not_relayed(scope: Scope) -> frozenset[bytes]:
    """The hop-by-hop headers, with those the client's `Connection` header names."""
    named = [
        token.strip().lower()
        for key, value in scope["headers"]
        if key == b"connection"
        for token in value.split(b",")
    ]
    return _NOT_RELAYED | frozenset(token for token in named if token)


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # Raising aborts the relayed request; returning would end it as if complete, and the
            # owner would act on a truncated body.
            raise ClientDisconnect
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
