"""Every request of the HTTP API as a plain value: what to send, and how to read the answer.

Both clients build their calls here and differ only in how they send them (httpx's own sync and
async clients duplicate this logic; ours keeps it once). A `Call` knows its method, path, query,
body and parser, and whether sending it twice is safe (`idempotent`), which the retry rules read.
"""

from __future__ import annotations

import json as jsonlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx

from companion_client._execution import Execution, Files, InputFile, input_files
from companion_client._knowledge import (
    Collection,
    Document,
    DocumentInput,
    DocumentPage,
    SearchResult,
    UploadResult,
    document_json,
)
from companion_client._observability import Alerts, CacheStats
from companion_client._retry import IDEMPOTENT_METHODS
from companion_client._tools import Tool, ToolCall, ToolResult, tool_call_json

__all__ = [
    "Call",
    "Documents",
    "ExportFormat",
    "SearchMode",
    "ToolCalls",
    "Uploads",
    "add_documents",
    "alerts",
    "cache_stats",
    "create_collection",
    "delete_collection",
    "delete_document",
    "ensure_collection",
    "execute",
    "export_tools",
    "get_collection",
    "get_document",
    "get_tool",
    "get_trace",
    "invalidate",
    "invoke_tool",
    "invoke_tools",
    "list_collections",
    "list_documents",
    "list_tools",
    "live",
    "monitoring_report",
    "profiling_report",
    "raw_request",
    "read_json",
    "read_nothing",
    "ready",
    "run",
    "run_body",
    "runtimes",
    "search",
    "segment",
    "upload_files",
]

