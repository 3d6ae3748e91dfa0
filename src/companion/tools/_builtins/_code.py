"""`run_code`: a snippet in a sandbox, through `companion.execution` (so it needs `execute`)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from companion.execution import (
    CellLimitOverrides,
    CellRequest,
    ExecutionRequest,
    Executor,
    LimitOverrides,
    SessionCreate,
)
from companion.tools._context import current_tenant
from companion.tools._tool import tool

__all__ = ["ExecutorSource", "make_run_code", "make_session_tools", "run_code_description"]

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
        "Run a Python or JavaScript (QuickJS) snippet in an isolated sandbox. Returns its "
        "stdout, stderr, error, the value of its last expression (like a notebook cell), figures "
        f"and the files it wrote in its working directory. {packages}. No network access and no "
        "subprocesses. Without `session_id` every call starts from nothing, so send the whole "
        "program each time; with a `session_id` from `open_session`, the code runs in that "
        "session's interpreter, where variables, imports and files persist between calls."
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
        code: str,
        language: str = "python",
        timeout_ms: int | None = None,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        """Run a snippet in a sandbox.

        Args:
            code: The source code to run.
            language: "python" or "javascript" (a session runs its own language).
            timeout_ms: Wall-time limit in milliseconds; the service's default when omitted, and
                never above its maximum.
            session_id: Run in this session (from `open_session`), keeping its state.
        """
        running = await _running(executor)
        if session_id is not None:
            cell = CellRequest(code=code, limits=CellLimitOverrides(wall_time_ms=timeout_ms))
            result = await running.sessions.execute(current_tenant(), session_id, cell)
            return result.model_dump(mode="json")
        request = ExecutionRequest(
            language=language, code=code, limits=LimitOverrides(wall_time_ms=timeout_ms)
        )
        return (await running.run(request, tenant=current_tenant())).model_dump(mode="json")

    return run_code


def make_session_tools(executor: ExecutorSource) -> list[Callable[..., Awaitable[Any]]]:
    """`open_session` and `close_session`: an agent's own interpreter across `run_code` calls."""

    @tool(name="open_session", category="code", timeout_s=60.0, scope="execute")
    async def open_session(
        language: str = "python", idle_timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Open a session: an interpreter in its own sandbox that keeps variables, imports and
        files between `run_code` calls given its `session_id`. Close it with `close_session` when
        done; it also ends after `idle_timeout_s` without a call.

        Args:
            language: "python" or "javascript".
            idle_timeout_s: Seconds without a call before the session ends; the service's
                default when omitted.
        """
        running = await _running(executor)
        create = SessionCreate(language=language, idle_timeout_s=idle_timeout_s)
        info = await running.sessions.create(current_tenant(), create)
        return {
            "session_id": info.id,
            "language": info.language,
            "idle_timeout_s": info.idle_timeout_s,
            "expires_at": info.expires_at,
        }

    @tool(name="close_session", category="code", timeout_s=60.0, scope="execute")
    async def close_session(session_id: str) -> dict[str, Any]:
        """End a session opened with `open_session`, freeing its sandbox.

        Args:
            session_id: The session to end.
        """
        running = await _running(executor)
        await running.sessions.delete(current_tenant(), session_id)
        return {"session_id": session_id, "closed": True}

    return [open_session, close_session]


async def _running(executor: ExecutorSource) -> Executor:
    """The executor a source gives (started on first use by the CLI's)."""
    running = executor if isinstance(executor, Executor) else executor()
    if inspect.isawaitable(running):
        running = await running
    assert isinstance(running, Executor)
    return running
