"""companion.telemetry: OpenTelemetry tracing, off by default and free when off; see docs/monitoring.md.

`build_telemetry(settings)` gives `NO_TELEMETRY` unless `telemetry_otlp_endpoint` is set, and then
a facade over the OpenTelemetry SDK exporting over OTLP/HTTP. Subsystems take a `telemetry=`
(default `NO_TELEMETRY`) and trace through the `*_span` helpers, which say what is recorded.
"""

from companion.telemetry._build import build_telemetry
from companion.telemetry._facade import (
    NO_SPAN,
    NO_TELEMETRY,
    Attributes,
    AttributeValue,
    Span,
    Telemetry,
)
from companion.telemetry._receiver import OtlpReceiver, ReceivedSpan
from companion.telemetry._spans import (
    record_run,
    record_search,
    record_tool,
    run_span,
    search_span,
    tool_span,
)

__all__ = [
    "NO_SPAN",
    "NO_TELEMETRY",
    "AttributeValue",
    "Attributes",
    "OtlpReceiver",
    "ReceivedSpan",
    "Span",
    "Telemetry",
    "build_telemetry",
    "record_run",
    "record_search",
    "record_tool",
    "run_span",
    "search_span",
    "tool_span",
]
