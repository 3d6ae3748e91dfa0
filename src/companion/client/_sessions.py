"""`Session` and `AsyncSession`: a stateful interpreter in the service, from Python.

A handle holds the session's id and its last known info; every method is one call to
`/v1/sessions/{id}...` on the client's connection pool. The request bodies, paths and parsing are
shared by the two classes, which differ only in awaiting. Problems whose `code` names an error of
the execution subsystem come back as that error (`SessionEnded` for 410, `SessionNotFound`,
`WorkspaceFileNotFound`, `SessionLimitReached`, `SessionCapacityReached`), so a caller can catch
the condition and not only its status.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import aclosing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from companion.client._errors import raise_for_problem, retry_after_seconds
from companion.client._execution import (
    Execution,
    Files,
    InputFile,
    StreamEvent,
    astream_run,
    input_files,
    save_file,
    stream_run,
)
from companion.errors import CompanionError, NotFound

__all__ = [
    "AsyncSession",
    "FileListing",
    "Session",
    "SessionFile",
    "alist_sessions",
    "create_body",
    "list_sessions",
    "session_path",
]

_SESSIONS = "/v1/sessions"
# The `code`s that `_mapped` turns into execution errors; any other problem keeps its class.
_SESSION_CODES = frozenset(
    {
        "executor_busy",
        "file_not_found",
        "session_capacity",
        "session_ended",
        "session_limit",
        "session_not_found",
    }
)
Upload = str | os.PathLike[str] | InputFile
HttpClient = TypeVar("HttpClient", httpx.Client, httpx.AsyncClient)


@dataclass(frozen=True, slots=True)
class SessionFile:
    """A regular file of a session's workspace."""

    path: str
    size_bytes: int
    mime_type: str


@dataclass(frozen=True, slots=True)
class FileListing:
    """The files of a session's workspace in path order; `truncated` when there were more than a
    listing holds. Iterates over its `files`."""

    files: list[SessionFile] = field(default_factory=list)
    truncated: bool = False

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FileListing:
        """Decode `GET /v1/sessions/{id}/files`."""
        return cls([SessionFile(**item) for item in raw["files"]], bool(raw.get("truncated")))

    def __iter__(self) -> Iterator[SessionFile]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


def _mapped(error: CompanionError, retry_after_s: float | None = None) -> CompanionError:
    """`error` as the execution subsystem's error its `code` names, or `error` itself."""
    code = error.details.get("code")
    if code not in _SESSION_CODES:
        return error
    # Imported only for these codes: it loads pydantic, which `import companion.client` avoids.
    from companion import execution

    message, details = error.message, error.details
    plain = (execution.SessionEnded, execution.SessionNotFound, execution.WorkspaceFileNotFound)
    for kind in plain:
        if kind.code == code:
            return kind(message, details=details)
    retry = retry_after_s if retry_after_s is not None else getattr(error, "retry_after_s", 1.0)
    retryable = (
        execution.SessionLimitReached,
        execution.SessionCapacityReached,
        execution.ExecutorBusy,
    )
    for retrying in retryable:
        if retrying.code == code:
            return retrying(message, retry_after_s=retry, details=details)
    return error


@contextmanager
def _mapping(retry_after_s: float | None = None) -> Iterator[None]:
    """Raise a `CompanionError` from the block as `_mapped` says."""
    try:
        yield
    except CompanionError as exc:
        mapped = _mapped(exc, retry_after_s)
        if mapped is exc:
            raise
        raise mapped from None


def _checked(response: httpx.Response) -> httpx.Response:
    """`response`, or its problem as a `CompanionError` (mapped: see `_mapped`)."""
    if response.status_code >= 400:
        with _mapping(retry_after_seconds(response)):
            raise_for_problem(response)
    return response


