"""What the app holds for its lifetime: the subsystems `create_app` chose from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from starlette.requests import Request

from companion.cache import TieredCache
from companion.config import Settings
from companion.errors import ServiceUnavailable
from companion.execution import Executor, SandboxUnavailable
from companion.knowledge import KnowledgeBase
from companion.monitoring import Monitor, Sampler
from companion.profiling import Profiler

__all__ = ["AppState", "app_state"]


@dataclass
class AppState:
    """The subsystems wired for this app instance; started and stopped by its lifespan."""

    settings: Settings
    registry: CollectorRegistry
    monitor: Monitor
    profiler: Profiler
    sampler: Sampler
    cache: TieredCache | None = None
    executor: Executor | None = None
    executor_problem: str | None = None
    knowledge: KnowledgeBase | None = None
    knowledge_problem: str | None = None

    def require_executor(self) -> Executor:
        """The running executor, or `SandboxUnavailable` saying why there is none."""
        if self.executor is None:
            reason = (
                self.executor_problem or "code execution is disabled (COMPANION_EXECUTION_ENABLED)"
            )
            raise SandboxUnavailable(reason)
        return self.executor

    def require_knowledge(self) -> KnowledgeBase:
        """The started knowledge base, or `ServiceUnavailable` saying why there is none."""
        if self.knowledge is None:
            raise ServiceUnavailable(self.knowledge_problem or "the knowledge base is not started")
        return self.knowledge

    def require_cache(self) -> TieredCache:
        """The cache (built at start-up)."""
        if self.cache is None:
            raise ServiceUnavailable("the cache is not started")
        return self.cache


def app_state(request: Request) -> AppState:
    """The `AppState` of the app serving `request`."""
    state: AppState = request.app.state.companion
    return state
