"""Turning what the zygote observed into an `ExecutionResult` with one clear status."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

import orjson

from companion.execution._models import (
    ErrorInfo,
    ExecutionResult,
    Limits,
    OutputEvent,
    OutputFile,
    RichResult,
    Status,
    Usage,
    enclosing_path,
)
from companion.execution._runtimes import Runtime

__all__ = [
    "exit_record",
    "internal_error_result",
    "output_listener",
    "to_result",
    "usage_record",
]

_log = logging.getLogger("companion.execution")
_LIMIT_STATUS: dict[str, Status] = {
    "memory": "memory_limit",
    "time": "timeout",
    "output": "output_limit",
}
# Why the zygote killed a run, when it did.
_KILLED_STATUS: dict[str, Status] = {"timeout": "timeout", "output_limit": "output_limit"}
# Signals an allocation failing at the address-space cap can end in (a NULL dereferenced, abort()).
_ALLOCATION_CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT})
# Peak RSS growth at or above this share of the memory limit means the cap, not a bug, caused the crash.
_NEAR_MEMORY_LIMIT_SHARE = 0.5


_EXIT_CODE_MAX = 255
# How a sandbox child says it failed before running user code (see `sandbox/child.py`).
SANDBOX_ERROR = "SandboxError"
SETUP_EXIT_CODE = 70
_USAGE_MAX = 2**53  # far above any real figure, below where a float loses integer precision


def _number(value: object, *, integral: bool) -> float | None:
    """`value` if it is a finite, non-negative JSON number (an int when `integral`), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if integral and not isinstance(value, int):
        return None
    if not 0 <= value <= _USAGE_MAX:  # also rejects NaN
        return None
    return value


def usage_record(record: dict[str, Any]) -> dict[str, Any] | None:
    """`cpu_ms` and `memory_bytes` of a report, checked strictly; None when either is missing or
    malformed."""
    cpu_ms = _number(record.get("cpu_ms"), integral=False)
    memory_bytes = _number(record.get("memory_bytes"), integral=True)
    if cpu_ms is None or memory_bytes is None:
        return None
    return {"cpu_ms": float(cpu_ms), "memory_bytes": int(memory_bytes)}


def exit_record(record: dict[str, Any]) -> dict[str, Any] | None:
    """The exit code and usage a child reported as its last act, checked strictly; None when any
    field is missing or malformed. The child runs user code, so what it writes is input like any
    other: `{"exit_code": 1e20}` or `{"memory_bytes": "zzz"}` must never reach the result."""
    exit_code = _number(record.get("exit_code"), integral=True)
    usage = usage_record(record)
    if exit_code is None or exit_code > _EXIT_CODE_MAX or usage is None:
        return None
    return {"exit_code": int(exit_code), **usage}


