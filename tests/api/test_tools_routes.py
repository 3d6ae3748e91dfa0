"""`/v1/tools` routes over HTTP: listing, exports, invoke, batch, problem documents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from companion.api import create_app
from companion.config import load_settings
from tests.api.conftest import key_headers


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = load_settings(
        execution_enabled=False, tools_disabled="time", data_dir=tmp_path_factory.mktemp("data")
    )
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        client.headers.update(key_headers(client, "tools", tenant="acme"))
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


def test_openai_export_for_either_api(client: TestClient) -> None:
    chat = client.get("/v1/tools", params={"format": "openai"}).json()
    for api, expected in (("chat", chat), ("responses", None)):
        response = client.get("/v1/tools", params={"format": "openai", "api": api})
        assert response.status_code == 200, response.text
        if expected is not None:
            assert response.json() == expected
    flat = client.get("/v1/tools", params={"format": "openai", "api": "responses"}).json()
    assert [tool["name"] for tool in flat] == [tool["function"]["name"] for tool in chat]
    for tool in flat:
        assert set(tool) == {"type", "name", "description", "parameters", "strict"}
        assert tool["strict"] is True
    for params in ({"format": "openai", "api": "assistants"}, {"format": "mcp", "api": "chat"}):
        rejected = client.get("/v1/tools", params=params)
        assert rejected.status_code == 422, params
        assert rejected.headers["content-type"] == "application/problem+json"
        errors = rejected.json()["errors"]
        assert [(error["location"], error["pointer"]) for error in errors] == [("query", "/api")]


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


def test_tool_routes_need_the_tools_scope(client: TestClient) -> None:
    execute_only = key_headers(client, "execute")
    assert client.get("/v1/tools", headers={"Authorization": ""}).status_code == 401
    assert client.get("/v1/tools", headers=execute_only).status_code == 403
    call = {"arguments": {"a": 1, "b": 2}}
    assert client.post("/v1/tools/add/invoke", json=call, headers=execute_only).status_code == 403


def test_pure_tool_results_are_cached_per_tenant(client: TestClient) -> None:
    call = {"arguments": {"a": 40, "b": 2}}
    first = client.post("/v1/tools/add/invoke", json=call).json()
    again = client.post("/v1/tools/add/invoke", json=call).json()
    assert (first["cached"], again["cached"]) == (False, True)
    other_tenant = key_headers(client, "tools", tenant="zeta")
    theirs = client.post("/v1/tools/add/invoke", json=call, headers=other_tenant).json()
    assert theirs["cached"] is False  # tenant zeta never sees acme's entries
    assert theirs["value"] == first["value"] == 42


def test_a_tenant_invalidates_only_its_own_tool_results(client: TestClient) -> None:
    call = {"arguments": {"a": 1000, "b": 1}}
    zeta = key_headers(client, "tools", tenant="zeta")
    client.post("/v1/tools/add/invoke", json=call)
    client.post("/v1/tools/add/invoke", json=call, headers=zeta)
    removed = client.post("/v1/cache/invalidate", json={"pattern": "tools:add:*"}).json()
    assert removed["removed"] >= 1
    assert client.post("/v1/tools/add/invoke", json=call).json()["cached"] is False
    assert client.post("/v1/tools/add/invoke", json=call, headers=zeta).json()["cached"] is True


def test_invoke_bodies_match_the_documented_result_model(client: TestClient) -> None:
    from companion.api._tools import ResultBody

    for arguments, tool in (({"a": 6, "b": 7}, "multiply"), ({"a": 1, "b": 0}, "divide")):
        raw = client.post(f"/v1/tools/{tool}/invoke", json={"arguments": arguments}).json()
        assert ResultBody.model_validate(raw).model_dump() == raw
