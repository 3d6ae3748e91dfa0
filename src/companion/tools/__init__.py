"""companion.tools: typed tools, strictly validated, cached, batched, exported and served by MCP.

See docs/tools.md.
"""

from companion.tools._builtins import BUILTIN_NAMES, register_builtins
from companion.tools._context import current_tenant
from companion.tools._errors import (
    InvalidToolDefinition,
    ToolAlreadyRegistered,
    ToolArgumentsInvalid,
    ToolError,
    ToolNotFound,
)
from companion.tools._mcp import build_mcp_server, serve_mcp_stdio
from companion.tools._models import ToolCall, ToolErrorInfo, ToolInfo, ToolResult
from companion.tools._registry import ToolRegistry
from companion.tools._tool import ToolOptions, tool

__all__ = [
    "BUILTIN_NAMES",
    "InvalidToolDefinition",
    "ToolAlreadyRegistered",
    "ToolArgumentsInvalid",
    "ToolCall",
    "ToolError",
    "ToolErrorInfo",
    "ToolInfo",
    "ToolNotFound",
    "ToolOptions",
    "ToolRegistry",
    "ToolResult",
    "build_mcp_server",
    "current_tenant",
    "register_builtins",
    "serve_mcp_stdio",
    "tool",
]
