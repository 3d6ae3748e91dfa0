"""Pure-ASGI request body limits, enforced before any work starts: size (413) and JSON depth (400).

The size is checked against `Content-Length` before reading and counted while streaming. JSON bodies
are scanned for nesting depth as they stream in (only structural characters are visited), so a
`[[[[...]]]]` bomb is refused before a parser recurses into it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from companion.api._problems import problem_response
from companion.errors import InvalidInput, PayloadTooLarge

__all__ = ["BodySizeLimitMiddleware", "JsonDepthScanner"]

_STRUCTURAL = re.compile(rb'[\[\]{}"\\]')


@dataclass
class JsonDepthScanner:
    """Incremental nesting-depth check over JSON arriving in chunks."""

    max_depth: int
    depth: int = 0
    in_string: bool = False
    skip_at: int = -1  # offset of a character escaped by a backslash
    offset: int = 0

    def feed(self, chunk: bytes, *, last: bool = False) -> None:
        """Scan one chunk; `InvalidInput` as soon as the nesting passes `max_depth`."""
        if last and self.depth + chunk.count(b"[") + chunk.count(b"{") <= self.max_depth:
            # Even if every opener nested, the last chunk could not pass the limit; counting
            # in C skips the per-character scan for the usual one-chunk body.
            self.offset += len(chunk)
            return
        base = self.offset
        for match in _STRUCTURAL.finditer(chunk):
            position = base + match.start()
            if position == self.skip_at:
                continue
            char = match.group()
            if self.in_string:
                if char == b"\\":
                    self.skip_at = position + 1
                elif char == b'"':
                    self.in_string = False
            elif char == b'"':
                self.in_string = True
            elif char in b"[{":
                self.depth += 1
                if self.depth > self.max_depth:
                    raise InvalidInput(
                        f"The JSON body is nested deeper than {self.max_depth} levels.",
                        details={"max_json_depth": self.max_depth},
                    )
            elif char in b"]}":
                self.depth -= 1
        self.offset += len(chunk)


class BodySizeLimitMiddleware:
    """Reject bodies over `max_body_bytes` and JSON nested deeper than `max_json_depth`."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_json_depth: int,
        path_limits: Sequence[tuple[re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        # Routes whose bodies may be larger (files in): the first pattern matching the whole
        # path gives the limit.
        self.path_limits = list(path_limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count (and for JSON, scan) streamed bytes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = next(
            (size for pattern, size in self.path_limits if pattern.fullmatch(path)),
            self.max_body_bytes,
        )
        scanner: JsonDepthScanner | None = None
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                response = problem_response(self._too_large(limit), scope)
                await response(scope, receive, send)
                return
            if name == b"content-type" and b"json" in value:
                scanner = JsonDepthScanner(self.max_json_depth)
        received = 0

        async def checked_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                # Raised inside the endpoint's body read, so the app's handler renders them.
                if received > limit:
                    raise self._too_large(limit)
                if scanner is not None:
                    scanner.feed(body, last=not message.get("more_body", False))
            return message

        await self.app(scope, checked_receive, send)

    def _too_large(self, limit: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The request body exceeds the limit of {limit} bytes.",
            details={"max_body_bytes": limit},
        )
