"""A real MCP client (the official SDK) lists and calls the registry in memory and over HTTP."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from companion.api import create_app
from companion.config import load_settings
from companion.tools import ToolRegistry, build_mcp_server, register_builtins


async def _exercise(client: Client) -> None:
    listed = await client.list_tools()
    names = {tool.name for tool in listed.tools}
    assert {"add", "divide", "list_sort"} <= names
    added = await client.call_tool("add", {"a": 5, "b": 3})
    assert not added.is_error
    assert added.structured_content == {"result": 8.0}
    lax = await client.call_tool("add", {"a": "5", "b": 3})  # our strict validation runs
    assert lax.is_error
    assert lax.structured_content["errors"][0]["pointer"] == "/a"
    failed = await client.call_tool("divide", {"a": 1, "b": 0})
    assert failed.is_error
    assert failed.structured_content["code"] == "division_by_zero"
    with pytest.raises(MCPError, match="no tool named"):
        await client.call_tool("missing", {})


async def test_in_memory_client() -> None:
    registry = ToolRegistry()
    register_builtins(registry)
    async with Client(build_mcp_server(registry)) as client:
        await _exercise(client)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FastAPI]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data_dir = tmp_path_factory.mktemp("mcp")
    app = create_app(load_settings(execution_enabled=False, data_dir=data_dir))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)  # real-time: waiting for the server thread to bind
        assert server.started
        yield f"http://127.0.0.1:{port}/mcp", app
    finally:
        server.should_exit = True
        thread.join(10)


async def test_over_http_against_the_mounted_app(served: tuple[str, FastAPI]) -> None:
    url, app = served
    _, token = app.state.companion.keys.create("acme", ["tools"])
    async with (
        httpx2.AsyncClient(headers=_http_headers(token)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        await _exercise(client)
    cache = app.state.companion.cache
    assert cache.invalidate("t:acme:tools:*") >= 1  # the key's tenant owns the cached results


@pytest.mark.parametrize("scopes", [None, ["execute"]], ids=["no-key", "wrong-scope"])
async def test_mcp_sits_behind_the_same_guard(
    served: tuple[str, FastAPI], scopes: list[str] | None
) -> None:
    url, app = served
    token = app.state.companion.keys.create("acme", scopes)[1] if scopes else None
    async with httpx2.AsyncClient(headers=_http_headers(token)) as http:
        response = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == (403 if scopes else 401)
    assert response.headers["content-type"] == "application/problem+json"


def _http_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
