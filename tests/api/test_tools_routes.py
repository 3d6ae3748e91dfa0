"""`/v1/tools` routes over HTTP: listing, exports, invoke, batch, problem documents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = load_settings(execution_enabled=False, tools_disabled="time")
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client


def test_list_and_formats(client: TestClient) -> None:
    tools = client.get("/v1/tools").json()
    names = {tool["name"] for tool in tools}
    assert "add" in names
    assert "current_datetime" not in names
    assert "run_code" not in names  # execution is disabled
    openai = client.get("/v1/tools", params={"format": "openai"}).json()
    assert openai[0]["function"]["strict"] is True
    assert "input_schema" in client.get("/v1/tools", params={"format": "anthropic"}).json()[0]
    assert "inputSchema" in client.get("/v1/tools", params={"format": "mcp"}).json()[0]
    assert client.get("/v1/tools", params={"format": "yaml"}).status_code == 422


def test_get_one(client: TestClient) -> None:
    body = client.get("/v1/tools/divide").json()
    assert body["category"] == "math"
    assert body["pure"] is True
    missing = client.get("/v1/tools/current_datetime")
    assert missing.status_code == 404
    assert missing.json()["code"] == "tool_not_found"


def test_invoke_ok_cached_and_domain_error(client: TestClient) -> None:
    first = client.post("/v1/tools/multiply/invoke", json={"arguments": {"a": 6, "b": 7}}).json()
    second = client.post("/v1/tools/multiply/invoke", json={"arguments": {"a": 6, "b": 7}}).json()
    assert (first["value"], first["cached"], second["cached"]) == (42.0, False, True)
    failed = client.post("/v1/tools/divide/invoke", json={"arguments": {"a": 1, "b": 0}})
    assert failed.status_code == 200
    assert failed.json()["error"]["code"] == "division_by_zero"


def test_invalid_arguments_are_a_422_problem(client: TestClient) -> None:
    response = client.post("/v1/tools/add/invoke", json={"arguments": {"a": "1", "b": 2}})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid_arguments"
    assert body["errors"][0]["pointer"] == "/a"
    unknown = client.post("/v1/tools/nope/invoke", json={"arguments": {}})
    assert unknown.status_code == 404


def test_batch_keeps_order_and_isolates_failures(client: TestClient) -> None:
    calls = [
        {"tool": "add", "arguments": {"a": 1, "b": 2}, "id": "a"},
        {"tool": "nope", "arguments": {}},
        {"tool": "sqrt", "arguments": {"x": -1}},
        {"tool": "uppercase", "arguments": {"text": "hi"}, "id": "d"},
    ]
    results = client.post("/v1/tools/batch", json={"calls": calls}).json()["results"]
    assert [r["ok"] for r in results] == [True, False, False, True]
    assert [r["id"] for r in results] == ["a", None, None, "d"]
    assert results[1]["error"]["code"] == "tool_not_found"
    assert results[3]["value"] == "HI"
    too_many = client.post("/v1/tools/batch", json={"calls": [calls[0]] * 101})
    assert too_many.status_code == 400


def test_metrics_exported(client: TestClient) -> None:
    client.post("/v1/tools/add/invoke", json={"arguments": {"a": 1, "b": 1}})
    text = client.get("/metrics").text
    assert "companion_tools_calls_total" in text
