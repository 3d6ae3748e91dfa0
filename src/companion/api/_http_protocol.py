"""The HTTP/1.1 protocol `companion serve` runs: uvicorn's httptools one, with a bound on request heads.

httptools (llhttp) puts no limit on a request line and its headers, and uvicorn adds none: a 64 MiB
header was read whole (5 s of CPU and 65 MB here) and answered 200. h11 has a limit
(`h11_max_incomplete_event_size`) but served a third fewer requests a second here than httptools.
So this subclass counts the bytes of a head that is still incomplete after a read and answers 431
once they pass the limit: a head costs at most the limit plus one read (256 KiB). A head that
arrives whole, in one read, reaches the app, whose own check answers it (`HeaderSizeLimitMiddleware`).

The limit travels in uvicorn's `h11_max_incomplete_event_size`, so h11 (chosen when httptools is
missing) enforces the same number.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from companion.api._app import HeadersTooLarge
from companion.api._problems import PROBLEM_MEDIA_TYPE, problem_body
from companion.config import setting_default

__all__ = ["HeadLimitedHttpToolsProtocol"]

_log = logging.getLogger("companion.api")
# `companion serve` passes the setting; this is the limit when uvicorn is started by hand.
DEFAULT_MAX_HEAD_BYTES: int = setting_default("http_max_header_bytes")


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that stops reading a request head past `h11_max_incomplete_event_size`."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEAD_BYTES
        self._in_head = True  # the next bytes belong to a request line or headers
        self._head_bytes = 0  # bytes of reads that ended inside the current head
        self._request_ended = False  # a request ended within the current read

    def data_received(self, data: bytes) -> None:
        """Parse `data`; 431 when the head still incomplete after it has grown past the limit."""
        self._request_ended = False
        super().data_received(data)
        # A read that ended one request and began the next is not counted: part of it was the
        # last request's body, and counting it all could refuse a small pipelined head.
        if not self._in_head or self._request_ended or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            self._refuse()

    def on_message_begin(self) -> None:
        """A request starts: its head is counted from here."""
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        """The head is whole: what follows is body, never counted."""
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request ended: the next bytes begin another head."""
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0
        self._request_ended = True

    def _refuse(self) -> None:
        error = HeadersTooLarge.over(self.max_head_bytes)
        # The path may be the part that is too large, and may be incomplete: not echoed.
        body = orjson.dumps(problem_body(error, ""))
        head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head += [
            b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        _log.warning("refused a request head over %d bytes from %s", self.max_head_bytes, client)
