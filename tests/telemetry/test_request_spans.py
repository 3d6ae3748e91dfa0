"""Tracing on: request, tool and search spans from a real service, decoded by a real OTLP receiver."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import orjson
import pytest
from fastapi import APIRouter
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from companion.api import create_app
from companion.api._logging import JsonFormatter
from companion.config import load_settings
from companion.telemetry import OtlpReceiver, ReceivedSpan
from tests.telemetry._traced import Traced, new_traceparent, traced_service
from tests.tools._served import serve

SECRET_QUERY = "zanzibarquokka"  # a query text that must never reach a span


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    with traced_service(
        execution_enabled=False,
        knowledge_embedder="none",
        data_dir=tmp_path_factory.mktemp("data"),
    ) as traced:
        yield traced


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"{name}: {[span.name for span in spans]}"
    return found[0]


def _values(spans: list[ReceivedSpan]) -> str:
    """Every name and attribute value of `spans`, as one text to search for leaks."""
    return " ".join(f"{span.name} {span.attributes} {span.resource}" for span in spans)


def test_a_request_continues_the_callers_trace_and_its_tool_call_is_a_child(
    service: Traced,
) -> None:
    token = service.key("tools", tenant="acme")
    header, trace_id, parent_id = new_traceparent()
    response = httpx.post(
        f"{service.url}/v1/tools/add/invoke",
        json={"arguments": {"a": 5, "b": 3}},
        headers={"Authorization": f"Bearer {token}", "traceparent": header},
    )
    assert response.status_code == 200, response.text
    spans = service.trace(trace_id)

    request = _one(spans, "POST /v1/tools/{name}/invoke")
    assert request.kind == "SERVER"
    assert request.parent_span_id == parent_id  # the caller's span, continued
    assert request.status == "UNSET"
    assert request.attributes == {
        "http.request.method": "POST",
        "http.route": "/v1/tools/{name}/invoke",
        "http.response.status_code": 200,
        "companion.tenant": "acme",
        "companion.request_id": response.headers["x-request-id"],
    }
    call = _one(spans, "execute_tool add")
    assert call.parent_span_id == request.span_id
    assert call.kind == "INTERNAL"
    assert call.attributes == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "companion.tool.cached": False,
        "companion.tool.outcome": "ok",
    }
    assert request.scope == "companion"
    assert request.resource["service.name"] == "companion"
    assert token not in _values(spans)


def test_a_cached_call_and_a_failed_call_say_so(service: Traced) -> None:
    headers = {"Authorization": f"Bearer {service.key('tools')}"}
    outcomes = []
    for arguments in ({"a": 2, "b": 7}, {"a": 2, "b": 7}, {"a": 1, "b": 0}):
        header, trace_id, _ = new_traceparent()
        response = httpx.post(
            f"{service.url}/v1/tools/divide/invoke",
            json={"arguments": arguments},
            headers={**headers, "traceparent": header},
        )
        assert response.status_code == 200, response.text
        call = _one(service.trace(trace_id), "execute_tool divide")
        outcomes.append((response.json(), call.attributes, call.status))
    (_, first, _), (_, second, _), (body, failed, status) = outcomes
    assert first["companion.tool.cached"] is False
    assert second["companion.tool.cached"] is True
    assert not body["ok"]
    assert failed["companion.tool.outcome"] == failed["error.type"] == body["error"]["code"]
    assert status == "ERROR"


def test_a_batch_gives_each_call_a_span_and_an_unknown_name_never_names_one(
    service: Traced,
) -> None:
    header, trace_id, _ = new_traceparent()
    response = httpx.post(
        f"{service.url}/v1/tools/batch",
        json={
            "calls": [
                {"tool": "add", "arguments": {"a": 1, "b": 1}},
                {"tool": "uppercase", "arguments": {"text": "hi"}},
                {"tool": "no_such_tool_xyz", "arguments": {}},
            ]
        },
        headers={"Authorization": f"Bearer {service.key('tools')}", "traceparent": header},
    )
    assert response.status_code == 200, response.text
    spans = service.trace(trace_id)
    request = _one(spans, "POST /v1/tools/batch")
    calls = [span for span in spans if span.name.startswith("execute_tool")]
    assert sorted(span.name for span in calls) == [
        "execute_tool",
        "execute_tool add",
        "execute_tool uppercase",
    ]
    assert {span.parent_span_id for span in calls} == {request.span_id}
    unknown = _one(spans, "execute_tool")
    assert unknown.status == "ERROR"
    assert unknown.attributes["error.type"] == "tool_not_found"
    assert "no_such_tool_xyz" not in _values(spans)


def test_a_search_is_a_span_with_its_figures_and_without_its_query(service: Traced) -> None:
    headers = {"Authorization": f"Bearer {service.key('knowledge:read', 'knowledge:write')}"}
    with httpx.Client(base_url=service.url, headers=headers) as http:
        assert http.put("/v1/collections/notes").status_code == 201
        written = http.post(
            "/v1/collections/notes/documents",
            json={"text": f"The {SECRET_QUERY} lives on an island.", "metadata": {"year": 2024}},
        )
        assert written.status_code == 201, written.text
        header, trace_id, _ = new_traceparent()
        found = http.post(
            "/v1/collections/notes/search",
            json={"query": SECRET_QUERY, "k": 3, "filter": {"year": 2024}},
            headers={"traceparent": header},
        )
    assert found.status_code == 200, found.text
    spans = service.trace(trace_id)
    request = _one(spans, "POST /v1/collections/{collection}/search")
    search = _one(spans, "knowledge.search")
    assert search.parent_span_id == request.span_id
    attributes = dict(search.attributes)
    took_ms = attributes.pop("companion.knowledge.took_ms")
    assert took_ms == pytest.approx(found.json()["took_ms"], abs=0.001)
    assert attributes == {
        "companion.knowledge.collection": "notes",
        "companion.knowledge.mode": "bm25",
        "companion.knowledge.k": 3,
        "companion.knowledge.filtered": True,
        "companion.knowledge.hits": 1,
        "companion.knowledge.embedding_ms": 0.0,
        "companion.knowledge.cached": False,
    }
    assert SECRET_QUERY not in _values(spans)
    assert "2024" not in str(search.attributes)  # nor the filter's values


def test_the_search_tool_nests_its_search_under_its_call(service: Traced) -> None:
    token = service.key("tools", "knowledge:read", "knowledge:write")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=service.url, headers=headers) as http:
        made = http.put("/v1/collections/tool-notes")
        assert made.status_code == 201, made.text
        http.post("/v1/collections/tool-notes/documents", json={"text": "quokkas smile"})
        header, trace_id, _ = new_traceparent()
        called = http.post(
            "/v1/tools/search_knowledge/invoke",
            json={"arguments": {"collection": "tool-notes", "query": "quokkas", "k": 2}},
            headers={"traceparent": header},
        )
    assert called.status_code == 200, called.text
    assert called.json()["ok"], called.text
    spans = service.trace(trace_id)
    call = _one(spans, "execute_tool search_knowledge")
    search = _one(spans, "knowledge.search")
    assert search.parent_span_id == call.span_id
    assert search.attributes["companion.knowledge.hits"] == 1
    assert search.attributes["companion.knowledge.k"] == 2


def test_a_collection_name_the_search_refused_is_never_recorded(service: Traced) -> None:
    # A caller's text in the collection field (here the query, pasted in the wrong place) is
    # refused by the search; the span must not carry it (nor tens of kilobytes of it).
    misplaced = f"where does the {SECRET_QUERY} live " * 500
    header, trace_id, _ = new_traceparent()
    called = httpx.post(
        f"{service.url}/v1/tools/search_knowledge/invoke",
        json={"arguments": {"collection": misplaced, "query": "island"}},
        headers={
            "Authorization": f"Bearer {service.key('tools', 'knowledge:read')}",
            "traceparent": header,
        },
    )
    assert called.status_code == 200, called.text
    assert called.json()["error"]["code"] == "invalid_input"
    spans = service.trace(trace_id)
    search = _one(spans, "knowledge.search")
    assert search.status == "ERROR"
    assert search.attributes["error.type"] == "invalid_input"
    assert "companion.knowledge.collection" not in search.attributes
    assert SECRET_QUERY not in _values(spans)


def test_a_problem_carries_the_trace_id_of_its_request_span(service: Traced) -> None:
    response = httpx.get(f"{service.url}/v1/tools/add", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    problem = response.json()
    trace_id = problem["trace_id"]
    assert len(trace_id) == 32
    request = _one(service.trace(trace_id), "GET /v1/tools/{name}")
    assert request.attributes["http.response.status_code"] == 401
    assert request.status == "UNSET"  # a client's error is not the server's failure
    assert request.parent_span_id is None  # no traceparent: a new trace


def test_an_unmatched_path_never_names_its_span(service: Traced) -> None:
    header, trace_id, _ = new_traceparent()
    response = httpx.get(f"{service.url}/wp-admin/secret-probe", headers={"traceparent": header})
    assert response.status_code == 404
    assert response.json()["trace_id"] == trace_id
    request = _one(service.trace(trace_id), "GET")
    assert "http.route" not in request.attributes
    assert "secret-probe" not in _values([request])


def test_the_access_log_line_carries_the_trace_and_span_ids(service: Traced) -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep()
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("companion.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        header, trace_id, _ = new_traceparent()
        response = httpx.get(f"{service.url}/livez", headers={"traceparent": header})
        request = _one(service.trace(trace_id), "GET /livez")
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    entries = [orjson.loads(line) for line in lines]
    entry = next(e for e in entries if e["request_id"] == response.headers["x-request-id"])
    assert entry["trace_id"] == trace_id
    assert entry["span_id"] == request.span_id


async def test_a_tool_called_over_mcp_is_a_child_of_its_mcp_request(service: Traced) -> None:
    headers = {"Authorization": f"Bearer {service.key('tools')}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{service.url}/mcp", http_client=http)) as client,
    ):
        result = await client.call_tool("multiply", {"a": 6, "b": 7})
    assert not result.is_error
    service.telemetry.force_flush()  # the call's span ended before its answer was sent
    calls = [span for span in service.receiver.spans if span.name == "execute_tool multiply"]
    assert len(calls) == 1
    request = _one(service.trace(calls[0].trace_id), "POST /mcp")
    assert calls[0].parent_span_id == request.span_id


def test_an_unexpected_error_fails_its_span_and_its_log_line_leads_to_the_trace(
    tmp_path: Path,
) -> None:
    router = APIRouter()

    @router.get("/probe/crash")
    async def crash() -> None:
        raise RuntimeError(f"internal detail {SECRET_QUERY}")

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep()
    handler.setFormatter(JsonFormatter())
    errors = logging.getLogger("companion.api")
    errors.addHandler(handler)
    try:
        with OtlpReceiver() as receiver:
            settings = load_settings(
                execution_enabled=False,
                data_dir=tmp_path / "data",
                telemetry_otlp_endpoint=receiver.url,
            )
            app = create_app(settings)
            app.include_router(router)
            with serve(app) as url:
                header, trace_id, _ = new_traceparent()
                response = httpx.get(f"{url}/probe/crash", headers={"traceparent": header})
            # The service stopped: its last spans were flushed.
            (request,) = [span for span in receiver.spans if span.trace_id == trace_id]
    finally:
        errors.removeHandler(handler)
    assert response.status_code == 500
    assert response.json()["trace_id"] == trace_id
    assert request.name == "GET /probe/crash"
    assert request.status == "ERROR"
    assert request.attributes["error.type"] == "RuntimeError"
    assert SECRET_QUERY not in _values([request])
    entries = [orjson.loads(line) for line in lines]
    (entry,) = [e for e in entries if e["msg"].startswith("unhandled error")]
    assert entry["trace_id"] == trace_id
    assert entry["span_id"] == request.span_id
    assert entry["request_id"] == response.json()["request_id"]


def test_the_receiver_answers_like_a_collector() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    with OtlpReceiver() as receiver:
        answer = httpx.post(
            receiver.url, content=b"", headers={"Content-Type": "application/x-protobuf"}
        )
        wrong = httpx.post(receiver.url.replace("/v1/traces", "/v1/logs"), content=b"")
        garbled = httpx.post(
            receiver.url, content=b"not gzip", headers={"Content-Encoding": "gzip"}
        )
    assert answer.status_code == 200
    assert ExportTraceServiceResponse.FromString(answer.content) == ExportTraceServiceResponse()
    assert wrong.status_code == 404
    assert garbled.status_code == 400
    assert receiver.spans == []
