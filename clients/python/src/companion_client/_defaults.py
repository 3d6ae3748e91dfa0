"""What both clients start from: the timeout, the headers of every request, and a streamed
call's `Accept`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from companion_client._calls import Call
from companion_client._version import __version__

__all__ = ["DEFAULT_TIMEOUT_S", "client_headers", "with_stream_headers"]

# A run may take the service's largest wall time (30 s by default) plus its queueing.
DEFAULT_TIMEOUT_S = 60.0


def client_headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    """The key as a bearer token, a `User-Agent` naming the client, then the caller's own."""
    headers = {"User-Agent": f"companion-client/{__version__}"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return {**headers, **(extra or {})}


def with_stream_headers(call: Call[Any]) -> Call[Any]:
    """`call` asking for Server-Sent Events instead of one JSON answer."""
    headers = {**(call.headers or {}), "Accept": "text/event-stream"}
    return dataclasses.replace(call, headers=headers)
