"""Remote mode: `--url` sends a command to a running service through `companion.client`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

__all__ = ["ApiKeyOption", "UrlOption", "remote_call"]

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", help="Run against this service (e.g. http://127.0.0.1:8000) instead of locally."
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="COMPANION_API_KEY",
        show_envvar=True,
        help="The key for --url (from the environment, so it stays out of shell history).",
    ),
]


def remote_call(url: str, api_key: str | None, method: str, path: str, body: Any = None) -> Any:
    """One request to the service; its errors arrive as `CompanionError`s, printed by `main`."""
    from companion.client import Client

    with Client(url, api_key) as client:
        return client.request(method, path, json=body)
