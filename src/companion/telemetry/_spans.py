"""What each traced operation records: span names and attributes, declared in one place.

Tool calls follow OpenTelemetry's GenAI conventions (`execute_tool {name}`, `gen_ai.tool.name`);
our own attributes are under `companion.`. Never recorded: API keys, request or response bodies,
a snippet's code, stdin, output, files or error message, a search's query text or filter values,
tool arguments and results, document text, and raw URL paths or query strings.

Each `*_span` helper returns `NO_SPAN` at the cost of one attribute read when tracing is off, so
call sites build no attributes then; each `record_*` sets what is known only at the end.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Protocol

from companion.telemetry._facade import NO_SPAN, Span, Telemetry

__all__ = ["record_run", "record_search", "record_tool", "run_span", "search_span", "tool_span"]


class _ErrorCode(Protocol):
    @property
    def code(self) -> str: ...


class _ToolOutcome(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def cached(self) -> bool: ...
    @property
    def error(self) -> _ErrorCode | None: ...


class _SearchOutcome(Protocol):
    @property
    def results(self) -> Sized: ...
    @property
    def took_ms(self) -> float: ...
    @property
    def embedding_ms(self) -> float: ...
    @property
    def cached(self) -> bool: ...


class _Usage(Protocol):
    @property
    def wall_ms(self) -> float: ...
    @property
    def cpu_ms(self) -> float: ...
    @property
    def memory_bytes(self) -> int: ...


class _RunOutcome(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def signal(self) -> int | None: ...
    @property
    def usage(self) -> _Usage: ...
    @property
    def version(self) -> str: ...


def tool_span(telemetry: Telemetry, name: str | None) -> Span:
    """`execute_tool {name}`; `name` None for a name the registry does not know (a caller's
    arbitrary string never becomes a span name)."""
    if not telemetry.enabled:
        return NO_SPAN
    if name is None:
        return telemetry.span("execute_tool", {"gen_ai.operation.name": "execute_tool"})
    return telemetry.span(
        f"execute_tool {name}",
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name},
    )


def record_tool(span: Span, result: _ToolOutcome) -> None:
    """Whether the result came from the cache, and the outcome: `ok` or the error's code."""
    if span is NO_SPAN:
        return
    span.set("companion.tool.cached", result.cached)
    if result.ok or result.error is None:
        span.set("companion.tool.outcome", "ok")
        return
    span.set("companion.tool.outcome", result.error.code)
    span.fail(result.error.code)


def search_span(telemetry: Telemetry, *, mode: str, k: int, filtered: bool) -> Span:
    """`knowledge.search`: the mode, k and whether a filter was given (never the query or the
    filter's values)."""
    if not telemetry.enabled:
        return NO_SPAN
    return telemetry.span(
        "knowledge.search",
        {
            "companion.knowledge.mode": mode,
            "companion.knowledge.k": k,
            "companion.knowledge.filtered": filtered,
        },
    )


def record_search(span: Span, result: _SearchOutcome, *, collection: str) -> None:
    """The collection searched, hits returned, the search's own time, the query embedding's
    time, and cache hits.

    The collection is named only here, once the search has accepted the name: before, it is
    whatever the caller sent (any text, of any length, a query pasted in the wrong field).
    """
    if span is NO_SPAN:
        return
    span.set("companion.knowledge.collection", collection)
    span.set("companion.knowledge.hits", len(result.results))
    span.set("companion.knowledge.took_ms", round(result.took_ms, 3))
    span.set("companion.knowledge.embedding_ms", round(result.embedding_ms, 3))
    span.set("companion.knowledge.cached", result.cached)


def run_span(
    telemetry: Telemetry,
    name: str,
    *,
    language: str,
    wall_time_limit_ms: int,
    cpu_time_limit_ms: int,
) -> Span:
    """A sandboxed run (`sandbox.run`) or session cell (`sandbox.cell`) with its time limits."""
    if not telemetry.enabled:
        return NO_SPAN
    return telemetry.span(
        name,
        {
            "companion.execution.language": language,
            "companion.execution.wall_time_limit_ms": wall_time_limit_ms,
            "companion.execution.cpu_time_limit_ms": cpu_time_limit_ms,
        },
    )


def record_run(span: Span, result: _RunOutcome) -> None:
    """The run's status, exit code or signal, runtime version and usage.

    A snippet's own failure (an exception, a timeout, a limit) is its outcome, not the span's:
    only `internal_error` (the sandbox failed us) marks the span failed.
    """
    if span is NO_SPAN:
        return
    span.set("companion.execution.status", result.status)
    span.set("companion.execution.timed_out", result.status == "timeout")
    span.set("companion.execution.runtime_version", result.version)
    if result.exit_code is not None:
        span.set("companion.execution.exit_code", result.exit_code)
    if result.signal is not None:
        span.set("companion.execution.signal", result.signal)
    span.set("companion.execution.wall_ms", round(result.usage.wall_ms, 3))
    span.set("companion.execution.cpu_ms", round(result.usage.cpu_ms, 3))
    span.set("companion.execution.memory_bytes", result.usage.memory_bytes)
    if result.status == "internal_error":
        span.fail("internal_error")
