"""`Session` and `AsyncSession`: a stateful interpreter in the service, from Python.

A handle holds the session's id and its last known info; every method is one call to
`/v1/sessions/{id}...` through its client (with the client's retries and error mapping). The calls
are built once, here, for both handles, which differ only in awaiting. A session that ended raises
`SessionEnded` (410), an unknown one `SessionNotFound`, a missing workspace file
`WorkspaceFileNotFound`, and a tenant over its sessions `SessionLimitReached`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Generator, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote

from companion_client._calls import Call, read_json, read_nothing, segment
from companion_client._errors import NotFound
from companion_client._execution import (
    Execution,
    Files,
    InputFile,
    StreamEvent,
    input_files,
    save_file,
)

if TYPE_CHECKING:
    from companion_client._async_client import AsyncClient
    from companion_client._client import Client

__all__ = [
    "AsyncSession",
    "FileListing",
    "Session",
    "SessionFile",
    "create_session",
    "list_sessions",
]

_SESSIONS = "/v1/sessions"
Upload = str | os.PathLike[str] | InputFile
AnyClient = TypeVar("AnyClient", "Client", "AsyncClient")


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
    def from_json(cls, raw: Mapping[str, Any]) -> FileListing:
        """Decode `GET /v1/sessions/{id}/files`."""
        files = [
            SessionFile(str(item["path"]), int(item["size_bytes"]), str(item["mime_type"]))
            for item in raw["files"]
        ]
        return cls(files, bool(raw.get("truncated")))

    def __iter__(self) -> Iterator[SessionFile]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


def create_session(
    language: str, limits: Mapping[str, int] | None, idle_timeout_s: float | None
) -> Call[dict[str, Any]]:
    """`POST /v1/sessions`: the new session's info."""
    body: dict[str, Any] = {"language": language}
    if limits:
        body["limits"] = dict(limits)
    if idle_timeout_s is not None:
        body["idle_timeout_s"] = idle_timeout_s
    return Call("POST", _SESSIONS, read_json, json=body)


def list_sessions() -> Call[list[dict[str, Any]]]:
    """`GET /v1/sessions`: the info of the caller's open sessions, oldest first."""
    return Call("GET", _SESSIONS, lambda r: list(r.json()["sessions"]))


def _session_info(session_id: str) -> Call[dict[str, Any]]:
    return Call("GET", f"{_SESSIONS}/{segment(session_id)}", read_json)


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


class _Handle(Generic[AnyClient]):
    """What both handles share: the client, the id, the last info, and every call's shape."""

    def __init__(self, client: AnyClient, info: dict[str, Any]) -> None:
        self._client: AnyClient = client
        self.info = info
        self.id: str = info["id"]
        self._path = f"{_SESSIONS}/{segment(self.id)}"

    def _file(self, path: str) -> str:
        return f"{self._path}/files/{quote(path, safe='/')}"

    def _info_call(self) -> Call[dict[str, Any]]:
        return Call("GET", self._path, read_json)

    def _run_call(self, body: dict[str, Any]) -> Call[Execution]:
        return Call(
            "POST", f"{self._path}/execute", lambda r: Execution.from_json(r.json()), json=body
        )

    def _files_call(self) -> Call[FileListing]:
        return Call("GET", f"{self._path}/files", lambda r: FileListing.from_json(r.json()))

    def _write_call(self, files: Files) -> Call[FileListing]:
        return Call(
            "POST",
            f"{self._path}/files",
            lambda r: FileListing.from_json(r.json()),
            json={"files": input_files(files)},
        )

    def _put_call(self, upload: InputFile) -> Call[None]:
        return Call("PUT", self._file(upload.name), read_nothing, content=upload.data)

    def _download_call(self, path: str) -> Call[bytes]:
        return Call("GET", self._file(path), lambda r: r.content)

    def _delete_file_call(self, path: str) -> Call[None]:
        return Call("DELETE", self._file(path), read_nothing)

    def _close_call(self) -> Call[None]:
        return Call("DELETE", self._path, read_nothing)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.info.get('state', '?')}>"


