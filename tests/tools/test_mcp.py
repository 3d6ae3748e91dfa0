"""A real MCP client (the official SDK) lists and calls the registry in memory and over HTTP."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from mcp import Client
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
def served_url() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(load_settings(execution_enabled=False))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)  # real-time: waiting for the server thread to bind
        assert server.started
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(10)


async def test_over_http_against_the_mounted_app(served_url: str) -> None:
    async with Client(served_url) as client:
        await _exercise(client)
