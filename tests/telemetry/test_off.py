"""Tracing off (the default): nothing of the SDK is loaded and nothing of a trace is answered."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import orjson

from companion.api import create_app
from companion.api._logging import JsonFormatter
from companion.config import load_settings
from companion.telemetry import NO_TELEMETRY
from tests.tools._served import serve

ROOT = Path(__file__).resolve().parents[2]

# What only tracing loads. FastAPI itself imports the OpenTelemetry *API* package (its native
# telemetry, which we keep off), so `opentelemetry` alone is in every process that imports it.
SDK_MODULES = (
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "opentelemetry.proto",
    "google.protobuf",
)


def _python(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("COMPANION_", "OTEL_"))
    }
    env["COMPANION_DATA_DIR"] = str(tmp_path / "data")
    env["COMPANION_EXECUTION_ENABLED"] = "false"
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_service_without_an_endpoint_never_imports_the_sdk(tmp_path: Path) -> None:
    script = """
        import sys
        from fastapi.testclient import TestClient
        from companion.api import create_app

        app = create_app()
        with TestClient(app) as client:
            token = app.state.companion.keys.create("default", ["admin"])[1]
            headers = {"Authorization": f"Bearer {token}"}
            assert client.post("/v1/tools/add/invoke", json={"arguments": {"a": 1, "b": 2}},
                               headers=headers).json()["ok"]
            client.put("/v1/collections/notes", headers=headers)
            assert client.post("/v1/collections/notes/search", json={"query": "x"},
                               headers=headers).status_code == 200
            assert client.get("/nowhere").status_code == 404
        print(app.state.companion.telemetry.enabled)
        print(",".join(sorted(m for m in sys.modules
                              if m.startswith(("opentelemetry", "google.protobuf",
                                               "companion.telemetry")))))
    """
    done = _python(script, tmp_path)
    assert done.returncode == 0, done.stderr
    enabled, modules = done.stdout.strip().splitlines()
    assert enabled == "False"
    loaded = modules.split(",")
    assert "companion.telemetry" in loaded  # the facade, which imports no OpenTelemetry
    assert "companion.telemetry._otel" not in loaded
    assert [m for m in loaded if m.startswith(SDK_MODULES)] == []


def test_a_missing_extra_stops_the_service_naming_it(tmp_path: Path) -> None:
    # A `None` in sys.modules makes the import fail as if the package were not installed.
    script = """
        import sys
        sys.modules["opentelemetry.sdk"] = None
        from companion.api import create_app
        from companion.config import load_settings
        from companion.errors import FeatureUnavailable
        try:
            create_app(load_settings(telemetry_otlp_endpoint="http://127.0.0.1:4318"))
        except FeatureUnavailable as exc:
            print(exc.status, exc.message)
    """
    done = _python(script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("501 COMPANION_TELEMETRY_OTLP_ENDPOINT is set"), done.stdout
    assert "companion[telemetry]" in done.stdout


def test_problems_and_log_lines_carry_no_trace_when_off(tmp_path: Path) -> None:
    app = create_app(load_settings(execution_enabled=False, data_dir=tmp_path / "data"))
    assert app.state.companion.telemetry is NO_TELEMETRY
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep()
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("companion.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        with serve(app) as url:
            traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            response = httpx.get(f"{url}/v1/tools/add", headers={"traceparent": traceparent})
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    assert response.status_code == 401
    assert "trace_id" not in response.json()
    entries = [orjson.loads(line) for line in lines]
    entry = next(e for e in entries if e["request_id"] == response.headers["x-request-id"])
    assert "trace_id" not in entry
    assert "span_id" not in entry
