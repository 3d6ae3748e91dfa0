"""The tools subsystem's leaves of the `companion.errors` tree.

NotFound
├── ToolNotFound (404 tool_not_found)              no such tool, or it is disabled
├── ResourceNotFound (404 resource_not_found)      an MCP URI this server does not serve
└── PromptNotFound (404 prompt_not_found)          no MCP prompt of that name for this caller
Conflict
└── ToolAlreadyRegistered (409 tool_exists)        a second tool under one name
Forbidden
└── ToolScopeMissing (403 scope_missing)           the tool acts through a scope the caller lacks
InvalidInput
├── InvalidToolDefinition (400 invalid_tool)       a function that cannot be described as a tool
├── InvalidCursor (400 invalid_cursor)             an MCP list cursor this server did not make
├── PromptArgumentsInvalid (400 invalid_prompt_arguments)  a prompt's argument missing or unknown
└── ValidationFailed
    └── ToolArgumentsInvalid (422 invalid_arguments)  names each bad argument (JSON pointer)
CompanionError
└── ToolError (422 tool_error)                     raised by a tool: reported in its result
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from companion.errors import (
    CompanionError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ValidationFailed,
)

__all__ = [
    "InvalidCursor",
    "InvalidToolDefinition",
    "PromptArgumentsInvalid",
    "PromptNotFound",
    "ResourceNotFound",
    "ToolAlreadyRegistered",
    "ToolArgumentsInvalid",
    "ToolError",
    "ToolNotFound",
    "ToolScopeMissing",
]


class ToolNotFound(NotFound):
    """No tool of that name is registered and enabled."""

    code = "tool_not_found"
    title = "Tool not found"


class ResourceNotFound(NotFound):
    """An MCP resource URI that is not of this server's shapes (`companion://collections/...`)."""

    code = "resource_not_found"
    title = "Resource not found"


class PromptNotFound(NotFound):
    """No MCP prompt of that name, or none this caller may use (its tools are not listed to it)."""

    code = "prompt_not_found"
    title = "Prompt not found"


class ToolAlreadyRegistered(Conflict):
    """A tool of that name is already registered."""

    code = "tool_exists"
    title = "Tool already registered"


class ToolScopeMissing(Forbidden):
    """The tool acts through another capability (`ToolInfo.scope`) that the caller may not use."""

    code = "scope_missing"
    title = "Scope missing"

    def __init__(self, tool: str, scope: str) -> None:
        super().__init__(
            f"{tool} acts through the `{scope}` scope, which this caller lacks",
            details={"tool": tool, "scope": scope},
        )


class InvalidToolDefinition(InvalidInput, TypeError):
    """The function cannot be described as a tool (untyped parameter, `*args`, ...)."""

    code = "invalid_tool"
    title = "Invalid tool definition"


class InvalidCursor(InvalidInput):
    """A pagination cursor this server did not make: pass back a `nextCursor` as it came."""

    code = "invalid_cursor"
    title = "Invalid cursor"


class PromptArgumentsInvalid(InvalidInput):
    """A prompt's required argument is missing, or an argument it does not take was given."""

    code = "invalid_prompt_arguments"
    title = "Invalid prompt arguments"


class ToolArgumentsInvalid(ValidationFailed):
    """The arguments do not match the tool's input schema; `errors` names each bad one."""

    code = "invalid_arguments"
    title = "Invalid tool arguments"


class ToolError(CompanionError):
    """Raise inside a tool for a domain failure: the result carries its `code` and message.

    `ToolError("cannot divide by zero", code="division_by_zero")` gives a result with
    `ok: false, error: {code: "division_by_zero", message: "cannot divide by zero"}`.
    """

    status = 422
    code = "tool_error"
    title = "Tool failed"

    def __init__(
        self, message: str, *, code: str | None = None, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        if code is not None:
            self.code = code  # type: ignore[misc]  # per-instance code, the class one is the default
