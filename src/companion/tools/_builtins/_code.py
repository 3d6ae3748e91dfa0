"""`run_code`: a snippet in a sandbox, through `companion.execution`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from companion.execution import ExecutionRequest, Executor, LimitOverrides
from companion.tools._context import current_tenant

__all__ = ["make_run_code"]


def make_run_code(executor: Executor | Callable[[], Executor]) -> Callable[..., Awaitable[Any]]:
    """Build `run_code` over `executor` (or a function returning the running one)."""

    async def run_code(
        code: str, language: str = "python", timeout_ms: int = 5000
    ) -> dict[str, Any]:
        """Run a Python or JavaScript snippet in a sandbox and return its output.

        Args:
            code: The source code to run.
            language: "python" or "javascript".
            timeout_ms: Wall-time limit in milliseconds (capped by the service's maximum).
        """
        running = (
            executor() if callable(executor) and not isinstance(executor, Executor) else executor
        )
        assert isinstance(running, Executor)
        request = ExecutionRequest(
            language=language, code=code, limits=LimitOverrides(wall_time_ms=timeout_ms)
        )
        result = await running.run(request, tenant=current_tenant())
        return result.model_dump(mode="json")

    return run_code
