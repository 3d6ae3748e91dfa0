"""`Client` and `AsyncClient`: the HTTP API from Python, with errors as `CompanionError`s."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx

from companion.client._errors import raise_for_problem
from companion.client._execution import (
    Execution,
    InputFile,
    StreamEvent,
    input_files,
    server_sent_events,
    stream_event,
)
from companion.errors import CompanionError

__all__ = ["AsyncClient", "Client"]

_DEFAULT_TIMEOUT_S = 60.0
_EVENTS = {"Accept": "text/event-stream"}
Files = Mapping[str, bytes | str] | Iterable[InputFile | Mapping[str, str]]


def _run_body(
    language: str, code: str, files: Files | None, fields: dict[str, Any]
) -> dict[str, Any]:
    body = {"language": language, "code": code, **fields}
    if files:
        body["files"] = input_files(files)
    return body


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
        body = _run_body(language, code, files, fields)
        with self._http.stream("POST", "/v1/execute", json=body, headers=_EVENTS) as response:
            if response.status_code >= 400:
                response.read()
                raise_for_problem(response)
            for name, data in server_sent_events(response.iter_lines()):
                yield stream_event(name, data)
                if name == "done":
                    return
        raise CompanionError("the stream ended before the run's result")

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
        async with self._http.stream("POST", "/v1/execute", json=body, headers=_EVENTS) as response:
            if response.status_code >= 400:
                await response.aread()
                raise_for_problem(response)
            pending: list[str] = []  # one event's lines: the parser is the sync one's
            async for line in response.aiter_lines():
                pending.append(line)
                if not line:
                    for name, data in server_sent_events(pending):
                        yield stream_event(name, data)
                        if name == "done":
                            return
                    pending = []
        raise CompanionError("the stream ended before the run's result")

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
