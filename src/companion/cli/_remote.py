"""Remote mode: `--url` sends a command to a running service through `companion_client`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from companion_client import Client

__all__ = ["ApiKeyOption", "UrlOption", "connect", "remote_call"]

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


def connect(
    url: str,
    api_key: str | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Client:
    """The client of every remote command (close it, or use it in `with`). It waits out a 429 or
    a 503 as the service says, but tries no failed connection again: a command whose service is
    down says so at once, where the client's default retries would take about 3 s. `sleep` and
    `clock` are the client's (tests pass fakes)."""
    from companion_client import Client, RetryPolicy

    retry = RetryPolicy(transport_errors=False)
    return Client(url, api_key, retry=retry, sleep=sleep, clock=clock)


def remote_call(url: str, api_key: str | None, method: str, path: str, body: Any = None) -> Any:
    """One request to the service; its errors arrive as the client's (`companion_client.APIError`,
    `TransportError`), printed by `main`."""
    with connect(url, api_key) as client:
        return client.request(method, path, json=body)