class Session(_Handle["Client"]):
    """A session of `Client`: `with client.create_session() as s: s.run("x = 1")` (ends it on
    leaving the block). `info` is the session's info as last seen; `refresh()` asks again."""

    @classmethod
    def attach(cls, client: Client, session_id: str) -> Session:
        """The handle of an existing session (`SessionNotFound` when there is none)."""
        return cls(client, client._call(_session_info(session_id)))

    def refresh(self) -> dict[str, Any]:
        """Fetch the session's info again (an ended one keeps answering, with its reason)."""
        self.info = self._client._call(self._info_call())
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
        return self._client._call(self._run_call(body))

    def run_stream(
        self,
        code: str,
        *,
        stdin: str | None = None,
        files: Files | None = None,
        limits: Mapping[str, int] | None = None,
        figure_format: str | None = None,
    ) -> Generator[StreamEvent, None, None]:
        """`run`, streamed as `Client.run_stream` is; leaving the loop early interrupts the
        cell (the session goes on)."""
        body = _cell_body(code, stdin, files, limits, figure_format)
        return self._client._stream(self._run_call(body))

    def files(self) -> FileListing:
        """The files of the session's workspace."""
        return self._client._call(self._files_call())

    def write_files(self, files: Files) -> FileListing:
        """Write several files at once ({name: bytes or text}, or `InputFile`s), replacing
        those of the same paths; the workspace's files after."""
        return self._client._call(self._write_call(files))

    def upload(self, source: Upload, name: str | None = None) -> str:
        """Write a local file (a path: links are refused) or an `InputFile` into the workspace,
        at `name` or its own name; returns that path. Folders are made as needed."""
        upload = _upload(source, name)
        self._client._call(self._put_call(upload))
        return upload.name

    def download(self, path: str) -> bytes:
        """The bytes of the workspace's file at `path` (`WorkspaceFileNotFound` if none)."""
        return self._client._call(self._download_call(path))

    def save_file(
        self, path: str, folder: str | os.PathLike[str] = ".", *, overwrite: bool = False
    ) -> Path:
        """Download `path` to the same relative path under `folder` (see `save_file`)."""
        return save_file(folder, path, self.download(path), overwrite=overwrite)

    def delete_file(self, path: str) -> None:
        """Remove the workspace's file at `path` (`WorkspaceFileNotFound` if none)."""
        self._client._call(self._delete_file_call(path))

    def close(self) -> None:
        """End the session; closing one that has already ended is not an error."""
        with suppress(NotFound):
            self._client._call(self._close_call())

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncSession(_Handle["AsyncClient"]):
    """The asynchronous twin of `Session`, from `AsyncClient` (`async with` ends it)."""

    @classmethod
    async def attach(cls, client: AsyncClient, session_id: str) -> AsyncSession:
        """`Session.attach`, awaited."""
        return cls(client, await client._call(_session_info(session_id)))

    async def refresh(self) -> dict[str, Any]:
        """`Session.refresh`, awaited."""
        self.info = await self._client._call(self._info_call())
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
        return await self._client._call(self._run_call(body))

    def run_stream(
        self,
        code: str,
        *,
        stdin: str | None = None,
        files: Files | None = None,
        limits: Mapping[str, int] | None = None,
        figure_format: str | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """`Session.run_stream`, asynchronously (`async for`)."""
        body = _cell_body(code, stdin, files, limits, figure_format)
        return self._client._stream(self._run_call(body))

    async def files(self) -> FileListing:
        """`Session.files`, awaited."""
        return await self._client._call(self._files_call())

    async def write_files(self, files: Files) -> FileListing:
        """`Session.write_files`, awaited."""
        return await self._client._call(self._write_call(files))

    async def upload(self, source: Upload, name: str | None = None) -> str:
        """`Session.upload`, awaited."""
        upload = _upload(source, name)
        await self._client._call(self._put_call(upload))
        return upload.name

    async def download(self, path: str) -> bytes:
        """`Session.download`, awaited."""
        return await self._client._call(self._download_call(path))

    async def save_file(
        self, path: str, folder: str | os.PathLike[str] = ".", *, overwrite: bool = False
    ) -> Path:
        """`Session.save_file`, awaited."""
        return save_file(folder, path, await self.download(path), overwrite=overwrite)

    async def delete_file(self, path: str) -> None:
        """`Session.delete_file`, awaited."""
        await self._client._call(self._delete_file_call(path))

    async def close(self) -> None:
        """`Session.close`, awaited."""
        with suppress(NotFound):
            await self._client._call(self._close_call())

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
