"""`create_app(settings)`: the one place where settings choose the subsystems the service runs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from companion import __version__
from companion.api import _execute, _health
from companion.api._body_limit import BodySizeLimitMiddleware
from companion.api._dependencies import dependency_checks
from companion.api._problems import install_error_handlers
from companion.api._state import AppState
from companion.config import Settings, load_settings
from companion.errors import CompanionError
from companion.execution import Executor, SandboxUnavailable

_log = logging.getLogger("companion.api")

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for `settings` (loaded from the environment when omitted)."""
    settings = settings if settings is not None else load_settings()
    state = AppState(settings=settings, dependency_checks=dependency_checks(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.execution_enabled:
            await _start_executor(state)
        try:
            yield
        finally:
            if state.executor is not None:
                await state.executor.close()

    app = FastAPI(
        title="Companion BaaS",
        version=__version__,
        summary="Sandboxed code execution, typed tools and knowledge search for AI agents.",
        lifespan=lifespan,
    )
    app.state.companion = state
    install_error_handlers(app)
    app.include_router(_health.router)
    app.include_router(_execute.router)
    # Pure ASGI middleware only: BaseHTTPMiddleware costs ~1 ms a request here.
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    return app


async def _start_executor(state: AppState) -> None:
    """Start the sandbox pool; without isolation the service runs on and reports why."""
    executor = Executor(state.settings)
    try:
        await executor.start()
    except CompanionError as exc:
        await executor.close()
        state.executor_problem = exc.message
        _log.error("code execution is unavailable: %s", exc.message)
    else:
        state.executor = executor

    async def sandbox_ready() -> str:
        running = state.require_executor()
        stats = running.pool_stats()
        if stats is None or stats.size == 0:
            raise SandboxUnavailable("no sandbox zygote is running")
        layers = ", ".join(layer.name for layer in running.layers if layer.available)
        return f"{stats.size} zygotes, {stats.waiting} queued; layers: {layers}"

    state.dependency_checks["sandbox"] = sandbox_ready
