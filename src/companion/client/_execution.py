"""Typed helpers for code execution over HTTP: files to send, the result with its outputs, and
the events of a streamed run.

Plain dataclasses over the JSON of `POST /v1/execute`, so the client needs nothing of the server.
Returned files are saved only inside the folder asked for: their paths come from the sandbox, where
a snippet chose them.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from companion.client._errors import problem_error, raise_for_problem
from companion.errors import CompanionError, InvalidInput

__all__ = [
    "Execution",
    "Files",
    "InputFile",
    "ReturnedFile",
    "RichOutput",
    "StreamEvent",
    "astream_run",
    "input_files",
    "save_file",
    "server_sent_events",
    "stream_run",
]

_BINARY_ENCODING = "base64"
_EVENTS = {"Accept": "text/event-stream"}
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # absent on Windows, where links need privileges


@dataclass(frozen=True, slots=True)
class InputFile:
    """A file to write into the run's directory, at `name` (a relative path)."""

    name: str
    data: bytes

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], name: str | None = None) -> InputFile:
        """The file at `path`, named by its base name unless `name` is given; links are refused
        (the caller names what it sends)."""
        source = Path(path)
        if source.is_symlink() or not source.is_file():
            raise InvalidInput(f"{source}: not a regular file")
        return cls(name or source.name, source.read_bytes())

    def to_json(self) -> dict[str, str]:
        """The request's form of this file (always base64, so bytes arrive exactly)."""
        content = base64.b64encode(self.data).decode("ascii")
        return {"name": self.name, "content": content, "encoding": _BINARY_ENCODING}


@dataclass(frozen=True, slots=True)
class RichOutput:
    """One representation of a result: the last value, a `display(...)` or a figure."""

    kind: str
    output: int
    mime_type: str
    data: str
    encoding: str

    def content(self) -> bytes:
        """The bytes of this representation (an image decoded from base64)."""
        if self.encoding == _BINARY_ENCODING:
            return base64.b64decode(self.data)
        return self.data.encode("utf-8")


@dataclass(frozen=True, slots=True)
class ReturnedFile:
    """A file the run wrote or changed in its working directory."""

    path: str
    size_bytes: int
    mime_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Execution:
    """The result of `POST /v1/execute`; `raw` keeps the JSON as received. A session's cell
    also has `session_id`, `execution_count` (its number in the session) and `session_ended`
    (why the session ended during it, if it did)."""

    status: str
    exit_code: int | None
    stdout: str
    stderr: str
    error: dict[str, Any] | None
    results: list[RichOutput]
    files: list[ReturnedFile]
    results_truncated: bool
    files_truncated: bool
    usage: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)
    session_id: str | None = None
    execution_count: int | None = None
    session_ended: str | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Execution:
        """Decode the service's JSON."""
        return cls(
            status=raw["status"],
            exit_code=raw.get("exit_code"),
            stdout=raw.get("stdout", ""),
            stderr=raw.get("stderr", ""),
            error=raw.get("error"),
            results=[RichOutput(**item) for item in raw.get("results", [])],
            files=[
                ReturnedFile(
                    item["path"],
                    item["size_bytes"],
                    item["mime_type"],
                    base64.b64decode(item["content_base64"]),
                )
                for item in raw.get("files", [])
            ],
            results_truncated=bool(raw.get("results_truncated")),
            files_truncated=bool(raw.get("files_truncated")),
            usage=raw.get("usage", {}),
            raw=raw,
            session_id=raw.get("session_id"),
            execution_count=raw.get("execution_count"),
            session_ended=raw.get("session_ended"),
        )

    @property
    def ok(self) -> bool:
        """True when the run ended normally with exit code 0."""
        return self.status == "ok"

    @property
    def value(self) -> str | None:
        """The last expression's value as text, or None when it had none."""
        return next(
            (r.data for r in self.results if r.kind == "value" and r.mime_type == "text/plain"),
            None,
        )

    def images(self) -> list[RichOutput]:
        """Every image among the results (figures, and values shown as images)."""
        return [r for r in self.results if r.mime_type.startswith("image/")]

    def save_files(self, folder: str | os.PathLike[str], *, overwrite: bool = False) -> list[Path]:
        """Write the returned files under `folder` (see `save_file`); returns where each went."""
        return [save_file(folder, f.path, f.content, overwrite=overwrite) for f in self.files]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of a streamed run: `stdout`/`stderr` (`text`), `result` (`result`, one
    representation of a result), or `done` (`execution`, the whole result), always last."""

    kind: str
    text: str = ""
    result: RichOutput | None = None
    execution: Execution | None = None


def stream_event(name: str, data: str) -> StreamEvent:
    """The `StreamEvent` of one server-sent event; an `error` event raises its problem."""
    body = json.loads(data)
    if name == "error":
        raise problem_error(int(body.get("status", 500)), body)
    if name == "done":
        return StreamEvent("done", execution=Execution.from_json(body))
    if name == "result":
        return StreamEvent("result", result=RichOutput(**body))
    return StreamEvent(name, text=str(body.get("text", "")))


def server_sent_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of an SSE stream given line by line (fields per the WHATWG spec:
    `event`, `data` lines joined by newlines, a blank line dispatches, `:` starts a comment)."""
    name, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field_name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field_name == "event":
            name = value
        elif field_name == "data":
            data.append(value)
    if data:
        yield name, "\n".join(data)


