"""What the app holds for its lifetime, built from the settings in `create_app`."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from companion.api._dependencies import DependencyCheck
from companion.config import Settings
from companion.execution import Executor, SandboxUnavailable

__all__ = ["AppState", "app_state"]


@dataclass
class AppState:
    """The subsystems and checks wired for this app instance."""

    settings: Settings
    dependency_checks: dict[str, DependencyCheck] = field(default_factory=dict)
    executor: Executor | None = None
    executor_problem: str | None = None

    def require_executor(self) -> Executor:
        """The running executor, or `SandboxUnavailable` saying why there is none."""
        if self.executor is None:
            reason = (
                self.executor_problem or "code execution is disabled (COMPANION_EXECUTION_ENABLED)"
            )
            raise SandboxUnavailable(reason)
        return self.executor


def app_state(request: Request) -> AppState:
    """The `AppState` of the app serving `request`."""
    state: AppState = request.app.state.companion
    return state