T = TypeVar("T")
ExportFormat = Literal["openai", "anthropic", "mcp"]
SearchMode = Literal["bm25", "vector", "hybrid"]
ToolCalls = Iterable[ToolCall | tuple[str, Mapping[str, Any]] | Mapping[str, Any]]
Documents = Iterable[DocumentInput | Mapping[str, Any]]
# What `upload_files` takes: {name: bytes}, or local paths and `InputFile`s.
Uploads = Mapping[str, bytes] | Iterable[str | os.PathLike[str] | InputFile]
_COLLECTIONS = "/v1/collections"
_TOOLS = "/v1/tools"


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and the parser of its successful answer. `repeatable` marks a POST that may be
    sent twice with the effect of once (a search, a cache invalidation): after a broken
    connection it is tried again, as a GET is."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    data: Mapping[str, str] | None = None
    headers: Mapping[str, str] | None = None
    repeatable: bool = False

    @property
    def idempotent(self) -> bool:
        """Whether the call may be sent again when a connection broke after it left."""
        return self.repeatable or self.method in IDEMPOTENT_METHODS

    def build(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """The request on `http`'s base URL and headers (a fresh one for every try)."""
        return http.build_request(
            self.method,
            self.path,
            params=_query(self.params),
            json=self.json,
            content=self.content,
            files=self.files,
            data=self.data,
            headers=self.headers,
        )


def _query(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The query without its unset parameters."""
    if not params:
        return None
    return {name: value for name, value in params.items() if value is not None} or None


def segment(value: str) -> str:
    """`value` as one path segment (a `/` in a name or an id is escaped, not a new segment)."""
    return quote(value, safe="")


def read_json(response: httpx.Response) -> Any:
    """The decoded JSON body, or None for an empty one."""
    return response.json() if response.content else None


def read_nothing(response: httpx.Response) -> None:
    """For calls answered `204 No Content`."""


def raw_request(
    method: str,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Call[Any]:
    """Any route, its JSON answer decoded (for what the client does not name)."""
    return Call(method.upper(), path, read_json, params, json, content, headers=headers)


# Execution.


def run_body(language: str, code: str, files: Files | None, fields: Mapping[str, Any]) -> Any:
    """The JSON of `POST /v1/execute`: `fields` are its other members (`stdin`, `limits`...)."""
    body = {"language": language, "code": code, **fields}
    if files:
        body["files"] = input_files(files)
    return body


def execute(body: Mapping[str, Any]) -> Call[dict[str, Any]]:
    """`POST /v1/execute`, its JSON as received."""
    return Call("POST", "/v1/execute", read_json, json=dict(body))


def run(body: Mapping[str, Any]) -> Call[Execution]:
    """`POST /v1/execute`, decoded."""
    return Call("POST", "/v1/execute", lambda r: Execution.from_json(r.json()), json=dict(body))


def runtimes() -> Call[dict[str, Any]]:
    """`GET /v1/runtimes`."""
    return Call("GET", "/v1/runtimes", read_json)


# Health.


def live() -> Call[dict[str, Any]]:
    """`GET /livez`."""
    return Call("GET", "/livez", read_json)


def ready() -> Call[dict[str, Any]]:
    """`GET /readyz` (503 `ServiceUnavailable` when a critical check fails)."""
    return Call("GET", "/readyz", read_json)


# Tools.


def list_tools(category: str | None) -> Call[list[Tool]]:
    """`GET /v1/tools`."""
    return Call(
        "GET",
        _TOOLS,
        lambda r: [Tool.from_json(item) for item in r.json()],
        params={"category": category},
    )


def export_tools(
    format: ExportFormat, api: Literal["chat", "responses"] | None, category: str | None
) -> Call[list[dict[str, Any]]]:
    """`GET /v1/tools?format=...`: the tools as OpenAI, Anthropic or MCP tool definitions."""
    params = {"format": format, "api": api, "category": category}
    return Call("GET", _TOOLS, read_json, params=params)


def get_tool(name: str) -> Call[Tool]:
    """`GET /v1/tools/{name}`."""
    return Call("GET", f"{_TOOLS}/{segment(name)}", lambda r: Tool.from_json(r.json()))


def invoke_tool(
    name: str, arguments: Mapping[str, Any] | None, timeout_s: float | None
) -> Call[ToolResult]:
    """`POST /v1/tools/{name}/invoke`."""
    body: dict[str, Any] = {"arguments": dict(arguments or {})}
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    return Call(
        "POST",
        f"{_TOOLS}/{segment(name)}/invoke",
        lambda r: ToolResult.from_json(r.json()),
        json=body,
    )


def invoke_tools(
    calls: ToolCalls, max_concurrency: int | None, timeout_s: float | None
) -> Call[list[ToolResult]]:
    """`POST /v1/tools/batch`: every call's own result, in the order sent."""
    body: dict[str, Any] = {"calls": [tool_call_json(call) for call in calls]}
    if max_concurrency is not None:
        body["max_concurrency"] = max_concurrency
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    return Call(
        "POST",
        f"{_TOOLS}/batch",
        lambda r: [ToolResult.from_json(item) for item in r.json()["results"]],
        json=body,
    )


# Collections and documents.


def _collection(name: str) -> str:
    return f"{_COLLECTIONS}/{segment(name)}"


def list_collections() -> Call[list[Collection]]:
    """`GET /v1/collections`."""
    return Call(
        "GET",
        _COLLECTIONS,
        lambda r: [Collection.from_json(item) for item in r.json()["collections"]],
    )


def create_collection(name: str, description: str) -> Call[Collection]:
    """`POST /v1/collections` (409 `CollectionExists` when the name is taken)."""
    body = {"name": name, "description": description}
    return Call("POST", _COLLECTIONS, lambda r: Collection.from_json(r.json()), json=body)


def ensure_collection(name: str, description: str) -> Call[Collection]:
    """`PUT /v1/collections/{name}`: made if missing (201), else left as it is (200)."""
    return Call(
        "PUT",
        _collection(name),
        lambda r: Collection.from_json(r.json(), created=r.status_code == 201),
        json={"description": description},
    )


def get_collection(name: str) -> Call[Collection]:
    """`GET /v1/collections/{name}`, with the embedding queue's progress."""
    return Call("GET", _collection(name), lambda r: Collection.from_json(r.json()))


def delete_collection(name: str) -> Call[None]:
    """`DELETE /v1/collections/{name}` and all its documents."""
    return Call("DELETE", _collection(name), read_nothing)


def add_documents(collection: str, documents: Documents) -> Call[list[str]]:
    """`POST /v1/collections/{c}/documents`: all written in one transaction, or none."""
    body = {"documents": [document_json(document) for document in documents]}
    return Call(
        "POST",
        f"{_collection(collection)}/documents",
        lambda r: [str(item) for item in r.json()["ids"]],
        json=body,
    )


def list_documents(collection: str, limit: int, after: str | None) -> Call[DocumentPage]:
    """`GET /v1/collections/{c}/documents`: one page, by id."""
    return Call(
        "GET",
        f"{_collection(collection)}/documents",
        lambda r: DocumentPage.from_json(r.json()),
        params={"limit": limit, "after": after},
    )


def _document(collection: str, document_id: str) -> str:
    return f"{_collection(collection)}/documents/{segment(document_id)}"


def get_document(collection: str, document_id: str) -> Call[Document]:
    """`GET /v1/collections/{c}/documents/{id}`."""
    return Call("GET", _document(collection, document_id), lambda r: Document.from_json(r.json()))


def delete_document(collection: str, document_id: str) -> Call[None]:
    """`DELETE /v1/collections/{c}/documents/{id}` and its chunks."""
    return Call("DELETE", _document(collection, document_id), read_nothing)


def _upload_parts(files: Uploads) -> list[tuple[str, tuple[str, bytes, str]]]:
    """One multipart part named `files` per file; the service tells formats apart itself."""
    if isinstance(files, Mapping):
        named = list(files.items())
    else:
        named = []
        for item in files:
            file = item if isinstance(item, InputFile) else InputFile.from_path(item)
            named.append((file.name, file.data))
    return [("files", (name, data, "application/octet-stream")) for name, data in named]


def upload_files(
    collection: str, files: Uploads, metadata: Mapping[str, Any] | None
) -> Call[UploadResult]:
    """`POST /v1/collections/{c}/files`: parsed, chunked and indexed by the service; `metadata`
    is added to every document."""
    return Call(
        "POST",
        f"{_collection(collection)}/files",
        lambda r: UploadResult.from_json(r.json()),
        files=_upload_parts(files),
        data={"metadata": jsonlib.dumps(dict(metadata))} if metadata else None,
    )


def search(
    collection: str,
    query: str,
    *,
    mode: SearchMode,
    k: int,
    filter: Mapping[str, Any] | None,
    with_snippets: bool,
) -> Call[SearchResult]:
    """`POST /v1/collections/{c}/search` (a read: safe to send again)."""
    body: dict[str, Any] = {"query": query, "mode": mode, "k": k, "with_snippets": with_snippets}
    if filter is not None:
        body["filter"] = dict(filter)
    return Call(
        "POST",
        f"{_collection(collection)}/search",
        lambda r: SearchResult.from_json(r.json()),
        json=body,
        repeatable=True,
    )


# Cache, monitoring and profiling.


def cache_stats() -> Call[CacheStats]:
    """`GET /v1/cache/stats` (admin)."""
    return Call("GET", "/v1/cache/stats", lambda r: CacheStats.from_json(r.json()))


def invalidate(key: str | None, pattern: str | None, tags: Iterable[str] | None) -> Call[int]:
    """`POST /v1/cache/invalidate`: exactly one of `key`, `pattern` or `tags` (the service says
    so with a 422 otherwise); how many entries went. Removing twice is harmless."""
    body: dict[str, Any] = {}
    if key is not None:
        body["key"] = key
    if pattern is not None:
        body["pattern"] = pattern
    if tags is not None:
        body["tags"] = list(tags)
    return Call(
        "POST",
        "/v1/cache/invalidate",
        lambda r: int(r.json()["removed"]),
        json=body,
        repeatable=True,
    )


def monitoring_report() -> Call[dict[str, Any]]:
    """`GET /v1/monitoring/report` (admin)."""
    return Call("GET", "/v1/monitoring/report", read_json)


def alerts() -> Call[Alerts]:
    """`GET /v1/alerts` (admin)."""
    return Call("GET", "/v1/alerts", lambda r: Alerts.from_json(r.json()))


def profiling_report(sort_by: str, limit: int, format: Literal["json", "text"]) -> Call[Any]:
    """`GET /v1/profiling/report` (admin): JSON, or the text table as a string."""
    parse: Callable[[httpx.Response], Any] = read_json if format == "json" else _text
    params = {"sort_by": sort_by, "limit": limit, "format": format}
    return Call("GET", "/v1/profiling/report", parse, params=params)


def get_trace(trace_id: str, format: Literal["text", "html", "speedscope"]) -> Call[str]:
    """`GET /v1/profiling/traces/{id}` (admin): the call tree as text, HTML or speedscope JSON."""
    return Call(
        "GET",
        f"/v1/profiling/traces/{segment(trace_id)}",
        _text,
        params={"format": format},
    )


def _text(response: httpx.Response) -> str:
    return response.text
