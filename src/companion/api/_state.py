"""What the app holds for its lifetime, built from the settings in `create_app`."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from companion.api._dependencies import DependencyCheck
from companion.config import Settings

__all__ = ["AppState", "app_state"]


@dataclass
class AppState:
    """The subsystems and checks wired for this app instance."""

    settings: Settings
    dependency_checks: dict[str, DependencyCheck] = field(default_factory=dict)


def app_state(request: Request) -> AppState:
    """The `AppState` of the app serving `request`."""
    state: AppState = request.app.state.companion
    return state
