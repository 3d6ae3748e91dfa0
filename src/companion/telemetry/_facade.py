"""The tracer facade every call site uses: `Telemetry` and its `Span`s.

The base classes are the no-op used when tracing is off: `span()` hands back one shared span whose
methods do nothing, and nothing here imports OpenTelemetry. The OpenTelemetry-backed subclasses
live in `_otel`, imported only when an OTLP endpoint is configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import ClassVar

__all__ = ["NO_SPAN", "NO_TELEMETRY", "AttributeValue", "Attributes", "Span", "Telemetry"]

AttributeValue = str | bool | int | float
Attributes = Mapping[str, AttributeValue]


class Span:
    """One unit of work being traced, used as a context manager; this base records nothing.

    Entering starts the span and makes it the parent of spans started inside the block (in this
    task, and in tasks and threads started from it with its context); leaving ends it. An
    exception leaving the block marks the span failed with its `error.type`, never its message.
    """

    __slots__ = ()

    @property
    def trace_id(self) -> str | None:
        """The trace's id in W3C form (32 hex digits) once started; None when not traced."""
        return None

    @property
    def span_id(self) -> str | None:
        """The span's id (16 hex digits) once started; None when not traced."""
        return None

    def set(self, name: str, value: AttributeValue) -> None:
        """Set one attribute."""

    def rename(self, name: str) -> None:
        """Change the span's name (e.g. to the route template once routing has chosen it)."""

    def fail(self, error_type: str) -> None:
        """Mark the span failed: status ERROR and `error.type` (a short, bounded code)."""

    def __enter__(self) -> Span:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


NO_SPAN = Span()
"""The span of disabled tracing: shared, stateless, free."""


class Telemetry:
    """Where spans come from; this base is tracing switched off (`NO_TELEMETRY`).

    Call sites that would build attributes first check `enabled`, so that with tracing off they
    cost one attribute read; the rest may call `span()` and get `NO_SPAN` back.
    """

    enabled: ClassVar[bool] = False

    def span(self, name: str, attributes: Attributes | None = None) -> Span:
        """An internal span, child of the current one; start it with `with`."""
        return NO_SPAN

    def server_span(
        self,
        name: str,
        headers: Iterable[tuple[bytes, bytes]],
        attributes: Attributes | None = None,
    ) -> Span:
        """The span of one incoming request, continuing the W3C `traceparent` among `headers`."""
        return NO_SPAN

    def propagation_headers(self) -> list[tuple[bytes, bytes]]:
        """The W3C `traceparent` (and `tracestate`) that make a request sent now a child of the
        current span, for a call to another service or node; none when not traced."""
        return []

    def force_flush(self, timeout_ms: int | None = None) -> bool:
        """Export every ended span now (blocking); True when all went out."""
        return True

    def shutdown(self) -> None:
        """Flush and stop exporting (blocking, bounded by the export timeout)."""


NO_TELEMETRY = Telemetry()
"""Tracing off: the default of every class that takes a `telemetry`."""
