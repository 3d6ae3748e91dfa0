"""What the tracing tests share: a real service on uvicorn exporting to a real OTLP/HTTP receiver."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from companion.api import create_app
from companion.config import load_settings
from companion.telemetry import OtlpReceiver, ReceivedSpan, Telemetry
from tests.tools._served import serve

__all__ = ["Traced", "new_traceparent", "traced_service"]


@dataclass
class Traced:
    """A running service, its base URL and the receiver its spans go to."""

    url: str
    app: FastAPI
    receiver: OtlpReceiver

    @property
    def telemetry(self) -> Telemetry:
        """The service's own telemetry (to flush it)."""
        telemetry: Telemetry = self.app.state.companion.telemetry
        return telemetry

    def key(self, *scopes: str, tenant: str = "default") -> str:
        """A fresh API key of `tenant` with `scopes` (admin when none are given)."""
        _, token = self.app.state.companion.keys.create(tenant, list(scopes) or ["admin"])
        return str(token)

    def trace(self, trace_id: str, *, server_spans: int = 1) -> list[ReceivedSpan]:
        """The spans of `trace_id` once its `server_spans` request spans have been exported.

        A request's span ends just after its response is written, so the client may hold the
        answer a moment before the span has ended: flush, then look again until it is there.
        """
        deadline = time.monotonic() + 10
        while True:
            self.telemetry.force_flush()  # exports every ended span, blocking
            spans = [span for span in self.receiver.spans if span.trace_id == trace_id]
            if sum(span.kind == "SERVER" for span in spans) >= server_spans:
                return spans
            assert time.monotonic() < deadline, f"no request span of trace {trace_id}: {spans}"
            threading.Event().wait(0.005)  # real-time: the request span ends after its response


def new_traceparent(sampled: bool = True) -> tuple[str, str, str]:
    """A W3C `traceparent` header value of a new trace: (header, trace id, parent span id)."""
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{parent_id}-{'01' if sampled else '00'}", trace_id, parent_id


@contextlib.contextmanager
def traced_service(**settings: Any) -> Iterator[Traced]:
    """The service with tracing on, served by uvicorn on loopback, exporting to a receiver."""
    with OtlpReceiver() as receiver:
        app = create_app(load_settings(telemetry_otlp_endpoint=receiver.url, **settings))
        with serve(app) as url:
            yield Traced(url, app, receiver)
