"""What the app holds for its lifetime: the subsystems `create_app` chose from the settings."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from prometheus_client import CollectorRegistry
from starlette.requests import Request

from companion.api._dashboard_feed import DashboardFeed
from companion.api._limits import InFlight, RateLimits
from companion.api._session_relay import SessionRelay
from companion.api._trace_ring import TraceRing
from companion.cache import TieredCache
from companion.config import Settings
from companion.errors import CompanionError, DependencyUnavailable, ServiceUnavailable
from companion.execution import Executor, SandboxUnavailable
from companion.keys import KeyRing, open_key_store
from companion.knowledge import KnowledgeBase
from companion.monitoring import Monitor, Sampler
from companion.profiling import Profiler
from companion.telemetry import NO_TELEMETRY, Telemetry
from companion.tools import ToolRegistry

__all__ = ["AppState", "State", "app_state"]

_log = logging.getLogger("companion.api")


@dataclass
class AppState:
    """The subsystems wired for this app instance; started and stopped by its lifespan."""

    settings: Settings
    registry: CollectorRegistry
    monitor: Monitor
    profiler: Profiler
    sampler: Sampler
    traces: TraceRing
    rate_limits: RateLimits
    in_flight: InFlight
    telemetry: Telemetry = NO_TELEMETRY  # OpenTelemetry tracing; off unless configured
    key_ring: KeyRing | None = None
    cache: TieredCache | None = None
    executor: Executor | None = None
    executor_problem: str | None = None
    tools: ToolRegistry | None = None
    mcp: Any = None  # companion.api._tools.McpService: started on the first /mcp request
    knowledge: KnowledgeBase | None = None
    knowledge_problem: str | None = None
    dashboard: DashboardFeed = None  # type: ignore[assignment]  # set by build_state
    session_relay: SessionRelay = None  # type: ignore[assignment]  # set by build_state

    def relay_for(self, session_id: str) -> SessionRelay | None:
        """The relay when another node may hold `session_id`; None when this node answers."""
        relay = self.session_relay
        if relay is None or not relay.owners.enabled:
            return None
        if self.executor is not None and self.executor.sessions.holds(session_id):
            return None
        return relay

    def require_executor(self) -> Executor:
        """The running executor, or `SandboxUnavailable` saying why there is none."""
        if self.executor is None:
            reason = (
                self.executor_problem or "code execution is disabled (COMPANION_EXECUTION_ENABLED)"
            )
            raise SandboxUnavailable(reason)
        return self.executor

    key_problem: str | None = None
    _keys_tried_at: float = -1e18

    async def open_keys(self, retry_interval_s: float = 0.0) -> None:
        """Open the key store; while it is unreachable, routes answer 503 and retry here."""
        now = time.monotonic()
        if now - self._keys_tried_at < retry_interval_s:
            return
        self._keys_tried_at = now
        try:
            store = await asyncio.to_thread(open_key_store, self.settings)
        except CompanionError as exc:
            self.key_problem = exc.message
            _log.error("the API key store is unavailable: %s", exc.message)
            return
        self.key_ring = KeyRing(store, cache_ttl_s=self.settings.key_cache_ttl_s)
        self.key_problem = None

    @property
    def keys(self) -> KeyRing:
        """The key ring, or `DependencyUnavailable` while its store cannot be opened."""
        if self.key_ring is None:
            raise DependencyUnavailable(self.key_problem or "the key store is not open")
        return self.key_ring

    def require_tools(self) -> ToolRegistry:
        """The tool registry (built at start-up)."""
        if self.tools is None:
            raise ServiceUnavailable("the tool registry is not started")
        return self.tools

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


async def _state_dependency(request: Request) -> AppState:
    # Async on purpose: FastAPI runs a sync dependency in the thread pool, a ~50 µs hop per use.
    return app_state(request)


State = Annotated[AppState, Depends(_state_dependency)]
"""Route parameter type giving the app's state."""
