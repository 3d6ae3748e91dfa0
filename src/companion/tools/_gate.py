"""`ToolGate`: whether a caller may call a tool that acts through another capability, and its limits.

A tool such as `run_code` does what `POST /v1/execute` does; calling it must need the same scope
and count against the same limits, whichever way it is called (one call, a batch, MCP). The
service builds a gate per request from the caller's API key; local callers (the CLI, `companion
mcp` on stdio) act for themselves and pass none.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

__all__ = ["ToolGate"]


class ToolGate(Protocol):
    """The caller's permissions, and the limits of the capabilities tools act through."""

    def allows(self, scope: str) -> bool:
        """Whether the caller holds `scope`; listings and exports show only such tools."""
        ...

    def admit(self, scope: str) -> AbstractAsyncContextManager[object]:
        """Hold one use of the capability while a call runs; raise (e.g. `RateLimited`) when over."""
        ...
