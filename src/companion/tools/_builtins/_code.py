"""`run_code`: a snippet in a sandbox, through `companion.execution` (so it needs `execute`)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from companion.execution import ExecutionRequest, Executor, LimitOverrides
from companion.tools._context import current_tenant
from companion.tools._tool import tool

__all__ = ["ExecutorSource", "make_run_code"]

# The executor, or a function giving the running one (the service's), or a coroutine function
# starting one on first use (the CLI's).
ExecutorSource = Executor | Callable[[], Executor | Awaitable[Executor]]


def make_run_code(executor: ExecutorSource) -> Callable[..., Awaitable[Any]]:
    """Build `run_code` over `executor`; it acts through the `execute` scope."""

    @tool(name="run_code", category="code", timeout_s=60.0, scope="execute")
    async def run_code(
        code: str, language: str = "python", timeout_ms: int | None = None
    ) -> dict[str, Any]:
        """Run a Python or JavaScript snippet in a sandbox and return its output.

        Args:
            code: The source code to run.
            language: "python" or "javascript".
            timeout_ms: Wall-time limit in milliseconds; the service's default when omitted, and
                never above its maximum.
        """
        running = executor if isinstance(executor, Executor) else executor()
        if inspect.isawaitable(running):
            running = await running
        assert isinstance(running, Executor)
        request = ExecutionRequest(
            language=language, code=code, limits=LimitOverrides(wall_time_ms=timeout_ms)
        )
        result = await running.run(request, tenant=current_tenant())
        return result.model_dump(mode="json")

    return run_code
