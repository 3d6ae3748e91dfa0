"""Pure-ASGI request context: the `X-Request-ID` of every request and one JSON log line per request.

The id is taken from the client when well-formed (so a trace can cross services), generated
otherwise, stored in the scope for the error renderer, and returned on every response with
`X-Companion-Node`, the name of the node that answered. The access log line never carries the key
or the body; with tracing on it carries the request span's `trace_id` and `span_id`.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "KEY_ID",
    "REQUEST_ID",
    "SPAN_ID",
    "TENANT",
    "TRACE_ID",
    "RequestContextMiddleware",
    "log_ids",
    "request_id_of",
    "trace_id_of",
]

_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_access = logging.getLogger("companion.access")


REQUEST_ID = "companion.request_id"
KEY_ID = "companion.key_id"
TENANT = "companion.tenant"
# Set by the OpenTelemetry middleware when tracing is on: the request span's ids.
TRACE_ID = "companion.trace_id"
SPAN_ID = "companion.span_id"
# Our per-request facts live in the scope under these keys, not in scope["state"]: servers may
# share that dict between requests (it starts as a copy of the lifespan state, or the same dict).


def request_id_of(scope: Scope) -> str | None:
    """The request id set by the middleware, if any."""
    value = scope.get(REQUEST_ID)
    return value if isinstance(value, str) else None


def trace_id_of(scope: Scope) -> str | None:
    """The OpenTelemetry trace id of the request, when tracing is on."""
    value = scope.get(TRACE_ID)
    return value if isinstance(value, str) else None


def log_ids(scope: Scope) -> dict[str, str]:
    """The request's ids for a log line's `extra`: `request_id`, and with tracing on `trace_id`
    and `span_id`, so an error logged outside the access line still leads to its request."""
    ids: dict[str, str] = {}
    for name, key in (("request_id", REQUEST_ID), ("trace_id", TRACE_ID), ("span_id", SPAN_ID)):
        value = scope.get(key)
        if isinstance(value, str):
            ids[name] = value
    return ids


class RequestContextMiddleware:
    """Assign the request id, echo it with the node's name, and log the request when it ends."""

    def __init__(self, app: ASGIApp, *, node: str) -> None:
        self.app = app
        # Behind a balancer, which node answered is the first thing one asks of a failure.
        self._node_header = (b"x-companion-node", node.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap one HTTP request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = given.decode() if given and _ID.fullmatch(given) else uuid.uuid4().hex
        scope[REQUEST_ID] = request_id
        header = (b"x-request-id", request_id.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).extend((header, self._node_header))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if _access.isEnabledFor(logging.INFO):
                route = getattr(scope.get("route"), "path", None)
                extra = {
                    "request_id": request_id,
                    "method": scope["method"],
                    "route": route or "unmatched",
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "key_id": scope.get(KEY_ID),
                    "tenant": scope.get(TENANT),
                }
                extra.update(log_ids(scope))  # tracing on: the line leads to the request's trace
                _access.info("request", extra=extra)
