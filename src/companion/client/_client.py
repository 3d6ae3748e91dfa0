"""`Client` and `AsyncClient`: the HTTP API from Python, with errors as `CompanionError`s."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx
import orjson

from companion.client._errors import raise_for_problem
from companion.client._execution import (
    Execution,
    Files,
    StreamEvent,
    astream_run,
    input_files,
    stream_run,
)
from companion.client._sessions import (
    AsyncSession,
    Session,
    alist_sessions,
    create_body,
    list_sessions,
)

__all__ = ["AsyncClient", "Client"]

_DEFAULT_TIMEOUT_S = 60.0


def _run_body(
    language: str, code: str, files: Files | None, fields: dict[str, Any]
) -> dict[str, Any]:
    body = {"language": language, "code": code, **fields}
    if files:
        body["files"] = input_files(files)
    return body


def _upload(files: Mapping[str, bytes], metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """httpx's multipart arguments: one `files` part per file, and `metadata` as JSON text."""
    parts = [
        ("files", (name, content, "application/octet-stream")) for name, content in files.items()
    ]
    data = {"metadata": orjson.dumps(dict(metadata)).decode()} if metadata else None
    return {"files": parts, "data": data}


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class Client:
    """`with Client("http://127.0.0.1:8000", api_key) as c: c.execute("python", "print(1)")`."""

    def __init__(
        self, base_url: str, api_key: str | None = None, *, timeout_s: float = _DEFAULT_TIMEOUT_S
    ) -> None:
        self._http = httpx.Client(base_url=base_url, headers=_headers(api_key), timeout=timeout_s)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; the decoded JSON body, or the matching `CompanionError`."""
        response = self._http.request(method, path, **kwargs)
        raise_for_problem(response)
        return response.json() if response.content else None

    def execute(self, language: str, code: str, **fields: Any) -> dict[str, Any]:
        """`POST /v1/execute`."""
        result: dict[str, Any] = self.request(
            "POST", "/v1/execute", json={"language": language, "code": code, **fields}
        )
        return result

    def run(
        self, code: str, language: str = "python", *, files: Files | None = None, **fields: Any
    ) -> Execution:
        """`POST /v1/execute` with input `files` ({name: bytes or text}, or `InputFile`s); the
        typed result, its rich results and returned files decoded."""
        raw = self.request("POST", "/v1/execute", json=_run_body(language, code, files, fields))
        return Execution.from_json(raw)

    def run_stream(
        self, code: str, language: str = "python", *, files: Files | None = None, **fields: Any
    ) -> Iterator[StreamEvent]:
        """`run`, streamed: output and results as the run produces them, then a `done` event
        with the whole `Execution`. Leaving the loop early closes the stream and ends the run."""
        yield from stream_run(self._http, "/v1/execute", _run_body(language, code, files, fields))

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
        return Session.create(self._http, create_body(language, limits, idle_timeout_s))

    def session(self, session_id: str) -> Session:
        """A handle on an existing session of the caller's (`SessionNotFound` if none)."""
        return Session.attach(self._http, session_id)

    def sessions(self) -> list[dict[str, Any]]:
        """`GET /v1/sessions`: the info of the caller's open sessions, oldest first."""
        return list_sessions(self._http)

    def upload_files(
        self,
        collection: str,
        files: Mapping[str, bytes],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`POST /v1/collections/{collection}/files`: `{name: content}` parsed, chunked and
        indexed by the service; each file's documents and problems, and the totals."""
        result: dict[str, Any] = self.request(
            "POST", f"/v1/collections/{collection}/files", **_upload(files, metadata)
        )
        return result

    def runtimes(self) -> dict[str, Any]:
        """`GET /v1/runtimes`."""
        result: dict[str, Any] = self.request("GET", "/v1/runtimes")
        return result

    def ready(self) -> dict[str, Any]:
        """`GET /readyz` (raises `ServiceUnavailable` when not ready)."""
        result: dict[str, Any] = self.request("GET", "/readyz")
        return result

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient:
    """The asynchronous twin of `Client`."""

    def __init__(
        self, base_url: str, api_key: str | None = None, *, timeout_s: float = _DEFAULT_TIMEOUT_S
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=_headers(api_key), timeout=timeout_s
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; the decoded JSON body, or the matching `CompanionError`."""
        response = await self._http.request(method, path, **kwargs)
        raise_for_problem(response)
        return response.json() if response.content else None

    async def execute(self, language: str, code: str, **fields: Any) -> dict[str, Any]:
        """`POST /v1/execute`."""
        result: dict[str, Any] = await self.request(
            "POST", "/v1/execute", json={"language": language, "code": code, **fields}
        )
        return result

    async def run(
        self, code: str, language: str = "python", *, files: Files | None = None, **fields: Any
    ) -> Execution:
        """`Client.run`, awaited."""
        body = _run_body(language, code, files, fields)
        return Execution.from_json(await self.request("POST", "/v1/execute", json=body))

    async def run_stream(
        self, code: str, language: str = "python", *, files: Files | None = None, **fields: Any
    ) -> AsyncIterator[StreamEvent]:
        """`Client.run_stream`, asynchronously."""
        body = _run_body(language, code, files, fields)
        async for event in astream_run(self._http, "/v1/execute", body):
            yield event

    async def create_session(
        self,
        language: str = "python",
        *,
        limits: Mapping[str, int] | None = None,
        idle_timeout_s: float | None = None,
    ) -> AsyncSession:
        """`Client.create_session`, awaited (`async with` ends the session)."""
        return await AsyncSession.create(self._http, create_body(language, limits, idle_timeout_s))

    async def session(self, session_id: str) -> AsyncSession:
        """`Client.session`, awaited."""
        return await AsyncSession.attach(self._http, session_id)

    async def sessions(self) -> list[dict[str, Any]]:
        """`Client.sessions`, awaited."""
        return await alist_sessions(self._http)

    async def upload_files(
        self,
        collection: str,
        files: Mapping[str, bytes],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`Client.upload_files`, asynchronously."""
        result: dict[str, Any] = await self.request(
            "POST", f"/v1/collections/{collection}/files", **_upload(files, metadata)
        )
        return result

    async def runtimes(self) -> dict[str, Any]:
        """`GET /v1/runtimes`."""
        result: dict[str, Any] = await self.request("GET", "/v1/runtimes")
        return result

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
