"""`create_app(settings)`: the one place where settings choose the subsystems the service runs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from companion import __version__
from companion.api import (
    _cache,
    _dashboard,
    _execute,
    _health,
    _knowledge,
    _lifecycle,
    _observability,
    _sessions,
    _tools,
    _tracing,
)
from companion.api._body_limit import BodySizeLimitMiddleware
from companion.api._context import RequestContextMiddleware
from companion.api._problems import GUARDED_RESPONSES, install_error_handlers, problem_response
from companion.api._session_forwarding import SessionForwardingMiddleware
from companion.api._telemetry import TelemetryMiddleware
from companion.config import Settings, load_settings
from companion.errors import PayloadTooLarge
from companion.monitoring import RequestMetricsMiddleware

__all__ = ["HeaderSizeLimitMiddleware", "HeadersTooLarge", "create_app"]


class HeadersTooLarge(PayloadTooLarge):
    """The request line and headers are larger than `http_max_header_bytes` (RFC 6585's 431)."""

    status = 431
    code = "headers_too_large"
    title = "Request header fields too large"

    @classmethod
    def over(cls, limit: int) -> HeadersTooLarge:
        """The error for a request head over `limit` bytes."""
        message = f"The request line and headers are larger than {limit} bytes."
        return cls(message, details={"http_max_header_bytes": limit})


def _head_bytes(scope: Scope) -> int:
    """The size of the request head as sent: request line, header lines and the blank line."""
    query = scope["query_string"]
    line = len(scope["method"]) + len(scope.get("raw_path") or scope["path"].encode()) + 12
    return (
        line
        + (len(query) + 1 if query else 0)
        + sum(len(n) + len(v) + 4 for n, v in scope["headers"])
    )


class HeaderSizeLimitMiddleware:
    """Pure ASGI: 431 for a request whose head is over `max_header_bytes`, before anything reads it.

    This holds under any ASGI server but only sees a head the server has already read whole;
    `companion serve` also stops reading a head at the limit (`_http_protocol`), so a 64 MiB header
    costs neither memory nor seconds of parsing.
    """

    def __init__(self, app: ASGIApp, max_header_bytes: int) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 431 when the head is too large; pass everything else through."""
        if scope["type"] == "http" and _head_bytes(scope) > self.max_header_bytes:
            response = problem_response(HeadersTooLarge.over(self.max_header_bytes), scope)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _RouteInScope:
    """An ASGI endpoint that records its route in the scope before it runs.

    FastAPI records `scope["route"]` for its own routes only: without this, the metrics and the
    request spans saw a plain Starlette route (`/mcp`) as unmatched.
    """

    def __init__(self, endpoint: ASGIApp) -> None:
        self.endpoint = endpoint
        self.route: Route | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Record the route, then run the endpoint."""
        scope["route"] = self.route
        await self.endpoint(scope, receive, send)


def _routed(path: str, endpoint: ASGIApp, methods: list[str]) -> Route:
    """A route to a raw ASGI endpoint whose requests are labelled with its path template."""
    wrapper = _RouteInScope(endpoint)
    wrapper.route = Route(path, wrapper, methods=methods)
    return wrapper.route


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for `settings` (loaded from the environment when omitted)."""
    settings = settings if settings is not None else load_settings()
    state = _lifecycle.build_state(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await _lifecycle.start(state)
            yield
        finally:
            await _lifecycle.stop(state)

    app = FastAPI(
        title="Companion BaaS",
        version=__version__,
        summary="Sandboxed code execution, typed tools and knowledge search for AI agents.",
        lifespan=lifespan,
        # Our monitor measures every request already; FastAPI's native OpenTelemetry would look
        # up the global providers (environment variables included) on every request to find
        # that none is configured, and when on it records raw paths and query strings. Our
        # tracing (`TelemetryMiddleware`, `companion.telemetry`) records route templates only.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.companion = state
    install_error_handlers(app)
    # FastAPI tries routes in order, a router at a time (each one passed costs ~10 µs): the routes
    # agents call all day come first, probes and admin routes after them.
    for module in (_tools, _execute, _sessions, _knowledge, _cache, _observability, _tracing):
        # Every route documents the problem documents it may answer (fuzzers check conformance).
        app.include_router(module.router, responses=GUARDED_RESPONSES)
    app.include_router(_health.router, responses={503: GUARDED_RESPONSES[503]})
    app.include_router(_dashboard.router)
    app.router.routes.append(_routed("/mcp", _tools.McpEndpoint(), ["GET", "POST", "DELETE"]))
    # Pure ASGI middleware only: BaseHTTPMiddleware costs ~1 ms a request here. The last added is
    # the outermost, so the metrics also see requests the body limit rejects.
    # Innermost: a relayed call has passed the body limits, and carries the request id.
    app.add_middleware(SessionForwardingMiddleware, relay_for=state.relay_for)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_json_depth=settings.max_json_depth,
        path_limits=[
            (_FILES_IN_PATHS, _execute_body_bytes(settings)),
            (_UPLOAD_PATHS, settings.knowledge_max_upload_bytes),
        ],
    )
    if settings.profiling_trace_requests:
        app.add_middleware(
            _tracing.TracingMiddleware,
            profiler=state.profiler,
            ring=state.traces,
            keys=lambda: state.keys,
        )
    # Outside tracing (it reads the key header) and inside metrics (431s are counted).
    app.add_middleware(HeaderSizeLimitMiddleware, max_header_bytes=settings.http_max_header_bytes)
    profiler = state.profiler
    app.add_middleware(
        RequestMetricsMiddleware,
        monitor=state.monitor,
        observers=[
            lambda route, seconds, status: profiler.record(
                f"http {route}", seconds, error=status >= 500
            )
        ],
    )
    if state.telemetry.enabled:
        # Inside the request context (the span carries the request id, the access line the
        # trace id), outside everything else: the span covers the whole request. Not installed
        # at all when tracing is off.
        app.add_middleware(TelemetryMiddleware, telemetry=state.telemetry)
    app.add_middleware(
        RequestContextMiddleware, node=settings.node
    )  # outermost: every response gets its request id
    return app


# The routes that take files in: a run's or a cell's, and uploads to a session's workspace.
_FILES_IN_PATHS = re.compile(r"/v1/execute|/v1/sessions/[^/]+/(?:execute|files(?:/.*)?)")


# Files uploaded to a collection (multipart): bounded by their own setting.
_UPLOAD_PATHS = re.compile(r"/v1/collections/[^/]+/files")


def _execute_body_bytes(settings: Settings) -> int:
    """The largest body of a route taking files in (a run, a cell, a workspace upload): the
    largest request the executor accepts, files in base64 and code escaped in JSON (a character
    can take 6 bytes), whatever `max_body_bytes`."""
    files_bytes = -(-settings.execution_max_input_bytes // 3) * 4
    return settings.max_body_bytes + files_bytes + 6 * settings.execution_max_code_bytes
