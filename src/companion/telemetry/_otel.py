"""Tracing on: the facade over the OpenTelemetry SDK, exporting over OTLP/HTTP in batches.

Imported only when `telemetry_otlp_endpoint` is set (`build_telemetry`), so a service without it
never loads the SDK, the exporter or protobuf. The provider is this service's own, never the
process-wide global one: two apps in one process (tests, the benchmark) trace independently, and
libraries that look up the global provider (FastAPI's native telemetry, the MCP SDK) stay silent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from types import TracebackType

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from companion import __version__
from companion.errors import CompanionError
from companion.telemetry._facade import Attributes, AttributeValue, Span, Telemetry

__all__ = ["OtelTelemetry"]

# Only the W3C headers are read from a request: nothing else of it reaches the propagator.
_PROPAGATED = (b"traceparent", b"tracestate")
_PROPAGATOR = TraceContextTextMapPropagator()
# Exporter and processor report their own metrics only to this (our /metrics has the figures).
_NO_METRICS = NoOpMeterProvider()


class _OtelSpan(Span):
    """A span of the SDK, started by `__enter__` and made current until `__exit__`."""

    __slots__ = ("_attributes", "_kind", "_name", "_parent", "_span", "_token", "_tracer")

    def __init__(
        self,
        tracer: trace.Tracer,
        name: str,
        attributes: Attributes | None,
        kind: SpanKind,
        parent: otel_context.Context | None = None,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._attributes = attributes
        self._kind = kind
        self._parent = parent
        self._span: trace.Span = trace.INVALID_SPAN
        self._token: object = None

    @property
    def trace_id(self) -> str | None:
        """32 hex digits (valid once entered, sampled or not)."""
        context = self._span.get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else None

    @property
    def span_id(self) -> str | None:
        """16 hex digits (valid once entered)."""
        context = self._span.get_span_context()
        return format(context.span_id, "016x") if context.is_valid else None

    def set(self, name: str, value: AttributeValue) -> None:
        """Set one attribute."""
        self._span.set_attribute(name, value)

    def rename(self, name: str) -> None:
        """Change the span's name."""
        self._span.update_name(name)

    def fail(self, error_type: str) -> None:
        """Status ERROR with `error.type` (OpenTelemetry's semantic conventions)."""
        self._span.set_attribute("error.type", error_type)
        self._span.set_status(StatusCode.ERROR)

    def __enter__(self) -> Span:
        # No exception events: their messages and stack traces may carry a user's data, and
        # the log line of an unexpected error already has the traceback, with the trace id.
        self._span = self._tracer.start_span(
            self._name,
            context=self._parent,
            kind=self._kind,
            attributes=self._attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc is not None:
                self.fail(_error_type(exc))
            self._span.end()
        finally:
            otel_context.detach(self._token)  # type: ignore[arg-type]


def _error_type(exc: BaseException) -> str:
    """Our errors' stable codes; other exceptions' class names (low cardinality, no message)."""
    if isinstance(exc, CompanionError):
        return exc.code
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


class OtelTelemetry(Telemetry):
    """Spans recorded by a `TracerProvider` of our own and exported to `endpoint` in batches.

    Ended spans wait in the batch processor's bounded queue (2,048 by default; more are dropped)
    and a background thread posts them every few seconds, so a request never waits for the
    collector. `shutdown` flushes what is left.
    """

    enabled = True

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        service_name: str = "companion",
        instance: str | None = None,
        sample_ratio: float = 1.0,
        export_timeout_ms: int = 10_000,
    ) -> None:
        attributes: dict[str, str] = {"service.name": service_name, "service.version": __version__}
        if instance:
            attributes["service.instance.id"] = instance
        # `Resource.create` also reads OTEL_RESOURCE_ATTRIBUTES; what is set here wins.
        self._provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
            resource=Resource.create(attributes),
            shutdown_on_exit=False,  # the service's lifespan shuts it down
            meter_provider=_NO_METRICS,
        )
        self._timeout_ms = export_timeout_ms
        exporter = OTLPSpanExporter(
            endpoint=endpoint,
            headers=dict(headers or {}),
            timeout=export_timeout_ms / 1000,
            meter_provider=_NO_METRICS,
        )
        self._provider.add_span_processor(BatchSpanProcessor(exporter, meter_provider=_NO_METRICS))
        self._tracer = self._provider.get_tracer("companion", __version__)

    def span(self, name: str, attributes: Attributes | None = None) -> Span:
        """An internal span, child of the current one."""
        return _OtelSpan(self._tracer, name, attributes, SpanKind.INTERNAL)

    def server_span(
        self,
        name: str,
        headers: Iterable[tuple[bytes, bytes]],
        attributes: Attributes | None = None,
    ) -> Span:
        """A server span whose parent is the request's `traceparent` (a new trace without one)."""
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in headers
            if key in _PROPAGATED
        }
        # An empty base context: a request's trace never inherits whatever span is current.
        parent = _PROPAGATOR.extract(carrier, context=otel_context.Context())
        return _OtelSpan(self._tracer, name, attributes, SpanKind.SERVER, parent)

    def propagation_headers(self) -> list[tuple[bytes, bytes]]:
        """The current span's context as W3C headers (none outside a span)."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)  # the current context: the caller's span
        return [(key.encode("latin-1"), value.encode("latin-1")) for key, value in carrier.items()]

    def force_flush(self, timeout_ms: int | None = None) -> bool:
        """Export every ended span now; blocks until the exporter has answered."""
        return self._provider.force_flush(timeout_ms or self._timeout_ms)

    def shutdown(self) -> None:
        """Flush and stop, waiting at most `export_timeout_ms`; what is not out by then is lost.

        The SDK's own shutdown exports batch after batch, each up to the export deadline, and
        waits up to 30 s whatever the deadline (measured: 2,000 spans queued for a collector
        that never answers, 10 s deadline, 30 s). It runs in a daemon thread of its own, so a
        stopping service waits no longer than the deadline it was given.
        """
        stopping = threading.Thread(
            target=self._provider.shutdown, name="otel-shutdown", daemon=True
        )
        stopping.start()
        stopping.join(self._timeout_ms / 1000)
