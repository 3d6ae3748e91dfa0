"""Tracing on: sandboxed runs and session cells are spans without their code or output."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from companion.telemetry import ReceivedSpan
from tests.telemetry._traced import Traced, new_traceparent, traced_service

pytestmark = pytest.mark.sandbox

MARK = "ocelot7731"  # in the code, the output and the file of a run: never in a span


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    with traced_service(
        execution_pool_size=1,
        knowledge_embedder="none",
        data_dir=tmp_path_factory.mktemp("data"),
    ) as traced:
        yield traced


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"{name}: {[span.name for span in spans]}"
    return found[0]


def _post(service: Traced, path: str, body: dict[str, object]) -> tuple[httpx.Response, str]:
    header, trace_id, _ = new_traceparent()
    token = service.key("execute", "tools")
    response = httpx.post(
        f"{service.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}", "traceparent": header},
        timeout=60,
    )
    assert response.status_code in {200, 201}, response.text
    return response, trace_id


def test_a_run_is_a_child_of_its_request_with_its_outcome_and_limits(service: Traced) -> None:
    code = f"open('{MARK}.txt', 'w').write('{MARK}')\nprint('{MARK}')"
    response, trace_id = _post(service, "/v1/execute", {"language": "python", "code": code})
    result = response.json()
    assert result["stdout"] == f"{MARK}\n"
    spans = service.trace(trace_id)
    request = _one(spans, "POST /v1/execute")
    run = _one(spans, "sandbox.run")
    assert run.parent_span_id == request.span_id
    assert run.status == "UNSET"
    attributes = dict(run.attributes)
    usage = {name: attributes.pop(f"companion.execution.{name}") for name in ("wall_ms", "cpu_ms")}
    assert usage["wall_ms"] == pytest.approx(result["usage"]["wall_ms"], abs=0.001)
    assert usage["cpu_ms"] == pytest.approx(result["usage"]["cpu_ms"], abs=0.001)
    assert attributes == {
        "companion.execution.language": "python",
        "companion.execution.wall_time_limit_ms": 5000,
        "companion.execution.cpu_time_limit_ms": 5000,
        "companion.execution.status": "ok",
        "companion.execution.timed_out": False,
        "companion.execution.runtime_version": result["version"],
        "companion.execution.exit_code": 0,
        "companion.execution.memory_bytes": result["usage"]["memory_bytes"],
    }
    assert MARK not in str([span.attributes for span in spans])
    # The span lasts at least as long as the run it timed.
    assert run.duration_ms >= result["usage"]["wall_ms"]


def test_a_timeout_is_the_runs_outcome_not_a_failed_span(service: Traced) -> None:
    response, trace_id = _post(
        service,
        "/v1/execute",
        {"language": "javascript", "code": "while (true) {}", "limits": {"cpu_time_ms": 200}},
    )
    assert response.json()["status"] == "timeout"
    run = _one(service.trace(trace_id), "sandbox.run")
    assert run.attributes["companion.execution.timed_out"] is True
    assert run.attributes["companion.execution.status"] == "timeout"
    assert run.attributes["companion.execution.cpu_time_limit_ms"] == 200
    assert run.attributes["companion.execution.language"] == "javascript"
    assert run.status == "UNSET"


def test_run_code_nests_its_run_under_its_tool_call(service: Traced) -> None:
    response, trace_id = _post(
        service, "/v1/tools/run_code/invoke", {"arguments": {"code": f"'{MARK}'"}}
    )
    assert response.json()["ok"], response.text
    spans = service.trace(trace_id)
    request = _one(spans, "POST /v1/tools/{name}/invoke")
    call = _one(spans, "execute_tool run_code")
    run = _one(spans, "sandbox.run")
    assert (call.parent_span_id, run.parent_span_id) == (request.span_id, call.span_id)
    assert MARK not in str([span.attributes for span in spans])


def test_a_session_cell_is_a_span(service: Traced) -> None:
    opened, _ = _post(service, "/v1/sessions", {"language": "python"})
    session_id = opened.json()["id"]
    response, trace_id = _post(
        service, f"/v1/sessions/{session_id}/execute", {"code": f"x = '{MARK}'\nx"}
    )
    assert response.json()["execution_count"] == 1
    spans = service.trace(trace_id)
    request = _one(spans, "POST /v1/sessions/{session_id}/execute")
    cell = _one(spans, "sandbox.cell")
    assert cell.parent_span_id == request.span_id
    assert cell.attributes["companion.execution.status"] == "ok"
    assert cell.attributes["companion.execution.language"] == "python"
    assert MARK not in str([span.attributes for span in spans])
    assert session_id not in str(request.attributes)  # route templates, never raw paths
