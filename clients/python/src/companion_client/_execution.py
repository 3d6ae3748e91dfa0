"""Code execution's values: files to send, the result with its outputs, the events of a streamed
run, and the Server-Sent Events parser both clients read streams with.

Plain dataclasses over the JSON of `POST /v1/execute`. Returned files are saved only inside the
folder asked for: their paths come from the sandbox, where a snippet chose them.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from companion_client._errors import LocalFileRefused, error_from_problem

__all__ = [
    "EventDecoder",
    "Execution",
    "Files",
    "InputFile",
    "ReturnedFile",
    "RichOutput",
    "StreamEvent",
    "input_files",
    "save_file",
    "stream_event",
]

_BINARY_ENCODING = "base64"
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
            raise LocalFileRefused(f"{source}: not a regular file")
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

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RichOutput:
        """Decode one item of a result's `results` (fields added later are ignored)."""
        return cls(
            str(raw["kind"]),
            int(raw["output"]),
            str(raw["mime_type"]),
            str(raw["data"]),
            str(raw.get("encoding", "utf-8")),
        )

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
            results=[RichOutput.from_json(item) for item in raw.get("results", [])],
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
        raise error_from_problem(int(body.get("status", 500)), body)
    if name == "done":
        return StreamEvent("done", execution=Execution.from_json(body))
    if name == "result":
        return StreamEvent("result", result=RichOutput.from_json(body))
    return StreamEvent(name, text=str(body.get("text", "")))


class EventDecoder:
    """Server-Sent Events read one line at a time, as both clients receive them (fields per the
    WHATWG spec: `event`, `data` lines joined by newlines, a blank line dispatches, `:` starts a
    comment)."""

    def __init__(self) -> None:
        self._name = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        """Take one line; the (event, data) pair it completes, if any."""
        if not line:
            event = (self._name, "\n".join(self._data)) if self._data else None
            self._name, self._data = "message", []
            return event
        if line.startswith(":"):
            return None
        field_name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field_name == "event":
            self._name = value
        elif field_name == "data":
            self._data.append(value)
        return None

    def end(self) -> tuple[str, str] | None:
        """The last event when the stream ended without its blank line."""
        return self.feed("")


# What `files=` takes: {name: bytes or text}, `InputFile`s, or their JSON form. A `Sequence`, not
# any `Iterable`: against `Iterable` (which a dict is too), mypy reads `{"a": "text", "b": b"x"}` as
# a `dict[str, Sequence[object]]` and refuses it.
Files = Mapping[str, bytes | str] | Sequence[InputFile | Mapping[str, str]]


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
    `..`, a drive or a backslash, or a link on the way is refused with `LocalFileRefused`; so is an
    existing file unless `overwrite` (a returned `Makefile` must not replace yours)."""
    parts = path.split("/")
    if any(part in {"", ".", ".."} or "\\" in part or ":" in part for part in parts):
        raise LocalFileRefused(f"returned file {path!r}: not a relative path; not saved")
    root = Path(folder).resolve()
    target = root.joinpath(*parts)
    parent = root
    try:
        root.mkdir(parents=True, exist_ok=True)
        for part in parts[:-1]:
            parent = parent / part
            if parent.is_symlink():
                raise LocalFileRefused(f"returned file {path!r}: {parent} is a link; not saved")
            parent.mkdir(exist_ok=True)
    except OSError as exc:  # a file where a folder should be, say
        raise LocalFileRefused(f"returned file {path!r}: cannot make {parent}: {exc}") from None
    flags = os.O_WRONLY | os.O_CREAT | _NO_FOLLOW | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(target, flags, 0o644)
    except FileExistsError:
        raise LocalFileRefused(f"returned file {path!r}: {target} exists; not replaced") from None
    except OSError as exc:
        raise LocalFileRefused(f"returned file {path!r}: cannot write {target}: {exc}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    return target
