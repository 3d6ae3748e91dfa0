"""What a caller sends (`ExecutionRequest`) and gets back (`ExecutionResult`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = [
    "ErrorInfo",
    "ExecutionRequest",
    "ExecutionResult",
    "LimitOverrides",
    "Limits",
    "SourceFile",
    "Status",
    "Usage",
]

Status = Literal["ok", "runtime_error", "timeout", "memory_limit", "output_limit", "internal_error"]
FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")]
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


class LimitOverrides(BaseModel):
    """Limits a request asks for; omitted ones take the runtime's default."""

    model_config = _STRICT

    wall_time_ms: int | None = Field(None, gt=0)
    cpu_time_ms: int | None = Field(None, gt=0)
    memory_bytes: int | None = Field(None, gt=0)
    max_output_bytes: int | None = Field(None, gt=0)
    max_file_bytes: int | None = Field(None, gt=0)
    max_open_files: int | None = Field(None, gt=0)


class SourceFile(BaseModel):
    """One file written to the scratch directory; the first file of a request is the entry point."""

    model_config = _STRICT

    name: FileName
    content: str


class ExecutionRequest(BaseModel):
    """One snippet to run: `code`, or `files` whose first entry is run."""

    model_config = _STRICT

    language: str = Field(min_length=1, max_length=32, examples=["python"])
    code: str | None = Field(None, examples=["print(sum(range(10)))"])
    files: list[SourceFile] | None = Field(None, max_length=32)
    stdin: str = Field("", max_length=1_048_576)
    args: list[Annotated[str, StringConstraints(max_length=4096)]] = Field([], max_length=64)
    env: dict[EnvName, Annotated[str, StringConstraints(max_length=4096)]] = Field(
        {}, max_length=64
    )
    limits: LimitOverrides = LimitOverrides()

    @model_validator(mode="after")
    def _one_source(self) -> ExecutionRequest:
        if (self.code is None) == (not self.files):
            raise ValueError("give exactly one of `code` or `files`")
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
    usage: Usage
    language: str
    version: str
