"""`create_app(settings)`: the one place where settings choose the subsystems the service runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from companion import __version__
from companion.api import _health
from companion.api._body_limit import BodySizeLimitMiddleware
from companion.api._dependencies import dependency_checks
from companion.api._problems import install_error_handlers
from companion.api._state import AppState
from companion.config import Settings, load_settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for `settings` (loaded from the environment when omitted)."""
    settings = settings if settings is not None else load_settings()
    state = AppState(settings=settings, dependency_checks=dependency_checks(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        yield

    app = FastAPI(
        title="Companion BaaS",
        version=__version__,
        summary="Sandboxed code execution, typed tools and knowledge search for AI agents.",
        lifespan=lifespan,
    )
    app.state.companion = state
    install_error_handlers(app)
    app.include_router(_health.router)
    # Pure ASGI middleware only: BaseHTTPMiddleware costs ~1 ms a request here.
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