def _parse_error(raw: str) -> tuple[ErrorInfo | None, str | None]:
    if not raw:
        return None, None
    try:
        report = orjson.loads(raw)
        error = ErrorInfo(
            name=str(report["name"]), value=str(report["value"]), traceback=str(report["traceback"])
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None, None  # user code can write to the report pipe; a garbled one is ignored
    limit = report.get("limit")
    return error, limit if isinstance(limit, str) else None


def _status(raw: dict[str, Any], limit: str | None, limits: Limits) -> Status:
    killed_for = raw.get("killed")
    if killed_for in _KILLED_STATUS:
        return _KILLED_STATUS[killed_for]
    signal_number = raw.get("signal")
    if signal_number == signal.SIGXCPU or (
        signal_number == signal.SIGKILL and raw.get("cpu_ms", 0) >= limits.cpu_time_ms
    ):
        return "timeout"
    if limit in _LIMIT_STATUS:
        return _LIMIT_STATUS[limit]
    # The limit is on what the snippet adds, so the interpreter's inherited pages do not count.
    added_bytes = raw.get("memory_bytes", 0) - raw.get("memory_base_bytes", 0)
    if (
        signal_number in _ALLOCATION_CRASH_SIGNALS
        and added_bytes >= _NEAR_MEMORY_LIMIT_SHARE * limits.memory_bytes
    ):
        # A runtime that does not check every allocation (QuickJS under GC pressure) can crash
        # rather than raise when RLIMIT_AS refuses memory: the user hit the memory limit.
        return "memory_limit"
    if raw.get("exit_code") == 0 and signal_number is None:
        return "ok"
    return "runtime_error"


def to_result(raw: dict[str, Any], runtime: Runtime, limits: Limits) -> ExecutionResult:
    """The result of one run from the zygote's report."""
    if "internal_error" in raw:
        return internal_error_result(runtime, str(raw["internal_error"]))
    error, limit = _parse_error(str(raw.get("error", "")))
    truncated = set(raw.get("truncated", []))
    status = _status(raw, limit, limits)
    if (
        error is not None
        and error.name == SANDBOX_ERROR
        and raw.get("exit_code") == SETUP_EXIT_CODE
    ):
        status = "internal_error"  # the child failed before user code ran: not the user's error
    if status == "output_limit" and not truncated:
        truncated.add("stdout")  # QuickJS cuts inside the engine, so the zygote saw no excess
    return ExecutionResult(
        status=status,
        exit_code=raw.get("exit_code"),
        signal=raw.get("signal"),
        stdout=str(raw.get("stdout", "")),
        stderr=str(raw.get("stderr", "")),
        stdout_truncated="stdout" in truncated,
        stderr_truncated="stderr" in truncated,
        error=error,
        # Written by the child, which runs user code: checked strictly (ValueError otherwise).
        results=[RichResult.model_validate(item) for item in raw.get("results", ())],
        results_truncated="results" in truncated,
        files=_checked_files(raw.get("files", ()), limits),
        files_truncated="files" in truncated,
        usage=Usage(
            wall_ms=float(raw.get("wall_ms", 0.0)),
            cpu_ms=float(raw.get("cpu_ms", 0.0)),
            memory_bytes=int(raw.get("memory_bytes", 0)),
        ),
        language=runtime.language,
        version=runtime.version,
    )


def _checked_files(records: Any, limits: Limits) -> list[OutputFile]:
    """The returned files, each valid and all of them within the run's caps, with no path twice
    and none inside another (`a` and `a/b`): what the child sends, since it runs user code too.
    A `ValueError` otherwise (the run becomes an `internal_error`)."""
    files = [OutputFile.model_validate(item) for item in records]
    if len(files) > limits.max_returned_files:
        raise ValueError(f"{len(files)} files returned, above {limits.max_returned_files}")
    if sum(f.size_bytes for f in files) > limits.max_returned_bytes:
        raise ValueError(f"returned files above {limits.max_returned_bytes} bytes")
    paths = {f.path for f in files}
    if len(paths) < len(files):
        raise ValueError("a returned file's path repeats")
    inside = next((p for p in paths if enclosing_path(p, paths)), None)
    if inside is not None:
        raise ValueError(f"returned file {inside!r} is inside another returned file")
    return files


def internal_error_result(runtime: Runtime, reason: str) -> ExecutionResult:
    """A run the sandbox could not complete (the user's code is not to blame)."""
    return ExecutionResult(
        status="internal_error",
        exit_code=None,
        signal=None,
        stdout="",
        stderr="",
        error=ErrorInfo(name="SandboxError", value=reason, traceback=""),
        usage=Usage(wall_ms=0.0, cpu_ms=0.0, memory_bytes=0),
        language=runtime.language,
        version=runtime.version,
    )


def output_listener(on_output: Callable[[OutputEvent], None]) -> Callable[[str, Any], None]:
    """The sandbox's raw output turned into `OutputEvent`s. A result record is checked first (a
    malformed one is not streamed: the run's result says it was malformed); a failing callback
    is logged, never raised into the sandbox's event-loop callbacks."""

    def listen(kind: str, value: Any) -> None:
        try:
            if kind == "result":
                try:
                    event = OutputEvent(kind="result", result=RichResult.model_validate(value))
                except ValueError:
                    return
            else:
                event = OutputEvent(kind="stdout" if kind == "stdout" else "stderr", text=value)
            on_output(event)
        except Exception:
            _log.exception("an output listener failed")

    return listen