def stream_run(http: httpx.Client, path: str, body: dict[str, Any]) -> Iterator[StreamEvent]:
    """The events of a streamed run (`POST path` asking for Server-Sent Events), `done` last;
    leaving the loop early closes the stream, which ends the run."""
    with http.stream("POST", path, json=body, headers=_EVENTS) as response:
        if response.status_code >= 400:
            response.read()
            raise_for_problem(response)
        for name, data in server_sent_events(response.iter_lines()):
            yield stream_event(name, data)
            if name == "done":
                return
    raise CompanionError("the stream ended before the run's result")


async def astream_run(
    http: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> AsyncGenerator[StreamEvent, None]:
    """`stream_run`, asynchronously."""
    async with http.stream("POST", path, json=body, headers=_EVENTS) as response:
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


# What `files=` takes: {name: bytes or text}, `InputFile`s, or their JSON form.
Files = Mapping[str, bytes | str] | Iterable[InputFile | Mapping[str, str]]


def input_files(files: Files) -> list[dict[str, str]]:
    """The request's `files` from {name: bytes or text}, `InputFile`s, or their JSON form."""
    if isinstance(files, Mapping):
        return [
            InputFile(name, data.encode("utf-8") if isinstance(data, str) else data).to_json()
            for name, data in files.items()
        ]
    return [item.to_json() if isinstance(item, InputFile) else dict(item) for item in files]


def save_file(
    folder: str | os.PathLike[str], path: str, content: bytes, *, overwrite: bool = False
) -> Path:
    """Write `content` at the relative `path` under `folder`, never outside it: an absolute path,
    `..`, a drive or a backslash, or a link on the way is refused with `InvalidInput`; so is an
    existing file unless `overwrite` (a returned `Makefile` must not replace yours)."""
    parts = path.split("/")
    if any(part in {"", ".", ".."} or "\\" in part or ":" in part for part in parts):
        raise InvalidInput(f"returned file {path!r}: not a relative path; not saved")
    root = Path(folder).resolve()
    target = root.joinpath(*parts)
    parent = root
    try:
        root.mkdir(parents=True, exist_ok=True)
        for part in parts[:-1]:
            parent = parent / part
            if parent.is_symlink():
                raise InvalidInput(f"returned file {path!r}: {parent} is a link; not saved")
            parent.mkdir(exist_ok=True)
    except OSError as exc:  # a file where a folder should be, say
        raise InvalidInput(f"returned file {path!r}: cannot make {parent}: {exc}") from None
    flags = os.O_WRONLY | os.O_CREAT | _NO_FOLLOW | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(target, flags, 0o644)
    except FileExistsError:
        raise InvalidInput(f"returned file {path!r}: {target} exists; not replaced") from None
    except OSError as exc:
        raise InvalidInput(f"returned file {path!r}: cannot write {target}: {exc}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    return target
