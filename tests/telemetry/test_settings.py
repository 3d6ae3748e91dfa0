"""The telemetry settings are checked at start, with one line per bad value (secrets masked)."""

from __future__ import annotations

import pytest

from companion.config import load_settings
from companion.errors import ConfigError
from companion.telemetry import NO_TELEMETRY, build_telemetry


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("", ""),
        ("  ", ""),
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("https://collector:4318/", "https://collector:4318/v1/traces"),
        ("https://otlp.example.com/api/v1/traces", "https://otlp.example.com/api/v1/traces"),
    ],
)
def test_a_base_url_gets_the_traces_path(given: str, used: str) -> None:
    assert load_settings(telemetry_otlp_endpoint=given).telemetry_otlp_endpoint == used


@pytest.mark.parametrize("endpoint", ["collector:4318", "grpc://collector:4317", "http://"])
def test_an_endpoint_must_be_an_http_url(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="COMPANION_TELEMETRY_OTLP_ENDPOINT"):
        load_settings(telemetry_otlp_endpoint=endpoint)


def test_headers_are_name_value_pairs_and_never_repeated_in_errors() -> None:
    settings = load_settings(telemetry_otlp_headers="Authorization=Basic a2V5OnZhbHVl==, X-Org=7")
    assert settings.telemetry_headers == {"authorization": "Basic a2V5OnZhbHVl==", "x-org": "7"}
    assert load_settings().telemetry_headers == {}
    with pytest.raises(ConfigError) as caught:
        load_settings(telemetry_otlp_headers="authorization Bearer hunter2")
    assert "COMPANION_TELEMETRY_OTLP_HEADERS=***" in caught.value.message
    assert "hunter2" not in caught.value.message


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_the_sample_ratio_is_a_share(ratio: float) -> None:
    with pytest.raises(ConfigError, match="COMPANION_TELEMETRY_SAMPLE_RATIO"):
        load_settings(telemetry_sample_ratio=ratio)


def test_no_endpoint_is_no_telemetry() -> None:
    assert build_telemetry(load_settings()) is NO_TELEMETRY
    assert not NO_TELEMETRY.enabled
    with NO_TELEMETRY.span("anything", {"a": 1}) as span:
        span.set("b", 2)
        assert (span.trace_id, span.span_id) == (None, None)
    assert NO_TELEMETRY.force_flush() is True
