"""What a caller sends (`ExecutionRequest`) and gets back (`ExecutionResult`)."""

from __future__ import annotations

import binascii
from collections import Counter
from collections.abc import Collection
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from companion.execution.sandbox.outputs import MAX_PATH_DEPTH, returnable

__all__ = [
    "CellLimitOverrides",
    "CellRequest",
    "CellResult",
    "ErrorInfo",
    "ExecutionRequest",
    "ExecutionResult",
    "LimitOverrides",
    "Limits",
    "OutputEvent",
    "OutputFile",
    "RichResult",
    "SessionCreate",
    "SessionInfo",
    "SessionLanguage",
    "SessionState",
    "SourceFile",
    "Status",
    "Usage",
    "WorkspaceFile",
    "WorkspaceListing",
    "WorkspaceUpload",
    "check_relative_path",
    "enclosing_path",
]

Status = Literal["ok", "runtime_error", "timeout", "memory_limit", "output_limit", "internal_error"]
_MIME_TYPE = r"^[a-z]+/[A-Za-z0-9][A-Za-z0-9.+_-]{0,126}$"
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class Limits(BaseModel):
    """Every limit a run gets; a request may lower each one, never raise it past the maximum."""

    model_config = _STRICT

    wall_time_ms: int = Field(gt=0, description="Wall-clock time before the run is killed.")
    cpu_time_ms: int = Field(gt=0, description="CPU time (user + system) before the run is killed.")
    memory_bytes: int = Field(gt=0, description="Address space the snippet may add.")
    max_output_bytes: int = Field(gt=0, description="stdout + stderr kept; more kills the run.")
    max_file_bytes: int = Field(gt=0, description="Largest file the snippet may write.")
    max_open_files: int = Field(gt=0, description="Open file descriptors.")
    max_returned_files: int = Field(ge=0, description="Files of the working directory returned.")
    max_returned_bytes: int = Field(ge=0, description="Bytes of returned files, all together.")


class LimitOverrides(BaseModel):
    """Limits a request asks for; omitted ones take the runtime's default."""

    model_config = _STRICT

    wall_time_ms: int | None = Field(None, gt=0)
    cpu_time_ms: int | None = Field(None, gt=0)
    memory_bytes: int | None = Field(None, gt=0)
    max_output_bytes: int | None = Field(None, gt=0)
    max_file_bytes: int | None = Field(None, gt=0)
    max_open_files: int | None = Field(None, gt=0)
    max_returned_files: int | None = Field(None, ge=0)
    max_returned_bytes: int | None = Field(None, ge=0)


def enclosing_path(path: str, others: Collection[str]) -> str | None:
    """The path among `others` that `path` would sit inside (`a` for `a/b`), if any."""
    segments = path.split("/")
    for depth in range(1, len(segments)):
        parent = "/".join(segments[:depth])
        if parent in others:
            return parent
    return None


def check_relative_path(path: str) -> str:
    """`path` if it names a file inside the run's directory (`data/in.csv`), else `ValueError`
    naming it: no absolute path, no `..`, no empty or hidden segment, at most 8 levels."""
    if not returnable(path):
        raise ValueError(
            f"file name {path!r} is not a relative path inside the run's directory (segments of "
            f"letters, digits, `_`, `-`, `.` and spaces, not starting with `.`, up to "
            f"{MAX_PATH_DEPTH} levels)"
        )
    return path


def _check_names(files: Collection[SourceFile]) -> None:
    """`ValueError` when a name repeats or a file would sit inside another (`a` and `a/b`)."""
    names = Counter(f.name for f in files)
    repeated = sorted(name for name, count in names.items() if count > 1)
    if repeated:
        raise ValueError(f"file names repeat: {repeated[:10]}")
    for name in names:
        if (parent := enclosing_path(name, names)) is not None:
            raise ValueError(f"file {name!r} would be inside file {parent!r}")


