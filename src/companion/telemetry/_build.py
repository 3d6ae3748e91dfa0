"""`build_telemetry(settings)`: tracing off (`NO_TELEMETRY`), or the OpenTelemetry SDK when configured."""

from __future__ import annotations

from companion.config import Settings
from companion.errors import FeatureUnavailable
from companion.telemetry._facade import NO_TELEMETRY, Telemetry

__all__ = ["build_telemetry"]


def build_telemetry(settings: Settings) -> Telemetry:
    """`NO_TELEMETRY` unless `telemetry_otlp_endpoint` is set; then spans exported there.

    Raises `FeatureUnavailable` naming the `telemetry` extra when an endpoint is set but the
    OpenTelemetry SDK or its OTLP exporter is not installed: asking for traces and silently
    getting none would be worse than not starting.
    """
    if not settings.telemetry_otlp_endpoint:
        return NO_TELEMETRY
    try:
        from companion.telemetry._otel import OtelTelemetry
    except ImportError as exc:
        raise FeatureUnavailable(
            "COMPANION_TELEMETRY_OTLP_ENDPOINT is set but the OpenTelemetry SDK or its OTLP "
            f"exporter is missing ({exc.name or exc}): install the extra with "
            "`pip install 'companion[telemetry]'` (or `uv sync --extra telemetry`)."
        ) from exc
    return OtelTelemetry(
        settings.telemetry_otlp_endpoint,
        headers=settings.telemetry_headers,
        service_name=settings.telemetry_service_name,
        instance=settings.node,
        sample_ratio=settings.telemetry_sample_ratio,
        export_timeout_ms=settings.telemetry_export_timeout_ms,
    )
