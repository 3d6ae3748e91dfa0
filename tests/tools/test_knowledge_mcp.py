"""An agent reads and writes its knowledge over MCP at `/mcp`: the official client, a real server on
a loopback port, a real knowledge base, and API keys of two tenants with different scopes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
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

KNOWLEDGE_TOOLS = {"list_collections", "search_knowledge", "remember"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FastAPI]]:
    settings = load_settings(execution_enabled=False, data_dir=tmp_path_factory.mktemp("data"))
    app = create_app(settings)
    with serve(app) as url:
        yield url, app


@asynccontextmanager
async def _client(served: tuple[str, FastAPI], tenant: str, *scopes: str) -> AsyncIterator[Client]:
    url, app = served
    token = app.state.companion.keys.create(tenant, ["tools", *scopes])[1]
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


async def _value(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result
    return result.structured_content


async def _error(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result
    assert result.structured_content is not None
    return result.structured_content


async def test_an_agent_remembers_and_finds_it_over_mcp(served: tuple[str, FastAPI]) -> None:
    async with _client(served, "mcp-acme", "knowledge:read", "knowledge:write") as agent:
        tools = {tool.name: tool for tool in (await agent.list_tools()).tools}
        assert set(tools) >= KNOWLEDGE_TOOLS
        assert tools["remember"].annotations is not None
        assert tools["remember"].annotations.read_only_hint is False
        assert tools["list_collections"].annotations is not None
        assert tools["list_collections"].annotations.read_only_hint is True
        assert tools["remember"].output_schema is not None
        assert await _value(agent, "list_collections", {}) == {"collections": []}
        saved = await _value(
            agent,
            "remember",
            {
                "collection": "memory",
                "id": "pets",
                "title": "Pets",
                "text": "The user has two cats, Miso and Tofu.",
                "metadata": {"about": "family"},
            },
        )
        assert saved == {"document_id": "pets", "collection": "memory", "collection_created": True}
        await _value(
            agent,
            "remember",
            {"collection": "memory", "text": "The user's cats are vegetarians, sadly not."},
        )
        found = await _value(
            agent,
            "search_knowledge",
            {"collection": "memory", "query": "cats", "filter": {"about": "family"}},
        )
        assert [hit["document_id"] for hit in found["results"]] == ["pets"]
        assert found["results"][0]["title"] == "Pets"
        listed = await _value(agent, "list_collections", {})
        assert [(c["name"], c["document_count"]) for c in listed["collections"]] == [("memory", 2)]

        bad_filter = await _error(
            agent,
            "search_knowledge",
            {"collection": "memory", "query": "cats", "filter": {"about": {"like": "fam"}}},
        )
        assert bad_filter["code"] == "invalid_filter"
        empty = await _error(agent, "remember", {"collection": "memory", "text": ""})
        assert empty["code"] == "invalid_document"
        missing = await _error(agent, "search_knowledge", {"collection": "nope", "query": "x"})
        assert missing["code"] == "collection_not_found"
        strict = await _error(agent, "search_knowledge", {"collection": "memory", "k": "5"})
        assert strict["code"] == "invalid_arguments"

    # Another tenant, with the same scopes, sees none of it and writes its own.
    async with _client(served, "mcp-zeta", "knowledge:read", "knowledge:write") as other:
        assert await _value(other, "list_collections", {}) == {"collections": []}
        hidden = await _error(other, "search_knowledge", {"collection": "memory", "query": "cats"})
        assert hidden["code"] == "collection_not_found"
        own = await _value(
            other, "remember", {"collection": "memory", "id": "pets", "text": "A dog."}
        )
        assert own["collection_created"] is True
    async with _client(served, "mcp-acme", "knowledge:read") as agent:
        found = await _value(
            agent, "search_knowledge", {"collection": "memory", "query": "dog cats"}
        )
        assert {hit["text"] for hit in found["results"]} == {
            "The user has two cats, Miso and Tofu.",
            "The user's cats are vegetarians, sadly not.",
        }


@pytest.mark.parametrize(
    ("scopes", "visible"),
    [
        ((), set()),
        (("knowledge:read",), {"list_collections", "search_knowledge"}),
        (("knowledge:write",), {"remember"}),
    ],
    ids=["tools-only", "read", "write"],
)
async def test_mcp_lists_and_calls_only_what_the_keys_scopes_allow(
    served: tuple[str, FastAPI], scopes: tuple[str, ...], visible: set[str]
) -> None:
    arguments = {
        "list_collections": {},
        "search_knowledge": {"collection": "memory", "query": "x"},
        "remember": {"collection": "scoped-mcp", "text": "A note."},
    }
    async with _client(served, "mcp-scoped", *scopes) as agent:
        listed = {tool.name for tool in (await agent.list_tools()).tools}
        assert "add" in listed
        assert listed & KNOWLEDGE_TOOLS == visible
        for tool in KNOWLEDGE_TOOLS - visible:
            scope = "knowledge:write" if tool == "remember" else "knowledge:read"
            # Not listed to this key, so an unknown tool to it: the same protocol error,
            # naming the scope it lacks.
            with pytest.raises(MCPError, match=f"{tool} acts through the `{scope}` scope"):
                await agent.call_tool(tool, arguments[tool])
        for tool in visible - {"search_knowledge"}:
            assert not (await agent.call_tool(tool, arguments[tool])).is_error
        if "search_knowledge" in visible:
            # Admitted and run: this tenant has no `memory` collection, which is a tool error.
            searched = await _error(agent, "search_knowledge", arguments["search_knowledge"])
            assert searched["code"] == "collection_not_found"
