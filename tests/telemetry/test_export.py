"""What reaches the collector: headers, resource, sampling, and the flush at shutdown."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import pytest

from companion.api import create_app
from companion.config import load_settings
from companion.telemetry import OtlpReceiver, build_telemetry
from tests.telemetry._traced import new_traceparent, traced_service
from tests.tools._served import serve


def test_shutdown_flushes_with_the_settings_headers_and_resource(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK reads OTEL_RESOURCE_ATTRIBUTES itself; what our settings name wins over it.
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,service.name=x")
    with OtlpReceiver() as receiver:
        settings = load_settings(
            execution_enabled=False,
            data_dir=tmp_path / "data",
            telemetry_otlp_endpoint=receiver.url,
            telemetry_otlp_headers="authorization=Bearer s3cret, x-team=agents",
            telemetry_service_name="companion-eu",
            node_name="node-7",
        )
        with serve(create_app(settings)) as url:
            header, trace_id, _ = new_traceparent()
            assert httpx.get(f"{url}/livez", headers={"traceparent": header}).status_code == 200
        # The service stopped: its lifespan flushed the batch (no force_flush here).
        (span,) = [span for span in receiver.spans if span.trace_id == trace_id]
        headers = receiver.headers
    assert span.name == "GET /livez"
    assert span.resource["service.name"] == "companion-eu"
    assert span.resource["service.instance.id"] == "node-7"
    assert span.resource["deployment.environment"] == "staging"
    assert headers
    assert all(h["authorization"] == "Bearer s3cret" and h["x-team"] == "agents" for h in headers)
    assert all(h["content-type"] == "application/x-protobuf" for h in headers)


def test_a_sample_ratio_of_zero_records_only_what_a_caller_sampled(tmp_path: Path) -> None:
    with traced_service(
        execution_enabled=False, data_dir=tmp_path / "data", telemetry_sample_ratio=0.0
    ) as service:
        unsampled = httpx.get(f"{service.url}/v1/tools/add")
        sampled_header, sampled_trace, _ = new_traceparent(sampled=True)
        httpx.get(f"{service.url}/livez", headers={"traceparent": sampled_header})
        declined_header, declined_trace, _ = new_traceparent(sampled=False)
        declined = httpx.get(
            f"{service.url}/v1/tools/add", headers={"traceparent": declined_header}
        )
        assert [span.name for span in service.trace(sampled_trace)] == ["GET /livez"]
    exported = {span.trace_id for span in service.receiver.spans}
    assert exported == {sampled_trace}
    # Not recorded, still identified: the problem names the trace the caller asked for.
    assert declined.json()["trace_id"] == declined_trace
    assert len(unsampled.json()["trace_id"]) == 32


def test_an_unreachable_collector_never_fails_a_request(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        url = receiver.url  # a port that answered once and is closed now
    settings = load_settings(
        execution_enabled=False,
        data_dir=tmp_path / "data",
        telemetry_otlp_endpoint=url,
        telemetry_export_timeout_ms=200,
    )
    app = create_app(settings)
    with serve(app) as base:
        assert httpx.get(f"{base}/livez").status_code == 200
        # The export fails within its deadline (a hang would fail this test by its timeout);
        # the service answers on, and stops (flushing again) just as well.
        app.state.companion.telemetry.force_flush()
        assert httpx.get(f"{base}/livez").status_code == 200


def test_shutdown_waits_no_longer_than_the_export_deadline_for_a_silent_collector() -> None:
    # A collector that takes connections and never answers: the kernel accepts them (backlog),
    # nobody reads. Each export then lasts its whole deadline.
    with socket.create_server(("127.0.0.1", 0), backlog=16) as silent:
        port = silent.getsockname()[1]
        deadline_ms = 500
        telemetry = build_telemetry(
            load_settings(
                telemetry_otlp_endpoint=f"http://127.0.0.1:{port}",
                telemetry_export_timeout_ms=deadline_ms,
            )
        )
        for _ in range(2_048):  # four batches of 512: the SDK alone would wait for each in turn
            with telemetry.span("queued"):
                pass
        before = set(threading.enumerate())
        telemetry.shutdown()
        # The SDK's flush takes a deadline per batch (four here): shutdown returned while it
        # still runs, so it waited for one deadline, not for them all. No clock is read.
        [flushing] = [
            t for t in threading.enumerate() if t.name == "otel-shutdown" and t not in before
        ]
        assert flushing.is_alive()
    flushing.join(30)  # real-time: the SDK's own thread ends once its exports time out
    assert not flushing.is_alive()
