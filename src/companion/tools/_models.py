"""What a call returns (`ToolResult`), what a batch sends (`ToolCall`) and what a tool is (`ToolInfo`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ToolCall", "ToolErrorInfo", "ToolInfo", "ToolResult"]

_RESULT_FIELDS = ("tool", "ok", "value", "error", "duration_ms", "cached", "id")


@dataclass(frozen=True, slots=True)
class ToolErrorInfo:
    """Why a call failed: a stable `code`, a message for the caller, and optional details."""

    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


class ToolResult:
    """The outcome of one call; a tool's own failure is `ok=False` with `error`, never a raise."""

    # A plain slotted class: a frozen dataclass's __init__ costs ~3 µs here, more than a call.
    __slots__ = ("cached", "duration_ms", "error", "id", "ok", "tool", "value")

    def __init__(  # noqa: PLR0917  # positional on purpose: built on the hot path
        self,
        tool: str,
        ok: bool,
        value: Any = None,
        error: ToolErrorInfo | None = None,
        duration_ms: float = 0.0,
        cached: bool = False,
        id: str | None = None,
    ) -> None:
        self.tool = tool
        self.ok = ok
        self.value = value
        self.error = error
        self.duration_ms = duration_ms
        self.cached = cached
        self.id = id

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _RESULT_FIELDS)
        return f"ToolResult({fields})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ToolResult):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _RESULT_FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq

    def with_id(self, id: str | None) -> ToolResult:
        """A copy carrying the batch call's `id`."""
        return ToolResult(
            self.tool, self.ok, self.value, self.error, self.duration_ms, self.cached, id
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the value as the tool returned it)."""
        error = None
        if self.error is not None:
            error = {
                "code": self.error.code,
                "message": self.error.message,
                "details": self.error.details,
            }
        out: dict[str, Any] = {
            "tool": self.tool,
            "ok": self.ok,
            "value": self.value,
            "error": error,
            "duration_ms": self.duration_ms,
            "cached": self.cached,
        }
        if self.id is not None:
            out["id"] = self.id
        return out


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a batch: the tool, its arguments (a dict or raw JSON) and an optional id."""

    tool: str
    arguments: dict[str, Any] | str | bytes = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """A registered tool as callers see it: name, description and schemas."""

    name: str
    description: str
    category: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    pure: bool
    timeout_s: float | None
    read_only: bool
    idempotent: bool
    is_async: bool
    enabled: bool
    # The scope a caller needs beyond `tools` (the capability the tool acts through), if any.
    scope: str | None = None
