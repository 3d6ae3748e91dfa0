"""Pure-ASGI OpenTelemetry middleware: one server span per HTTP request (installed only when on).

Not to be confused with `_tracing`, the sampling profiler behind `X-Companion-Trace`. The span
continues the caller's W3C `traceparent`, is named `METHOD /route/{template}` once routing has
chosen the route, and carries the method, route template, status, tenant and request id: never
the key, the raw path, the query string or a body. Its trace and span ids go into the scope for
the access log line and the problem documents.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from companion.api._context import REQUEST_ID, SPAN_ID, TENANT, TRACE_ID
from companion.telemetry import Telemetry

__all__ = ["TelemetryMiddleware"]


class TelemetryMiddleware:
    """`app.add_middleware(TelemetryMiddleware, telemetry=telemetry)`: a span per HTTP request."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request inside its span; 5xx answers and exceptions mark the span failed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        status = 500

        async def send_and_capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.telemetry.server_span(
            method, scope["headers"], {"http.request.method": method}
        ) as span:
            scope[TRACE_ID] = span.trace_id
            scope[SPAN_ID] = span.span_id
            try:
                await self.app(scope, receive, send_and_capture)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if isinstance(route, str):
                    span.rename(f"{method} {route}")
                    span.set("http.route", route)
                span.set("http.response.status_code", status)
                for attribute, key in (
                    ("companion.tenant", TENANT),
                    ("companion.request_id", REQUEST_ID),
                ):
                    value = scope.get(key)
                    if isinstance(value, str):
                        span.set(attribute, value)
                if status >= 500:
                    span.fail(str(status))
