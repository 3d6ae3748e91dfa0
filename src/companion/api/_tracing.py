"""Deep profiling of one request: send `X-Companion-Trace: 1`, read the call tree back by id.

Off unless `COMPANION_PROFILING_TRACE_REQUESTS` is set (a sampled call tree costs real time and
reveals code structure). Traces are kept in a small ring; the response carries
`X-Companion-Trace-Id`, and `GET /v1/profiling/traces/{id}` returns text, HTML or speedscope JSON.
A trace belongs to the tenant of the admin key that asked for it: another tenant's admin gets 404,
as for every tenant-owned resource (a trace shows what that tenant's request did, and when).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from companion.api._auth import authenticate, require
from companion.api._state import State
from companion.api._trace_ring import TraceRing
from companion.errors import CompanionError
from companion.keys import ApiKey, KeyRing
from companion.profiling import Profiler

__all__ = ["TracingMiddleware", "router"]

TRACE_HEADER = b"x-companion-trace"
TRACE_ID_HEADER = b"x-companion-trace-id"


class TracingMiddleware:
    """Pure ASGI: requests carrying `X-Companion-Trace: 1` run under a sampling profiler."""

    def __init__(
        self, app: ASGIApp, profiler: Profiler, ring: TraceRing, keys: Callable[[], KeyRing]
    ) -> None:
        self.app = app
        self.keys = keys
        self.profiler = profiler
        self.ring = ring
        self._tracing = False  # the sampler profiles one request at a time

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Trace flagged requests; everything else passes through untouched."""
        flagged = scope["type"] == "http" and (TRACE_HEADER, b"1") in scope["headers"]
        admin = await self._admin(scope) if flagged and not self._tracing else None
        if admin is None:
            await self.app(scope, receive, send)
            return
        self._tracing = True
        try:
            await self._traced(scope, receive, send, admin.tenant)
        finally:
            self._tracing = False

    async def _admin(self, scope: Scope) -> ApiKey | None:
        """Deep traces reveal code structure: only admin keys get them (others run untraced)."""
        try:
            key = await authenticate(Request(scope), self.keys())
        except CompanionError:
            return None
        return key if key.allows("admin") else None

    async def _traced(self, scope: Scope, receive: Receive, send: Send, tenant: str) -> None:
        trace = self.profiler.trace()
        trace_id = ""

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The id is known before the body: the trace finishes when the app returns.
                message.setdefault("headers", []).append((TRACE_ID_HEADER, trace_id.encode()))
            await send(message)

        trace_id = self.ring.keep(trace, tenant)
        async with trace:
            await self.app(scope, receive, send_with_id)


router = APIRouter(prefix="/v1/profiling", tags=["observability"])


@router.get(
    "/traces/{trace_id}",
    summary="The call tree of one traced request (admin)",
    response_model=None,
    responses={200: {"content": {"text/plain": {}, "text/html": {}, "application/json": {}}}},
)
def get_trace(
    trace_id: str,
    state: State,
    key: Annotated[ApiKey, Depends(require("admin"))],
    fmt: Annotated[Literal["text", "html", "speedscope"], Query(alias="format")] = "text",
) -> Response:
    """Text (default), a self-contained HTML page, or speedscope JSON (the key's tenant's only)."""
    trace = state.traces.get(trace_id, key.tenant)
    if fmt == "html":
        return HTMLResponse(trace.to_html())
    if fmt == "speedscope":
        return Response(trace.to_speedscope(), media_type="application/json")
    return PlainTextResponse(trace.to_text())
