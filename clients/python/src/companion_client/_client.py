"""`Client`: every capability of the HTTP API from synchronous Python.

Each method builds its request with `companion_client._calls` (shared with `AsyncClient`) and sends
it through `_call`, the one place where this client waits: retries (see `_retry`), errors from
problem documents, and transport errors as the client's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx

from companion_client import _calls as calls
from companion_client._defaults import DEFAULT_TIMEOUT_S, client_headers, with_stream_headers
from companion_client._errors import (
    IncompleteStream,
    error_from_response,
    stream_error,
    transport_error,
)
from companion_client._execution import EventDecoder, Execution, Files, StreamEvent, stream_event
from companion_client._knowledge import (
    Collection,
    Document,
    DocumentPage,
    SearchResult,
    UploadResult,
)
from companion_client._observability import Alerts, CacheStats
from companion_client._retry import Attempts, RetryPolicy
from companion_client._sessions import Session, create_session, list_sessions
from companion_client._tools import Tool, ToolResult

__all__ = ["Client"]

T = TypeVar("T")


class Client:
    """`with Client("http://127.0.0.1:8000", api_key) as client: client.run("print(1)")`.

    `retry` says how refused calls (429, 503) and broken connections are tried again (`NO_RETRIES`
    turns that off); `sleep` and `clock` are what it waits and measures with (tests pass fakes);
    `transport` goes to httpx as it is (an `httpx.HTTPTransport` with a proxy or client
    certificates, say). Errors are the client's own (`companion_client.APIError` and its leaves,
    `TransportError`).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers=client_headers(api_key, headers),
            timeout=timeout_s,
            transport=transport,
        )
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock

    # The I/O: the only methods that differ from `AsyncClient`'s.

    def _respond(self, call: calls.Call[Any], *, stream: bool = False) -> httpx.Response:
        """Send `call`, trying again as the retry policy says; a successful response (to be
        closed by the caller when streamed), or the error of the last try."""
        attempts = Attempts(self._retry, idempotent=call.idempotent, clock=self._clock)
        while True:
            try:
                response = self._http.send(call.build(self._http), stream=stream)
                if response.status_code < 400:
                    return response
                response.read()
            except httpx.TransportError as exc:
                delay = attempts.after_error(exc)
                if delay is None:
                    raise transport_error(exc) from exc
            else:
                response.close()
                delay = attempts.after_response(response)
                if delay is None:
                    raise error_from_response(response)
            self._sleep(delay)

    def _call(self, call: calls.Call[T]) -> T:
        """Send `call`; its parsed answer."""
        return call.parse(self._respond(call))

    def _stream(self, call: calls.Call[Any]) -> Generator[StreamEvent, None, None]:
        """The events of a streamed run, `done` last; leaving the loop early closes the stream,
        which ends the run."""
        response = self._respond(with_stream_headers(call), stream=True)
        decoder = EventDecoder()
        try:
            for line in response.iter_lines():
                event = decoder.feed(line)
                if event is not None:
                    yield stream_event(*event)
                    if event[0] == "done":
                        return
            last = decoder.end()
            if last is not None:
                yield stream_event(*last)
                if last[0] == "done":
                    return
        except httpx.TransportError as exc:
            raise stream_error(exc) from exc
        finally:
            response.close()
        raise IncompleteStream("the stream ended before the run's result")

    # Any route.

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One call to any route; its decoded JSON (None when empty), or the matching error."""
        return self._call(
            calls.raw_request(
                method, path, params=params, json=json, content=content, headers=headers
            )
        )

    # Health.

    def live(self) -> dict[str, Any]:
        """`GET /livez`: the process answers (no key needed)."""
        return self._call(calls.live())

    def ready(self) -> dict[str, Any]:
        """`GET /readyz`: each check's outcome (`ServiceUnavailable` when a critical one fails)."""
        return self._call(calls.ready())

    # Code execution.

    def execute(self, language: str, code: str, **fields: Any) -> dict[str, Any]:
        """`POST /v1/execute`: the result's JSON as received (`fields`: `stdin`, `limits`...)."""
        return self._call(calls.execute({"language": language, "code": code, **fields}))

    def run(
        self, code: str, language: str = "python", *, files: Files | None = None, **fields: Any
    ) -> Execution:
        """`POST /v1/execute` with input `files` ({name: bytes or text}, or `InputFile`s); the
        typed result, its rich results and returned files decoded."""
        return self._call(calls.run(calls.run_body(language, code, files, fields)))

    def run_stream(
        self, code: str, language: str = "python", *, files: Files | None = None, **fields: Any
    ) -> Generator[StreamEvent, None, None]:
        """`run`, streamed: output and results as the run produces them, then a `done` event
        with the whole `Execution`. Leaving the loop early closes the stream and ends the run."""
        return self._stream(calls.run(calls.run_body(language, code, files, fields)))

    def runtimes(self) -> dict[str, Any]:
        """`GET /v1/runtimes`: languages, versions, limits and isolation layers."""
        return self._call(calls.runtimes())

    # Sessions.

    def create_session(
        self,
        language: str = "python",
        *,
        limits: Mapping[str, int] | None = None,
        idle_timeout_s: float | None = None,
    ) -> Session:
        """`POST /v1/sessions`: an interpreter that keeps its state between `Session.run`s.
        `limits` may lower the service's (`memory_bytes` holds for the session's life, the
        others are each cell's defaults); `with` ends the session on leaving the block."""
        return Session(self, self._call(create_session(language, limits, idle_timeout_s)))

    def session(self, session_id: str) -> Session:
        """A handle on an existing session of the caller's (`SessionNotFound` if none)."""
        return Session.attach(self, session_id)

    def sessions(self) -> list[dict[str, Any]]:
        """`GET /v1/sessions`: the info of the caller's open sessions, oldest first."""
        return self._call(list_sessions())

    # Tools.

    def list_tools(self, category: str | None = None) -> list[Tool]:
        """`GET /v1/tools`: the tools this key may call (of one `category` if given)."""
        return self._call(calls.list_tools(category))

    def get_tool(self, name: str) -> Tool:
        """`GET /v1/tools/{name}` (`ToolNotFound` when missing or disabled)."""
        return self._call(calls.get_tool(name))

    def invoke_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> ToolResult:
        """`POST /v1/tools/{name}/invoke`. A tool's own failure is a result with `ok` false;
        bad arguments are `ValidationFailed` naming each field; `timeout_s` lowers the tool's."""
        return self._call(calls.invoke_tool(name, arguments, timeout_s))

    def invoke_tools(
        self,
        tool_calls: calls.ToolCalls,
        *,
        max_concurrency: int | None = None,
        timeout_s: float | None = None,
    ) -> list[ToolResult]:
        """`POST /v1/tools/batch`: the calls (`ToolCall`s or `(name, arguments)` pairs) run in
        parallel; each has its own result or error, in the order sent."""
        return self._call(calls.invoke_tools(tool_calls, max_concurrency, timeout_s))

    def export_tools(
        self,
        format: calls.ExportFormat,
        *,
        api: Literal["chat", "responses"] | None = None,
        category: str | None = None,
    ) -> list[dict[str, Any]]:
        """The tools as another API's definitions: `openai` (strict function tools; `api`:
        Chat Completions, the default, or Responses), `anthropic`, or `mcp`."""
        return self._call(calls.export_tools(format, api, category))

    # Collections and documents.

    def list_collections(self) -> list[Collection]:
        """`GET /v1/collections`: the tenant's collections, by name."""
        return self._call(calls.list_collections())

    def create_collection(self, name: str, *, description: str = "") -> Collection:
        """`POST /v1/collections` (`CollectionExists` when the name is taken)."""
        return self._call(calls.create_collection(name, description))

    def ensure_collection(self, name: str, *, description: str = "") -> Collection:
        """`PUT /v1/collections/{name}`: the collection, made now if missing (`created`); an
        existing one keeps its description."""
        return self._call(calls.ensure_collection(name, description))

    def get_collection(self, name: str) -> Collection:
        """`GET /v1/collections/{name}`, with counts and the embedding queue's progress."""
        return self._call(calls.get_collection(name))

    def delete_collection(self, name: str) -> None:
        """`DELETE /v1/collections/{name}` with all its documents."""
        self._call(calls.delete_collection(name))

    def add_documents(self, collection: str, documents: calls.Documents) -> list[str]:
        """`POST /v1/collections/{c}/documents`: `DocumentInput`s (or their JSON), written in
        one transaction; their ids in order (a document with an existing id replaces it)."""
        return self._call(calls.add_documents(collection, documents))

    def list_documents(
        self, collection: str, *, limit: int = 100, after: str | None = None
    ) -> DocumentPage:
        """One page of documents by id; pass its `next_after` as `after` for the next."""
        return self._call(calls.list_documents(collection, limit, after))

    def iter_documents(
        self, collection: str, *, page_size: int = 100
    ) -> Generator[Document, None, None]:
        """Every document of the collection, fetched a page at a time."""
        after: str | None = None
        while True:
            page = self.list_documents(collection, limit=page_size, after=after)
            yield from page.documents
            if page.next_after is None:
                return
            after = page.next_after

    def get_document(self, collection: str, document_id: str) -> Document:
        """`GET /v1/collections/{c}/documents/{id}` (`DocumentNotFound` if none)."""
        return self._call(calls.get_document(collection, document_id))

    def delete_document(self, collection: str, document_id: str) -> None:
        """`DELETE /v1/collections/{c}/documents/{id}` with its chunks."""
        self._call(calls.delete_document(collection, document_id))

    def upload_files(
        self,
        collection: str,
        files: calls.Uploads,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> UploadResult:
        """`POST /v1/collections/{c}/files`: files ({name: bytes}, or local paths and
        `InputFile`s) parsed, chunked and indexed by the service; each file's report."""
        return self._call(calls.upload_files(collection, files, metadata))

    def search(
        self,
        collection: str,
        query: str,
        *,
        mode: calls.SearchMode = "bm25",
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        with_snippets: bool = True,
    ) -> SearchResult:
        """`POST /v1/collections/{c}/search`: hits best first, with page and headings to cite;
        `filter` on metadata as docs/knowledge.md describes."""
        return self._call(
            calls.search(
                collection, query, mode=mode, k=k, filter=filter, with_snippets=with_snippets
            )
        )

    # Cache, monitoring and profiling.

    def cache_stats(self) -> CacheStats:
        """`GET /v1/cache/stats` (admin): counters per tier, and the hottest keys."""
        return self._call(calls.cache_stats())

    def invalidate(
        self,
        *,
        key: str | None = None,
        pattern: str | None = None,
        tags: Iterable[str] | None = None,
    ) -> int:
        """`POST /v1/cache/invalidate`: drop the tenant's entries by one `key`, a glob
        `pattern` or `tags` (exactly one); how many went."""
        return self._call(calls.invalidate(key, pattern, tags))

    def monitoring_report(self) -> dict[str, Any]:
        """`GET /v1/monitoring/report` (admin): endpoints, caches, errors, system, alerts."""
        return self._call(calls.monitoring_report())

    def alerts(self) -> Alerts:
        """`GET /v1/alerts` (admin): firing alerts and recent history."""
        return self._call(calls.alerts())

    def profiling_report(self, *, sort_by: str = "total_s", limit: int = 50) -> dict[str, Any]:
        """`GET /v1/profiling/report` (admin): per-name timings, sorted by a column."""
        report: dict[str, Any] = self._call(calls.profiling_report(sort_by, limit, "json"))
        return report

    def profiling_report_text(self, *, sort_by: str = "total_s", limit: int = 50) -> str:
        """The same report as a text table."""
        report: str = self._call(calls.profiling_report(sort_by, limit, "text"))
        return report

    def get_trace(
        self, trace_id: str, *, format: Literal["text", "html", "speedscope"] = "text"
    ) -> str:
        """`GET /v1/profiling/traces/{id}` (admin): a deep trace's call tree (the id comes in
        `X-Companion-Trace-Id`) as text, an HTML page or speedscope JSON."""
        return self._call(calls.get_trace(trace_id, format))

    # The connection pool.

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
