"""`companion mcp --url`: a stdio MCP server that relays every request to a running service's `/mcp`.

For clients that start servers as commands but cannot send an HTTP header (Claude Desktop's
configuration file takes stdio servers only), and for any stdio client that should see what the
service holds: the key's tenant, scopes and limits apply, and the embedded knowledge store stays
with the one process that owns it (`companion mcp` without `--url` opens the data directory's
store itself, which it cannot while `companion serve` has it open).

Requests are relayed one by one with the official client; the service's protocol errors come back
as they were sent (the same codes, messages and data).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from companion import __version__
from companion.errors import DependencyUnavailable, Unauthorized

__all__ = ["build_mcp_bridge", "connect_service", "serve_mcp_bridge"]

# A relayed call waits as long as the service lets a tool run (`run_code` may take a minute).
READ_TIMEOUT_S = 300.0


@asynccontextmanager
async def connect_service(url: str, api_key: str) -> AsyncIterator[Client]:
    """A client of the service's `/mcp` at `url` with `api_key`; `Unauthorized` for a refused key,
    `DependencyUnavailable` when the service cannot be reached."""
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=READ_TIMEOUT_S) as http:
        try:
            # Before the session: a clear error instead of one deep inside the transport's tasks.
            answer = await http.post(url, json={"jsonrpc": "2.0", "id": 0, "method": "ping"})
        except httpx2.HTTPError as exc:
            raise DependencyUnavailable(f"cannot reach the service at {url}: {exc}") from None
        if answer.status_code in {401, 403}:
            try:  # the service's problem+json names what is wrong with the key
                reason = str(answer.json().get("detail", ""))
            except ValueError:
                reason = answer.text
            raise Unauthorized(
                f"the service at {url} refused the key ({answer.status_code}): {reason}"
            )
        if answer.status_code == 404:
            raise DependencyUnavailable(f"no MCP endpoint at {url} (404): the URL ends in /mcp")
        # The response cache is off: a relay must not answer from a stale listing.
        client = Client(
            streamable_http_client(url, http_client=http),
            cache=None,
            read_timeout_seconds=READ_TIMEOUT_S,
        )
        async with client:
            yield client


def build_mcp_bridge(remote: Client) -> Server[Any]:
    """A server answering each request with the same request to `remote`."""

    async def list_tools(
        _ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return await remote.list_tools(cursor=_cursor(params))

    async def call_tool(_ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return await remote.call_tool(params.name, params.arguments)

    async def list_resources(
        _ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return await remote.list_resources(cursor=_cursor(params))

    async def list_resource_templates(
        _ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return await remote.list_resource_templates(cursor=_cursor(params))

    async def read_resource(
        _ctx: Any, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        return await remote.read_resource(params.uri)

    async def list_prompts(
        _ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return await remote.list_prompts(cursor=_cursor(params))

    async def get_prompt(_ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        return await remote.get_prompt(params.name, params.arguments)

    async def complete(_ctx: Any, params: types.CompleteRequestParams) -> types.CompleteResult:
        context = params.context.arguments if params.context is not None else None
        argument = {"name": params.argument.name, "value": params.argument.value}
        return await remote.complete(params.ref, argument, context)

    return Server(
        "companion",
        version=__version__,
        instructions=remote.instructions,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_completion=complete,
    )


def _cursor(params: types.PaginatedRequestParams | None) -> str | None:
    return params.cursor if params is not None else None


async def serve_mcp_bridge(url: str, api_key: str) -> None:
    """Serve over stdin/stdout what the service at `url` (its `/mcp`) serves to `api_key`."""
    async with connect_service(url, api_key) as remote:
        server = build_mcp_bridge(remote)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
