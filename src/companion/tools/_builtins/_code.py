"""`run_code`: a snippet in a sandbox, through `companion.execution` (so it needs `execute`)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from companion.execution import ExecutionRequest, Executor, LimitOverrides
from companion.tools._context import current_tenant
from companion.tools._tool import tool

__all__ = ["ExecutorSource", "make_run_code", "run_code_description"]

# The executor, or a function giving the running one (the service's), or a coroutine function
# starting one on first use (the CLI's).
ExecutorSource = Executor | Callable[[], Executor | Awaitable[Executor]]


def run_code_description(python_packages: Sequence[str]) -> str:
    """What `run_code` tells a model, so it does not guess what the sandbox offers."""
    packages = (
        f"Python has the standard library and {', '.join(python_packages)} (matplotlib draws "
        "off-screen: open figures come back as PNG images)"
        if python_packages
        else "Python has the standard library only"
    )
    return (
        "Run a Python or JavaScript (QuickJS) snippet in a fresh, isolated sandbox. Returns its "
        "stdout, stderr, error, the value of its last expression (like a notebook cell), figures "
        f"and the files it wrote in its working directory. {packages}. No network access, no "
        "subprocesses, and no state between calls: every call starts from nothing, so send the "
        "whole program each time."
    )


def make_run_code(
    executor: ExecutorSource, python_packages: Sequence[str] = ()
) -> Callable[..., Awaitable[Any]]:
    """Build `run_code` over `executor`; it acts through the `execute` scope.
    `python_packages` ("numpy 2.4.6", ...) are named in its description."""

    @tool(
        name="run_code",
        category="code",
        timeout_s=60.0,
        scope="execute",
        description=run_code_description(python_packages),
    )
    async def run_code(
        code: str, language: str = "python", timeout_ms: int | None = None
    ) -> dict[str, Any]:
        """Run a snippet in a sandbox.

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
