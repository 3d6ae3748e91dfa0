"""Tools' values: a tool as the service lists it, a call to make, and a call's result.

`Tool` (`name`, `description`, `input_schema`) and `ToolResult` (`output`, `ok`, `error`) are what
the agent-framework adapters build on. A tool's own failure (division by zero, say) is a result
with `ok` false, not an exception: the service answers it with 200, and a batch reports each call
by itself. `ToolResult.unwrap()` turns it into `ToolFailed` for callers who prefer raising.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from companion_client._errors import ToolFailed

__all__ = ["Tool", "ToolCall", "ToolCallError", "ToolResult", "tool_call_json"]


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool the key may call: its JSON Schemas, its category, and what it promises (`pure`:
    cached by the service; `read_only`; `idempotent`); `scope` names the scope it acts through
    besides `tools` (`run_code`: `execute`)."""

    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    category: str = ""
    pure: bool = False
    read_only: bool = False
    idempotent: bool = False
    timeout_s: float | None = None
    scope: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Tool:
        """Decode one item of `GET /v1/tools` (or `GET /v1/tools/{name}`)."""
        return cls(
            name=str(raw["name"]),
            description=str(raw.get("description", "")),
            input_schema=dict(raw.get("input_schema") or {}),
            output_schema=raw.get("output_schema"),
            category=str(raw.get("category", "")),
            pure=bool(raw.get("pure")),
            read_only=bool(raw.get("read_only")),
            idempotent=bool(raw.get("idempotent")),
            timeout_s=raw.get("timeout_s"),
            scope=raw.get("scope"),
            raw=dict(raw),
        )


@dataclass(frozen=True, slots=True)
class ToolCallError:
    """Why a call failed: the service's `code` (`tool_error`, `invalid_arguments`,
    `tool_not_found`, `scope_missing`, `rate_limited`, ...), a message, and details."""

    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """One call's outcome: `output` is the tool's value (the service's `value`) when `ok`;
    otherwise `error` says why. `cached` when a pure tool's result came from the cache; `id` is
    the batch call's own id."""

    tool: str
    ok: bool
    output: Any
    error: ToolCallError | None
    duration_ms: float
    cached: bool
    id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ToolResult:
        """Decode `POST /v1/tools/{name}/invoke`, or one result of a batch."""
        error = raw.get("error")
        return cls(
            tool=str(raw.get("tool", "")),
            ok=bool(raw.get("ok")),
            output=raw.get("value"),
            error=(
                ToolCallError(
                    str(error.get("code", "")),
                    str(error.get("message", "")),
                    dict(error.get("details") or {}),
                )
                if isinstance(error, Mapping)
                else None
            ),
            duration_ms=float(raw.get("duration_ms", 0.0)),
            cached=bool(raw.get("cached")),
            id=raw.get("id"),
            raw=dict(raw),
        )

    @property
    def value(self) -> Any:
        """`output` under the name the HTTP API gives it."""
        return self.output

    def unwrap(self) -> Any:
        """`output`, or `ToolFailed` when the call failed."""
        if self.ok:
            return self.output
        error = self.error or ToolCallError("tool_error", "the call failed")
        raise ToolFailed(self.tool, error.code, error.message, error.details)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a batch: a tool, its arguments, and an `id` of the caller's to find it by."""

    tool: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


def tool_call_json(
    call: ToolCall | tuple[str, Mapping[str, Any]] | Mapping[str, Any],
) -> dict[str, Any]:
    """A batch call's JSON from a `ToolCall`, a `(name, arguments)` pair, or the JSON itself."""
    if isinstance(call, ToolCall):
        body: dict[str, Any] = {"tool": call.tool, "arguments": dict(call.arguments)}
        if call.id is not None:
            body["id"] = call.id
        return body
    if isinstance(call, tuple):
        name, arguments = call
        return {"tool": name, "arguments": dict(arguments)}
    return dict(call)
