"""A tool acting through another capability needs its scope and counts against its limits, on
every path: `POST /v1/tools/{name}/invoke`, `POST /v1/tools/batch` and `/mcp` (issue #15).

Real sandboxes, a real knowledge base, a real server on a loopback port and the official MCP client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from companion.api import create_app
from companion.config import load_settings
from tests.tools._served import serve

pytestmark = pytest.mark.sandbox

PER_KEY = 2  # execute_max_concurrent_per_key
PER_MINUTE = 10  # rate_limit_execute
SCOPED = {"run_code", "open_session", "close_session", "search_knowledge"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FastAPI]]:
    settings = load_settings(
        execution_pool_size=2,
        execution_max_queue=2,
        execute_max_concurrent_per_key=PER_KEY,
        rate_limit_execute=f"{PER_MINUTE}/minute",
        data_dir=tmp_path_factory.mktemp("data"),
    )
    app = create_app(settings)
    with serve(app) as url:
        yield url, app


@pytest.fixture
def http(served: tuple[str, FastAPI]) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=served[0], timeout=60) as client:
        yield client


def _key(served: tuple[str, FastAPI], tenant: str, *scopes: str) -> dict[str, str]:
    ring = served[1].state.companion.keys
    return {"Authorization": f"Bearer {ring.create(tenant, list(scopes))[1]}"}


def _run(code: str) -> dict[str, Any]:
    return {"tool": "run_code", "arguments": {"code": code}}


def _names(body: list[dict[str, Any]]) -> set[str]:
    return {tool.get("name") or tool["function"]["name"] for tool in body}


EXPORTS: list[dict[str, str]] = [
    {},
    {"format": "openai"},
    {"format": "openai", "api": "responses"},
    {"format": "anthropic"},
    {"format": "mcp"},
]


def test_a_tools_only_key_neither_sees_nor_calls_the_scoped_tools(
    served: tuple[str, FastAPI], http: httpx2.Client
) -> None:
    tools_only = _key(served, "plain", "tools")
    for params in EXPORTS:
        listed = _names(http.get("/v1/tools", params=params, headers=tools_only).json())
        assert "add" in listed
        assert not listed & SCOPED, params
    for name, scope in (("run_code", "execute"), ("search_knowledge", "knowledge:read")):
        assert http.get(f"/v1/tools/{name}", headers=tools_only).status_code == 403
        refused = http.post(
            f"/v1/tools/{name}/invoke",
            json={"arguments": {"code": "print(1)"}},  # refused before its arguments are read
            headers=tools_only,
        )
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "scope_missing"
        assert refused.json()["details"] == {"tool": name, "scope": scope}
    calls = [_run("print(1)"), {"tool": "add", "arguments": {"a": 1, "b": 2}}]
    results = http.post("/v1/tools/batch", json={"calls": calls}, headers=tools_only).json()
    assert [r["error"]["code"] if r["error"] else "ok" for r in results["results"]] == [
        "scope_missing",
        "ok",
    ]


def test_each_scope_shows_and_runs_its_own_tools(
    served: tuple[str, FastAPI], http: httpx2.Client
) -> None:
    runner = _key(served, "runner", "tools", "execute")
    for params in EXPORTS:
        listed = _names(http.get("/v1/tools", params=params, headers=runner).json())
        assert listed & SCOPED == {"run_code", "open_session", "close_session"}, params
    assert http.get("/v1/tools/run_code", headers=runner).json()["scope"] == "execute"
    ran = http.post(
        "/v1/tools/run_code/invoke", json={"arguments": {"code": "print(6 * 7)"}}, headers=runner
    ).json()
    assert ran["ok"], ran
    assert ran["value"]["stdout"] == "42\n"

    writer = _key(served, "reader", "knowledge:write")
    assert http.post("/v1/collections", json={"name": "faq"}, headers=writer).status_code == 201
    document = {"id": "refunds", "text": "Refunds are processed within five working days."}
    added = http.post("/v1/collections/faq/documents", json=document, headers=writer)
    assert added.status_code == 201, added.text
    reader = _key(served, "reader", "tools", "knowledge:read")
    listed = _names(http.get("/v1/tools", headers=reader).json())
    assert listed & SCOPED == {"search_knowledge"}
    found = http.post(
        "/v1/tools/search_knowledge/invoke",
        json={"arguments": {"collection": "faq", "query": "refunds"}},
        headers=reader,
    ).json()
    assert found["ok"], found
    assert found["value"]["results"][0]["document_id"] == "refunds"
    admin = _key(served, "boss", "admin")
    assert _names(http.get("/v1/tools", headers=admin).json()) >= SCOPED


def test_a_batch_of_runs_never_exceeds_the_keys_execute_concurrency(
    served: tuple[str, FastAPI], http: httpx2.Client
) -> None:
    executor = served[1].state.companion.executor
    runner = _key(served, "bulk", "tools", "execute")
    calls = [_run(f"import time\ntime.sleep(0.25)\nprint({n})") for n in range(6)]
    outcome: dict[str, Any] = {}

    def send() -> None:
        # A client of its own: the test's client is used meanwhile on this thread.
        with httpx2.Client(base_url=served[0], timeout=60) as own:
            outcome["response"] = own.post("/v1/tools/batch", json={"calls": calls}, headers=runner)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        peak = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # real-time: sampling real sandboxes while they run
            stats = executor.pool_stats()
            held = stats.size - stats.idle + stats.waiting
            peak = max(peak, held)
            if held >= PER_KEY:
                break
            time.sleep(0.005)
        for _ in range(20):
            stats = executor.pool_stats()
            peak = max(peak, stats.size - stats.idle + stats.waiting)
            time.sleep(0.01)
        # Meanwhile the key's own runs are refused (its slots are held by the batch) ...
        own = http.post(
            "/v1/execute", json={"language": "python", "code": "print(1)"}, headers=runner
        )
        assert own.status_code == 429, own.text
        assert "in flight" in own.json()["detail"]
        # ... and another tenant is served, not told that every sandbox is busy.
        other = _key(served, "neighbour", "execute")
        theirs = http.post(
            "/v1/execute", json={"language": "python", "code": "print(2)"}, headers=other
        )
        assert theirs.status_code == 200, theirs.text
        assert theirs.json()["stdout"] == "2\n"
    finally:
        sender.join(60)
    results = outcome["response"].json()["results"]
    assert [r["value"]["stdout"] if r["ok"] else r["error"]["code"] for r in results] == [
        f"{n}\n" for n in range(6)
    ]
    assert peak <= PER_KEY


def test_runs_count_against_the_execute_rate_limit_on_every_path(
    served: tuple[str, FastAPI], http: httpx2.Client
) -> None:
    runner = _key(served, "limited", "tools", "execute")
    calls = [_run("print('x')") for _ in range(PER_MINUTE + 2)]
    results = http.post("/v1/tools/batch", json={"calls": calls}, headers=runner).json()["results"]
    codes = [r["error"]["code"] if r["error"] else "ok" for r in results]
    assert codes.count("ok") == PER_MINUTE
    assert codes.count("rate_limited") == 2
    limited = next(r for r in results if not r["ok"])
    assert limited["error"]["details"]["retry_after_s"] >= 1
    invoked = http.post(
        "/v1/tools/run_code/invoke", json={"arguments": {"code": "print(1)"}}, headers=runner
    )
    assert invoked.status_code == 429
    assert invoked.headers["retry-after"]
    executed = http.post(
        "/v1/execute", json={"language": "python", "code": "print(1)"}, headers=runner
    )
    assert executed.status_code == 429
    # Plain tools have their own (default) limit: they still run.
    added = http.post("/v1/tools/add/invoke", json={"arguments": {"a": 1, "b": 2}}, headers=runner)
    assert added.json()["value"] == 3


async def test_mcp_lists_and_admits_by_the_same_rules(
    served: tuple[str, FastAPI], http: httpx2.Client
) -> None:
    url = served[0]
    tools_only = _key(served, "mcp-plain", "tools")
    async with (
        httpx2.AsyncClient(headers=tools_only, timeout=60) as plain_http,
        Client(streamable_http_client(f"{url}/mcp", http_client=plain_http)) as plain,
    ):
        listed = {tool.name for tool in (await plain.list_tools()).tools}
        assert "add" in listed
        assert not listed & SCOPED
        with pytest.raises(MCPError, match="lacks"):
            await plain.call_tool("run_code", {"code": "print(1)"})
        with pytest.raises(MCPError, match="lacks"):
            await plain.call_tool("search_knowledge", {"collection": "faq", "query": "x"})

    runner = _key(served, "mcp-runner", "tools", "execute")
    async with (
        httpx2.AsyncClient(headers=runner, timeout=60) as runner_http,
        Client(streamable_http_client(f"{url}/mcp", http_client=runner_http)) as client,
    ):
        listed = {tool.name for tool in (await client.list_tools()).tools}
        assert listed & SCOPED == {"run_code", "open_session", "close_session"}
        ran = await client.call_tool("run_code", {"code": "print(7)"})
        assert not ran.is_error, ran
        assert ran.structured_content is not None
        assert ran.structured_content["stdout"] == "7\n"
        # The same bucket as /v1/execute: spend the rest of the minute's runs there ...
        for _ in range(PER_MINUTE - 1):
            done = await runner_http.post(
                f"{url}/v1/execute", json={"language": "python", "code": "pass"}
            )
            assert done.status_code == 200, done.text
        # ... and the next MCP run is refused, in a result the model can read.
        refused = await client.call_tool("run_code", {"code": "print(8)"})
        assert refused.is_error
        assert refused.structured_content is not None
        assert refused.structured_content["code"] == "rate_limited"
        assert refused.structured_content["details"]["retry_after_s"] >= 1
