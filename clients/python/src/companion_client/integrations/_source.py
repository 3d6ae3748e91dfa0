"""What the adapters need from a client, and what the three of them share.

An adapter needs two calls: `list_tools()` (each tool's name, description and JSON input schema)
and `invoke_tool(name, arguments)` (a result whose `unwrap()` gives the output or raises). `Client`
and `AsyncClient` have both; so can anything else (an in-process registry behind a few lines),
which is why the adapters take these protocols rather than the client classes.

A `ToolBinding` is one listed tool bound to the source(s) that call it: the sync one for a
framework's sync path, the async one for its async path. With only a sync source the async path
runs the sync call in a worker thread; with only an async source the sync path refuses (an async
HTTP client belongs to one event loop and cannot be driven from another).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from companion_client import (
    APIError,
    ToolFailed,
    ToolNotFound,
    TransportError,
    ValidationFailed,
)

__all__ = [
    "AsyncToolSource",
    "ToolBinding",
    "ToolOutcome",
    "ToolSource",
    "ToolSpec",
    "bind",
    "failure_message",
    "missing_extra",
]


class ToolSpec(Protocol):
    """A tool as listed: what a model is shown."""

    @property
    def name(self) -> str:
        """The tool's name, as the model calls it."""

    @property
    def description(self) -> str:
        """What the tool does, for the model."""

    @property
    def input_schema(self) -> Mapping[str, Any]:
        """The JSON Schema the service validates the arguments with."""


class ToolOutcome(Protocol):
    """A call's result."""

    def unwrap(self) -> Any:
        """The tool's output, or `ToolFailed` when the tool itself failed."""


class ToolSource(Protocol):
    """Lists and calls tools, blocking (`companion_client.Client`)."""

    def list_tools(self) -> Sequence[ToolSpec]:
        """Every tool the caller may call."""

    def invoke_tool(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        """Call one tool; raises `APIError` when the service refuses the call."""


class AsyncToolSource(Protocol):
    """Lists and calls tools, awaited (`companion_client.AsyncClient`)."""

    async def list_tools(self) -> Sequence[ToolSpec]:
        """Every tool the caller may call."""

    async def invoke_tool(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        """Call one tool; raises `APIError` when the service refuses the call."""


@dataclass(frozen=True, slots=True)
class ToolBinding:
    """One listed tool and the sources that call it (at least one of the two)."""

    name: str
    description: str
    input_schema: dict[str, Any]
    source: ToolSource | None = None
    async_source: AsyncToolSource | None = None

    def schema(self) -> dict[str, Any]:
        """A copy of the input schema, so a framework that edits its copy cannot edit ours."""
        return copy.deepcopy(self.input_schema)

    def call(self, arguments: dict[str, Any]) -> Any:
        """The tool's output; raises `CompanionClientError` (`ToolFailed`, `APIError`, ...)."""
        if self.source is None:
            raise NotImplementedError(
                f"tool {self.name} was built from an async client and has no sync call: use the "
                "framework's async call, or pass the sync client too"
            )
        return self.source.invoke_tool(self.name, arguments).unwrap()

    async def acall(self, arguments: dict[str, Any]) -> Any:
        """The tool's output, awaited; raises as `call` does."""
        if self.async_source is not None:
            return (await self.async_source.invoke_tool(self.name, arguments)).unwrap()
        # A blocking HTTP call must not hold the event loop: run it on a worker thread.
        return await asyncio.to_thread(self.call, arguments)


def bind(
    specs: Sequence[ToolSpec],
    names: Iterable[str] | None,
    *,
    source: ToolSource | None,
    async_source: AsyncToolSource | None,
) -> list[ToolBinding]:
    """Bind the listed tools, all of them or those in `names` (in that order).

    A name the listing lacks raises `ToolNotFound`: the tool does not exist, is disabled, or acts
    through a scope the key lacks (the service lists only what a key may call).
    """
    by_name = {spec.name: spec for spec in specs}
    if names is None:
        chosen = list(specs)
    else:
        wanted = list(dict.fromkeys(names))
        missing = [name for name in wanted if name not in by_name]
        if missing:
            offered = ", ".join(sorted(by_name)) or "none"
            detail = f"no tool {', '.join(missing)} for this key (it may call: {offered})"
            # The service's code, so that `error.code` reads as it would from `get_tool`.
            raise ToolNotFound(detail, status=404, problem={"code": "tool_not_found"})
        chosen = [by_name[name] for name in wanted]
    return [
        ToolBinding(
            name=spec.name,
            description=spec.description,
            input_schema=copy.deepcopy(dict(spec.input_schema)),
            source=source,
            async_source=async_source,
        )
        for spec in chosen
    ]


def failure_message(error: BaseException) -> str:
    """What a model reads when a call fails: the service's own words and its error code.

    The service's problem documents never carry a stack trace or a path, so their `detail` can go
    to a model as it is: a 422 names each bad argument by JSON pointer, which is what a model
    needs to correct its call.
    """
    if isinstance(error, ToolFailed):
        return f"{error.tool} failed ({error.code}): {error.message}"
    if isinstance(error, APIError):
        message = f"{error.detail} ({error.code or 'error'}, HTTP {error.status})"
        if isinstance(error, ValidationFailed):
            fields = [f"{e.pointer}: {e.message}" for e in error.errors if e.pointer not in message]
            if fields:
                message += "; " + "; ".join(fields)
        return message
    if isinstance(error, TransportError):
        return f"the service did not answer: {error}"
    return str(error) or type(error).__name__


def missing_extra(framework: str, extra: str, error: ImportError) -> ImportError:
    """The ImportError to raise when an adapter's framework is not installed."""
    return ImportError(
        f"companion_client.integrations needs {framework} for this adapter ({error}): install it "
        f"with `pip install 'companion-client[{extra}]'`"
    )
