"""`@tool` options, and the record a registry keeps per tool (its validator, metrics and key memo)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from companion.monitoring import Monitor
from companion.tools._docstrings import parse_docstring
from companion.tools._errors import InvalidToolDefinition
from companion.tools._models import ToolInfo
from companion.tools._schema import ToolSchema, build_schema

__all__ = ["ToolOptions", "ToolRecord", "tool"]

F = TypeVar("F", bound=Callable[..., Any])
_OPTIONS_ATTR = "__companion_tool__"
DEFAULT_CATEGORY = "general"


@dataclass(frozen=True, slots=True)
class ToolOptions:
    """What `@tool(...)` or `register(...)` says about a function; None means "not said"."""

    name: str | None = None
    description: str | None = None
    category: str | None = None
    pure: bool | None = None
    timeout_s: float | None = None
    read_only: bool | None = None
    idempotent: bool | None = None
    # A sync tool that only computes (no I/O, microseconds) runs on the event loop: a thread-pool
    # hop costs 50-80 µs, far more than the call. Never for anything that can block.
    inline: bool | None = None
    # The capability the tool acts through (`run_code`: "execute"): a caller needs that scope
    # too, and each call counts against that capability's limits (see `ToolGate`).
    scope: str | None = None

    def over(self, other: ToolOptions) -> ToolOptions:
        """These options, falling back to `other` for each one not given."""
        return ToolOptions(
            *(
                mine if mine is not None else theirs
                for mine, theirs in zip(_fields(self), _fields(other), strict=True)
            )
        )


def _fields(options: ToolOptions) -> tuple[Any, ...]:
    return (
        options.name,
        options.description,
        options.category,
        options.pure,
        options.timeout_s,
        options.read_only,
        options.idempotent,
        options.inline,
        options.scope,
    )


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    category: str | None = None,
    pure: bool | None = None,
    timeout_s: float | None = None,
    read_only: bool | None = None,
    idempotent: bool | None = None,
    inline: bool | None = None,
    scope: str | None = None,
) -> Callable[[F], F]: ...
def tool(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Mark a function as a tool (`@tool` or `@tool(category=..., pure=True)`); `register` reads it."""

    def mark(target: F) -> F:
        setattr(target, _OPTIONS_ATTR, ToolOptions(**options))
        return target

    return mark(fn) if fn is not None else mark


def marked_options(fn: Callable[..., Any]) -> ToolOptions:
    """The options `@tool` attached to `fn` (empty if none)."""
    options = getattr(fn, _OPTIONS_ATTR, None)
    return options if isinstance(options, ToolOptions) else ToolOptions()


class ToolRecord:
    """A registered tool: the function, its compiled validator, metrics children and key memo."""

    __slots__ = (
        "cache_hits",
        "calls",
        "direct",
        "duration",
        "errors",
        "fn",
        "info",
        "inline",
        "is_async",
        "memo",
        "name",
        "null_means_default",
        "pure",
        "schema",
        "scope",
        "timeout_s",
        "validate_json",
        "validate_python",
    )

    def __init__(self, fn: Callable[..., Any], options: ToolOptions, monitor: Monitor) -> None:
        name = str(options.name or getattr(fn, "__name__", ""))
        _check_name(name)
        if not callable(fn):
            raise InvalidToolDefinition(f"tool {name!r}: {fn!r} is not callable")
        if options.timeout_s is not None and not options.timeout_s > 0:
            raise InvalidToolDefinition(f"tool {name!r}: timeout_s must be > 0")
        doc = parse_docstring(inspect.getdoc(fn))
        self.schema: ToolSchema = build_schema(fn, name, doc)
        pure = bool(options.pure)
        read_only = options.read_only if options.read_only is not None else pure
        self.name = name
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.inline = bool(options.inline) and not self.is_async
        self.pure = pure
        self.timeout_s = options.timeout_s
        if options.scope is not None and not options.scope:
            raise InvalidToolDefinition(f"tool {name!r}: scope must be a non-empty name or None")
        self.scope = options.scope
        # Set by the registry: a sync, impure, unscoped tool without a timeout, called in one frame.
        self.direct = False
        # pydantic-core's validator itself: TypeAdapter's Python wrapper costs ~300 ns a call.
        validator = self.schema.arguments.validator
        self.validate_json = validator.validate_json
        self.validate_python = validator.validate_python
        self.null_means_default = self.schema.null_means_default
        # Raw arguments bytes -> canonical key of the validated arguments (pure tools only): a
        # repeated call finds its cache entry without validating again (same bytes, same outcome).
        self.memo: dict[bytes, str] = {}
        description = options.description or doc.description
        if not description:
            raise InvalidToolDefinition(
                f"tool {name!r} has no description: give it a docstring or description="
            )
        self.info = ToolInfo(
            name=name,
            description=description,
            category=options.category or DEFAULT_CATEGORY,
            input_schema=self.schema.input_schema,
            output_schema=self.schema.output_schema,
            pure=pure,
            timeout_s=options.timeout_s,
            read_only=read_only,
            idempotent=options.idempotent if options.idempotent is not None else read_only,
            is_async=self.is_async,
            enabled=True,
            scope=options.scope,
        )
        self.calls = monitor.counter(
            "companion_tools_calls_total", "Tool calls, cached ones included.", ("tool",)
        ).labels(name)
        self.cache_hits = monitor.counter(
            "companion_tools_cache_hits_total",
            "Pure tool calls answered from the cache.",
            ("tool",),
        ).labels(name)
        self.errors = monitor.counter(
            "companion_tools_errors_total",
            "Tool calls that failed, by error code.",
            ("tool", "code"),
        )
        self.duration = monitor.histogram(
            "companion_tools_duration_seconds",
            "Duration of executed tool calls (cache hits are counted, not timed).",
            ("tool",),
        ).labels(name)


def _check_name(name: str) -> None:
    # The OpenAI and Anthropic limits: 1-64 of letters, digits, `_` and `-`.
    if not (0 < len(name) <= 64) or not all(
        c.isascii() and (c.isalnum() or c in "_-") for c in name
    ):
        raise InvalidToolDefinition(
            f"tool name {name!r} must be 1-64 ASCII letters, digits, '_' or '-'"
        )
