"""The registry as an MCP server (the official SDK's low-level `Server`, so our strict validation runs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mcp_types as types
import orjson
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from companion import __version__
from companion.errors import CompanionError
from companion.tools._errors import ToolArgumentsInvalid, ToolNotFound, ToolScopeMissing
from companion.tools._export import jsonable, mcp_output_schema

if TYPE_CHECKING:
    from companion.tools._gate import ToolGate
    from companion.tools._registry import ToolRegistry

__all__ = ["build_mcp_server", "serve_mcp_stdio"]


def build_mcp_server(
    registry: ToolRegistry,
    *,
    tenant: str = "default",
    tenant_of: Callable[[Any], str | None] | None = None,
    gate_of: Callable[[Any], ToolGate | None] | None = None,
) -> Server[Any]:
    """An MCP server listing and calling `registry`'s enabled tools.

    Calls act as `tenant_of(request context)` when it names one (the HTTP service derives it from
    the caller's API key), else as `tenant`. `gate_of(request context)` gives the caller's
    `ToolGate` (the HTTP service's, from the key): `tools/list` shows only the tools it allows
    and each scoped call is admitted by it, as on every other path.
    """

    def gate(ctx: Any) -> ToolGate | None:
        return gate_of(ctx) if gate_of is not None else None

    async def list_tools(
        ctx: Any, _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[types.Tool.model_validate(tool) for tool in registry.to_mcp(gate=gate(ctx))]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        caller = (tenant_of(ctx) if tenant_of is not None else None) or tenant
        try:
            result = await registry.acall(
                params.name, params.arguments or {}, tenant=caller, gate=gate(ctx)
            )
        except (ToolNotFound, ToolScopeMissing) as exc:
            # A tool the caller may not call is not listed to it either: the same protocol error.
            raise MCPError(types.INVALID_PARAMS, exc.message) from None
        except ToolArgumentsInvalid as exc:
            # Reported in the result (not as a protocol error) so the model can correct itself.
            return _error_result(exc.message, {"code": exc.code, "errors": list(exc.errors)})
        except CompanionError as exc:
            # A refused admission (rate limit, runs in flight): the model can wait and retry.
            details = dict(exc.details)
            retry_after_s = getattr(exc, "retry_after_s", None)
            if retry_after_s is not None:
                details["retry_after_s"] = retry_after_s
            return _error_result(exc.message, {"code": exc.code, "details": details})
        if not result.ok:
            assert result.error is not None
            error = result.error
            return _error_result(error.message, {"code": error.code, "details": error.details})
        value = jsonable(result.value)
        structured = value
        if mcp_output_schema(registry.get(params.name)) is not None and not isinstance(value, dict):
            structured = {"result": value}
        return types.CallToolResult(content=_content(value), structured_content=structured)

    return Server(
        "companion",
        version=__version__,
        instructions=(
            "Companion BaaS tools: arithmetic, text, time, lists, JSON, and (as the caller's "
            "scopes allow) code in a sandbox and knowledge: `list_collections` and "
            "`search_knowledge` to find what you or your users stored, `remember` to store a note."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _content(value: Any) -> list[types.TextContent | types.ImageContent]:
    """The value as JSON text; images among a run's `results` (`run_code`'s figures) also as MCP
    image content, which a client shows to the model as an image. The text names each image in
    place of repeating its base64."""
    images: list[types.TextContent | types.ImageContent] = []
    if isinstance(value, dict) and isinstance(value.get("results"), list):
        shown = []
        for item in value["results"]:
            if (
                isinstance(item, dict)
                and item.get("encoding") == "base64"
                and str(item.get("mime_type")).startswith("image/")
            ):
                images.append(types.ImageContent(data=item["data"], mime_type=item["mime_type"]))
                shown.append({**item, "data": f"(image content {len(images)} of this result)"})
            else:
                shown.append(item)
        value = {**value, "results": shown}
    return [types.TextContent(text=orjson.dumps(value).decode()), *images]


def _error_result(message: str, structured: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=message)],
        structured_content=structured,
        is_error=True,
    )


async def serve_mcp_stdio(registry: ToolRegistry, *, tenant: str = "default") -> None:
    """Serve `registry` over stdin/stdout until the client disconnects (`companion mcp`)."""
    server = build_mcp_server(registry, tenant=tenant)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
