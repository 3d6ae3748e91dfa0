"""Pure-ASGI request body size limit: 413 before reading a declared-too-large body, or mid-stream."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from companion.api._problems import problem_response
from companion.errors import PayloadTooLarge

__all__ = ["BodySizeLimitMiddleware"]


class BodySizeLimitMiddleware:
    """Reject bodies over `max_body_bytes`, whether declared by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count streamed bytes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    response = problem_response(self._error(), scope["path"])
                    await response(scope, receive, send)
                    return
                break
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the endpoint's body read, so the app's handler renders the 413.
                    raise self._error()
            return message

        await self.app(scope, counting_receive, send)

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The request body exceeds the limit of {self.max_body_bytes} bytes.",
            details={"max_body_bytes": self.max_body_bytes},
        )
