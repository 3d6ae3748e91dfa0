"""The tenant a tool call acts for, visible to the tool itself (`run_code`, the knowledge tools)."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["CALLER_TENANT", "current_tenant"]

# Set by the registry around every call; tasks and `copy_context()` carry it to the tool.
CALLER_TENANT: ContextVar[str] = ContextVar("companion_tool_tenant", default="default")


def current_tenant() -> str:
    """The tenant of the tool call being run (`default` outside one)."""
    return CALLER_TENANT.get()
