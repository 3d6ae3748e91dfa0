"""`OtlpReceiver`: a loopback OTLP/HTTP endpoint keeping the spans posted to it, decoded.

For trying tracing out without a collector, and for the tests and the benchmark: it speaks the
protocol a collector speaks (protobuf `ExportTraceServiceRequest` posted to `/v1/traces`, gzip
or not), decodes it with `opentelemetry-proto` (part of the `telemetry` extra) and answers as a
collector does. Not a collector: it keeps everything in memory and forwards nothing.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from companion.errors import FeatureUnavailable

__all__ = ["OtlpReceiver", "ReceivedSpan"]

_TRACES_PATH = "/v1/traces"


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One exported span as a collector receives it."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str  # "SERVER", "INTERNAL", ...
    status: str  # "UNSET", "OK" or "ERROR"
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    start_ns: int
    end_ns: int

    @property
    def duration_ms(self) -> float:
        """End minus start, in milliseconds."""
        return (self.end_ns - self.start_ns) / 1e6


@dataclass
class _Store:
    decode: bool = True
    exports: int = 0
    spans: list[ReceivedSpan] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class OtlpReceiver:
    """`with OtlpReceiver() as receiver:` serves `receiver.url` until the block ends.

    `spans` holds what was received so far, in arrival order; `headers` the headers of each
    export request (lower-case names). With `decode=False` it only counts the exports it
    answers (`exports`), as a sink for load that must not fill memory or spend time decoding.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, decode: bool = True) -> None:
        self._store = _Store(decode=decode)
        self._server = ThreadingHTTPServer((host, port), _handler(self._store))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        """The traces URL to export to."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{_TRACES_PATH}"

    @property
    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far."""
        with self._store.lock:
            return list(self._store.spans)

    @property
    def exports(self) -> int:
        """Export requests answered so far."""
        with self._store.lock:
            return self._store.exports

    @property
    def headers(self) -> list[dict[str, str]]:
        """The headers of every export request received so far."""
        with self._store.lock:
            return list(self._store.headers)

    def clear(self) -> None:
        """Forget what was received."""
        with self._store.lock:
            self._store.spans.clear()
            self._store.headers.clear()
            self._store.exports = 0

    def start(self) -> OtlpReceiver:
        """Start serving (in a daemon thread)."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _handler(store: _Store) -> type[BaseHTTPRequestHandler]:
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )
    except ImportError as exc:
        raise FeatureUnavailable(
            "OtlpReceiver decodes spans with opentelemetry-proto: install the extra with "
            "`pip install 'companion[telemetry]'`."
        ) from exc

    answer = ExportTraceServiceResponse().SerializeToString()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's session expects

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != _TRACES_PATH:
                self._answer(404, b"")
                return
            if not store.decode:
                with store.lock:
                    store.exports += 1
                self._answer(200, answer)
                return
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            request = ExportTraceServiceRequest()
            try:
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request.ParseFromString(body)
            except Exception:  # a malformed export is the sender's 400, as a collector says
                self._answer(400, b"")
                return
            spans = _decode(request)
            with store.lock:
                store.exports += 1
                store.spans.extend(spans)
                store.headers.append({k.lower(): v for k, v in self.headers.items()})
            self._answer(200, answer)

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the spans are the record."""

    return Handler


def _decode(request: Any) -> list[ReceivedSpan]:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                        status=Status.StatusCode.Name(span.status.code).removeprefix(
                            "STATUS_CODE_"
                        ),
                        attributes=_attributes(span.attributes),
                        resource=resource,
                        scope=scope_spans.scope.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                    )
                )
    return spans


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)
