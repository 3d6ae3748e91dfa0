"""companion.tools: typed tools, strictly validated, cached, batched, exported and served by MCP.

See docs/tools.md.
"""

from typing import TYPE_CHECKING

from companion.tools._builtins import BUILTIN_NAMES, register_builtins
from companion.tools._context import current_tenant
from companion.tools._errors import (
    InvalidToolDefinition,
    ToolAlreadyRegistered,
    ToolArgumentsInvalid,
    ToolError,
    ToolNotFound,
    ToolScopeMissing,
)
from companion.tools._gate import ToolGate
from companion.tools._models import ToolCall, ToolErrorInfo, ToolInfo, ToolResult
from companion.tools._registry import ToolRegistry
from companion.tools._tool import ToolOptions, tool

if TYPE_CHECKING:
    from companion.tools._mcp import MCP_SERVICE_REFUSED, build_mcp_server, serve_mcp_stdio
    from companion.tools._mcp_bridge import serve_mcp_bridge


# The MCP SDK costs ~15 MiB of memory on import: loaded on first use of MCP, not with the tools.
def __getattr__(name: str) -> object:
    if name in {"MCP_SERVICE_REFUSED", "build_mcp_server", "serve_mcp_stdio"}:
        from companion.tools import _mcp

        return getattr(_mcp, name)
    if name == "serve_mcp_bridge":
        from companion.tools import _mcp_bridge

        return _mcp_bridge.serve_mcp_bridge
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BUILTIN_NAMES",
    "MCP_SERVICE_REFUSED",
    "InvalidToolDefinition",
    "ToolAlreadyRegistered",
    "ToolArgumentsInvalid",
    "ToolCall",
    "ToolError",
    "ToolErrorInfo",
    "ToolGate",
    "ToolInfo",
    "ToolNotFound",
    "ToolOptions",
    "ToolRegistry",
    "ToolResult",
    "ToolScopeMissing",
    "build_mcp_server",
    "current_tenant",
    "register_builtins",
    "serve_mcp_bridge",
    "serve_mcp_stdio",
    "tool",
]