class SourceFile(BaseModel):
    """One file written to the run's directory; without `code`, the first one is run."""

    model_config = _STRICT

    name: str = Field(max_length=900, examples=["data/input.csv"])
    content: str = Field(description="The file's text, or its bytes in base64.")
    encoding: Literal["utf-8", "base64"] = "utf-8"

    @field_validator("name")
    @classmethod
    def _relative(cls, name: str) -> str:
        return check_relative_path(name)

    @model_validator(mode="after")
    def _decodable(self) -> SourceFile:
        if self.encoding == "base64":
            try:
                binascii.a2b_base64(self.content, strict_mode=True)
            except binascii.Error as exc:
                raise ValueError(f"file {self.name!r} is not valid base64: {exc}") from None
        return self

    @property
    def size_bytes(self) -> int:
        """The file's size in bytes, counted without decoding its base64 (checked above)."""
        if self.encoding == "base64":
            return len(self.content) // 4 * 3 - self.content[-2:].count("=")
        return len(self.content.encode("utf-8"))


class ExecutionRequest(BaseModel):
    """One snippet to run: `code`, or `files` whose first entry is run."""

    model_config = _STRICT

    language: str = Field(min_length=1, max_length=32, examples=["python"])
    code: str | None = Field(None, examples=["print(sum(range(10)))"])
    files: list[SourceFile] | None = Field(None, max_length=10_000)
    stdin: str = Field("", max_length=1_048_576)
    args: list[Annotated[str, StringConstraints(max_length=4096)]] = Field([], max_length=64)
    env: dict[EnvName, Annotated[str, StringConstraints(max_length=4096)]] = Field(
        {}, max_length=64
    )
    limits: LimitOverrides = LimitOverrides()
    figure_format: Literal["png", "svg"] = Field(
        "png", description="How open matplotlib figures come back at the end of a Python run."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ExecutionRequest:
        if self.code is None and not self.files:
            raise ValueError("give `code`, or `files` whose first one is run")
        if self.code is None and self.files and self.files[0].encoding != "utf-8":
            raise ValueError(f"the entry file {self.files[0].name!r} must be text (utf-8)")
        _check_names(self.files or ())
        return self

    @property
    def entry_source(self) -> str:
        """The code that runs: `code`, or the first file's content."""
        if self.code is not None:
            return self.code
        assert self.files
        return self.files[0].content


class ErrorInfo(BaseModel):
    """The user's uncaught error, with a traceback trimmed to the user's own code."""

    name: str
    value: str
    traceback: str


class Usage(BaseModel):
    """What the run consumed."""

    wall_ms: float
    cpu_ms: float
    memory_bytes: int


class RichResult(BaseModel):
    """One representation of something the run displayed, like a notebook cell's output.

    One output may come in several representations (a DataFrame as `text/plain` and `text/html`):
    they share `output`, its number in the run.
    """

    model_config = _STRICT

    kind: Literal["value", "display", "figure"] = Field(
        description="`value`: the last expression; `display`: a `display(...)` call; "
        "`figure`: a matplotlib figure open at the end of the run."
    )
    output: int = Field(ge=0, le=1_000_000)
    mime_type: str = Field(pattern=_MIME_TYPE, examples=["text/plain", "image/png"])
    data: str
    encoding: Literal["utf-8", "base64"] = "utf-8"


class OutputEvent(BaseModel):
    """Output of a run as it happens (streaming): a piece of stdout or stderr, or a result."""

    kind: Literal["stdout", "stderr", "result"]
    text: str = Field("", description="The piece of stdout or stderr (`stdout`, `stderr`).")
    result: RichResult | None = Field(None, description="A representation of a result (`result`).")


class OutputFile(BaseModel):
    """A file the run wrote (or changed) in its working directory."""

    model_config = _STRICT

    path: str = Field(max_length=900)
    size_bytes: int = Field(ge=0)
    mime_type: str = Field(pattern=_MIME_TYPE)
    content_base64: str

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        return check_relative_path(path)

    @model_validator(mode="after")
    def _size_matches(self) -> OutputFile:
        decoded = binascii.a2b_base64(self.content_base64, strict_mode=True)
        if len(decoded) != self.size_bytes:
            raise ValueError(f"file {self.path!r}: {len(decoded)} bytes, not {self.size_bytes}")
        return self


class ExecutionResult(BaseModel):
    """The outcome of one run; user errors are reported here, never raised."""

    status: Status
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    error: ErrorInfo | None = None
    results: list[RichResult] = Field(
        default_factory=list, description="The last value, displays and figures, in order."
    )
    results_truncated: bool = Field(False, description="Some results passed the output limit.")
    files: list[OutputFile] = Field(
        default_factory=list, description="New or changed files of the working directory."
    )
    files_truncated: bool = Field(False, description="Some files passed the returned-files caps.")
    usage: Usage
    language: str
    version: str


SessionLanguage = Literal["python", "javascript"]
SessionState = Literal["idle", "busy", "ended"]


class SessionCreate(BaseModel):
    """A session to open: its language, its limits and how long it may sit idle."""

    model_config = _STRICT

    language: str = Field("python", min_length=1, max_length=32, examples=["python"])
    limits: LimitOverrides = Field(
        LimitOverrides(),
        description="`memory_bytes`, `max_file_bytes` and `max_open_files` hold for the "
        "session's whole life; the others are each cell's defaults (a cell may set its own).",
    )
    idle_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Seconds without a call before the session ends (a default, and "
        "a maximum, come from the settings).",
    )


class CellLimitOverrides(BaseModel):
    """Limits one cell asks for; omitted ones take the session's."""

    model_config = _STRICT

    wall_time_ms: int | None = Field(None, gt=0)
    cpu_time_ms: int | None = Field(None, gt=0)
    max_output_bytes: int | None = Field(None, gt=0)
    max_returned_files: int | None = Field(None, ge=0)
    max_returned_bytes: int | None = Field(None, ge=0)


class CellRequest(BaseModel):
    """One cell to run in a session: its variables, imports and files persist between cells."""

    model_config = _STRICT

    code: str = Field(examples=["x = 41"])
    stdin: str = Field("", max_length=1_048_576)
    files: list[SourceFile] | None = Field(
        None, max_length=10_000, description="Written to the workspace before the cell runs."
    )
    limits: CellLimitOverrides = CellLimitOverrides()
    figure_format: Literal["png", "svg"] = "png"

    @model_validator(mode="after")
    def _distinct_files(self) -> CellRequest:
        _check_names(self.files or ())
        return self


class CellResult(ExecutionResult):
    """A cell's outcome: a run's result, numbered in its session."""

    session_id: str
    execution_count: int = Field(ge=1, description="This cell's number in its session.")
    session_ended: str | None = Field(
        None, description="Set when the session ended during this cell: why (later calls get 410)."
    )


class SessionInfo(BaseModel):
    """A session as its owner sees it."""

    id: str
    language: str
    version: str
    state: SessionState
    ended_reason: str | None = Field(None, description="Why the session ended, once it has.")
    created_at: float = Field(description="Unix time in seconds.")
    last_used_at: float = Field(description="Unix time of the last call, in seconds.")
    expires_at: float = Field(
        description="Unix time at which the session ends unless used again (idle timeout, or "
        "its maximum lifetime, whichever comes first)."
    )
    idle_timeout_s: float
    execution_count: int = Field(description="Cells run so far.")
    limits: Limits
    node: str = Field(description="The service node holding the session's process.")


class WorkspaceFile(BaseModel):
    """A file of a session's workspace."""

    path: str
    size_bytes: int
    mime_type: str


class WorkspaceListing(BaseModel):
    """The files of a session's workspace, in path order."""

    files: list[WorkspaceFile]
    truncated: bool = Field(False, description="More files than a listing returns.")


class WorkspaceUpload(BaseModel):
    """Files to write into a session's workspace (existing ones are replaced)."""

    model_config = _STRICT

    files: list[SourceFile] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _distinct(self) -> WorkspaceUpload:
        _check_names(self.files)
        return self