def _json(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = _checked(response).json()
    return body


def create_body(
    language: str, limits: Mapping[str, int] | None, idle_timeout_s: float | None
) -> dict[str, Any]:
    """The JSON of `POST /v1/sessions`."""
    body: dict[str, Any] = {"language": language}
    if limits:
        body["limits"] = dict(limits)
    if idle_timeout_s is not None:
        body["idle_timeout_s"] = idle_timeout_s
    return body


def _cell_body(
    code: str,
    stdin: str | None,
    files: Files | None,
    limits: Mapping[str, int] | None,
    figure_format: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code}
    if stdin is not None:
        body["stdin"] = stdin
    if files:
        body["files"] = input_files(files)
    if limits:
        body["limits"] = dict(limits)
    if figure_format is not None:
        body["figure_format"] = figure_format
    return body


def _upload(source: Upload, name: str | None) -> InputFile:
    if isinstance(source, InputFile):
        return InputFile(name, source.data) if name else source
    return InputFile.from_path(source, name)


def session_path(session_id: str) -> str:
    """The session's URL path."""
    return f"{_SESSIONS}/{quote(session_id, safe='')}"


def list_sessions(http: httpx.Client) -> list[dict[str, Any]]:
    """`GET /v1/sessions`: the info of the caller's open sessions."""
    sessions: list[dict[str, Any]] = _json(http.get(_SESSIONS))["sessions"]
    return sessions


async def alist_sessions(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """`list_sessions`, awaited."""
    sessions: list[dict[str, Any]] = _json(await http.get(_SESSIONS))["sessions"]
    return sessions


class _Handle(Generic[HttpClient]):
    """What both handles share: the connection pool, the id, the last info and the paths."""

    def __init__(self, http: HttpClient, info: dict[str, Any]) -> None:
        self._http: HttpClient = http
        self.info = info
        self.id: str = info["id"]
        self._path = session_path(self.id)

    def _file(self, path: str) -> str:
        return f"{self._path}/files/{quote(path, safe='/')}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.info.get('state', '?')}>"


class Session(_Handle[httpx.Client]):
    """A session of `Client`: `with client.create_session() as s: s.run("x = 1")` (ends it on
    leaving the block). `info` is the session's info as last seen; `refresh()` asks again."""

    @classmethod
    def create(cls, http: httpx.Client, body: dict[str, Any]) -> Session:
        """`POST /v1/sessions` with `body` (see `create_body`)."""
        return cls(http, _json(http.post(_SESSIONS, json=body)))

    @classmethod
    def attach(cls, http: httpx.Client, session_id: str) -> Session:
        """The handle of an existing session (`SessionNotFound` when there is none)."""
        return cls(http, _json(http.get(session_path(session_id))))

    def refresh(self) -> dict[str, Any]:
        """Fetch the session's info again (an ended one keeps answering, with its reason)."""
        self.info = _json(self._http.get(self._path))
        return self.info

    def run(
        self,
        code: str,
        *,
        stdin: str | None = None,
        files: Files | None = None,
        limits: Mapping[str, int] | None = None,
        figure_format: str | None = None,
    ) -> Execution:
        """Run a cell; its result has `execution_count`, and `session_ended` if the session
        ended during it. A call on an ended session raises `SessionEnded`."""
        body = _cell_body(code, stdin, files, limits, figure_format)
        return Execution.from_json(_json(self._http.post(f"{self._path}/execute", json=body)))

    def run_stream(
        self,
        code: str,
        *,
        stdin: str | None = None,
        files: Files | None = None,
        limits: Mapping[str, int] | None = None,
        figure_format: str | None = None,
    ) -> Iterator[StreamEvent]:
        """`run`, streamed as `Client.run_stream` is; leaving the loop early interrupts the
        cell (the session goes on)."""
        body = _cell_body(code, stdin, files, limits, figure_format)
        with _mapping():
            yield from stream_run(self._http, f"{self._path}/execute", body)

    def files(self) -> FileListing:
        """The files of the session's workspace."""
        return FileListing.from_json(_json(self._http.get(f"{self._path}/files")))

    def upload(self, source: Upload, name: str | None = None) -> str:
        """Write a local file (a path: links are refused) or an `InputFile` into the workspace,
        at `name` or its own name; returns that path. Folders are made as needed."""
        upload = _upload(source, name)
        _checked(self._http.put(self._file(upload.name), content=upload.data))
        return upload.name

    def download(self, path: str) -> bytes:
        """The bytes of the workspace's file at `path` (`WorkspaceFileNotFound` if none)."""
        return _checked(self._http.get(self._file(path))).content

    def save_file(
        self, path: str, folder: str | os.PathLike[str] = ".", *, overwrite: bool = False
    ) -> Path:
        """Download `path` to the same relative path under `folder` (see `save_file`)."""
        return save_file(folder, path, self.download(path), overwrite=overwrite)

    def delete_file(self, path: str) -> None:
        """Remove the workspace's file at `path` (`WorkspaceFileNotFound` if none)."""
        _checked(self._http.delete(self._file(path)))

    def close(self) -> None:
        """End the session; closing one that has already ended is not an error."""
        with suppress(NotFound):
            _checked(self._http.delete(self._path))

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncSession(_Handle[httpx.AsyncClient]):
    """The asynchronous twin of `Session`, from `AsyncClient` (`async with` ends it)."""

    @classmethod
    async def create(cls, http: httpx.AsyncClient, body: dict[str, Any]) -> AsyncSession:
        """`Session.create`, awaited."""
        return cls(http, _json(await http.post(_SESSIONS, json=body)))

    @classmethod
    async def attach(cls, http: httpx.AsyncClient, session_id: str) -> AsyncSession:
        """`Session.attach`, awaited."""
        return cls(http, _json(await http.get(session_path(session_id))))

    async def refresh(self) -> dict[str, Any]:
        """`Session.refresh`, awaited."""
        self.info = _json(await self._http.get(self._path))
        return self.info

    async def run(
        self,
        code: str,
        *,
        stdin: str | None = None,
        files: Files | None = None,
        limits: Mapping[str, int] | None = None,
        figure_format: str | None = None,
    ) -> Execution:
        """`Session.run`, awaited."""
        body = _cell_body(code, stdin, files, limits, figure_format)
        response = await self._http.post(f"{self._path}/execute", json=body)
        return Execution.from_json(_json(response))

    async def run_stream(
        self,
        code: str,
        *,
        stdin: str | None = None,
        files: Files | None = None,
        limits: Mapping[str, int] | None = None,
        figure_format: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """`Session.run_stream`, asynchronously."""
        body = _cell_body(code, stdin, files, limits, figure_format)
        # Closed explicitly when the caller stops early: the response ends, and the server
        # interrupts the cell.
        with _mapping():
            async with aclosing(astream_run(self._http, f"{self._path}/execute", body)) as events:
                async for event in events:
                    yield event

    async def files(self) -> FileListing:
        """`Session.files`, awaited."""
        return FileListing.from_json(_json(await self._http.get(f"{self._path}/files")))

    async def upload(self, source: Upload, name: str | None = None) -> str:
        """`Session.upload`, awaited."""
        upload = _upload(source, name)
        _checked(await self._http.put(self._file(upload.name), content=upload.data))
        return upload.name

    async def download(self, path: str) -> bytes:
        """`Session.download`, awaited."""
        return _checked(await self._http.get(self._file(path))).content

    async def save_file(
        self, path: str, folder: str | os.PathLike[str] = ".", *, overwrite: bool = False
    ) -> Path:
        """`Session.save_file`, awaited."""
        return save_file(folder, path, await self.download(path), overwrite=overwrite)

    async def delete_file(self, path: str) -> None:
        """`Session.delete_file`, awaited."""
        _checked(await self._http.delete(self._file(path)))

    async def close(self) -> None:
        """`Session.close`, awaited."""
        with suppress(NotFound):
            _checked(await self._http.delete(self._path))

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
