"""The layer that sends a session's calls to the node holding it, so any node answers for any session.

Pure ASGI, below the body limits and above routing: a call to `/v1/sessions/{id}...` for a session
this node does not hold, whose owner record names another node, is handed to the relay
(`_session_relay.py`); everything else passes through. Paths with `.` or `..` segments are never
relayed (no route has them, and a URL library on the way could resolve them into another path).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from companion.api._session_relay import FORWARDED_BY, SessionRelay

__all__ = ["SessionForwardingMiddleware"]

_SESSION_PATH = re.compile(r"^/v1/sessions/([A-Za-z0-9_-]{1,64})(?:/.*)?$")


class SessionForwardingMiddleware:
    """Relays calls for sessions held by another node; passes everything else through."""

    def __init__(self, app: ASGIApp, *, relay_for: Callable[[str], SessionRelay | None]) -> None:
        self.app = app
        # A lookup, not the relay: the app's state decides per session (held here or not).
        self._relay_for = relay_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Relay or pass through one request."""
        if scope["type"] == "http":
            path: str = scope["path"]
            match = _SESSION_PATH.match(path)
            if (
                match is not None
                and all(k != FORWARDED_BY for k, _ in scope["headers"])
                and not {".", ".."} & set(path.split("/"))
            ):
                session_id = match.group(1)
                relay = self._relay_for(session_id)
                if relay is not None:
                    owner = await relay.owners.owner(session_id)
                    if owner is not None:
                        await relay.relay(owner, session_id, scope, receive, send)
                        return
        await self.app(scope, receive, send)
